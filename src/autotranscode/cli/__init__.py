"""The command layer: it resolves settings from flags, environment and config file, and
hands them to the parts that do the work (the service, the aws deployment, recovery).

- ``options``: the options, each taken by the commands that use it and listed in
  --help's sections; settings from them, the exit codes, the error boundary (one line and
  an exit code), Ctrl+C.
- ``logs``: -q/-v, --log-format text|json, --log-file: the log lines' handlers.
- ``files``: the commands that transcode: run, transcode, retry, worker; presets.
- ``library``: library, in place with a library owner's defaults; ``plan``: its --dry-run.
- ``status``: status (human, --json, --watch); journal check and rebuild.
- ``aws``: the aws deployment: setup, cleanup, teardown, iam-policy.
- ``web``: the web dashboard (``web``, and ``run --web``).
- here: the ``autotranscode`` group, ``completion``, and ``entry``, the console script.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

import click

from .aws import cleanup_cmd, iam_policy_cmd, setup_cmd, teardown_cmd
from .files import presets_cmd, retry, run, transcode, worker
from .library import library
from .options import EXIT_INTERRUPTED, EXIT_OK, Command, CommandGroup
from .status import journal_cmd, status
from .web import web

__all__ = ["entry", "main"]


@click.group(
    cls=CommandGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="autotranscode", prog_name="autotranscode")
def main() -> None:
    """Turn a folder into a media transcoding pipeline (local, or S3 + SQS + SNS).

    \b
    autotranscode run ~/Drop ~/Done        watch a folder, transcode what lands in it
    autotranscode transcode a.mov -o out   transcode files and exit
    autotranscode worker --backend aws     serve transcoding jobs from the queue

    Exit status: 0 all done; 1 some files failed or were partly done; 2 bad usage or
    configuration; 3 a runtime error (a backend down, a damaged journal); 130 Ctrl+C.
    """


#: The console script's name: usage lines and the completion variable say it, also
#: under ``python -m autotranscode``.
PROG_NAME = "autotranscode"


@click.command(cls=Command)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell code that completes commands, options and preset names.

    \b
    bash:  eval "$(autotranscode completion bash)"    (in ~/.bashrc)
    zsh:   eval "$(autotranscode completion zsh)"     (in ~/.zshrc)
    fish:  autotranscode completion fish > ~/.config/fish/completions/autotranscode.fish
    """
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    assert complete is not None  # click knows the three shells the choice allows
    var = f"_{PROG_NAME.upper()}_COMPLETE"
    click.echo(complete(main, {}, PROG_NAME, var).source())


_commands = (run, transcode, library, worker, presets_cmd, retry, status, journal_cmd, web)
for _command in (*_commands, completion):
    main.add_command(_command)
for _name, _command in (
    ("setup", setup_cmd),
    ("cleanup", cleanup_cmd),
    ("teardown", teardown_cmd),
    ("iam-policy", iam_policy_cmd),
):
    main.add_command(_command, name=_name)


def entry(command: Callable[[], object] | None = None) -> None:
    """The ``autotranscode`` command (and ``python -m autotranscode``): ``main`` (or
    ``command``, for a test), then a quick exit.

    By the time a command returns, its files are closed and its threads stopped; the
    interpreter's teardown, which frees every module and object one by one (~50 ms), would
    only delay the exit. Anything unusual (a thread the interpreter would wait for, output
    that cannot be flushed, a non-numeric exit) takes the ordinary exit instead.
    """
    try:
        if command is None:
            main(prog_name=PROG_NAME)
        else:
            command()
        code: str | int | None = EXIT_OK
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:  # Ctrl+C while a command was still starting: no traceback
        click.echo("interrupted", err=True)
        code = EXIT_INTERRUPTED
    if not isinstance(code, int) or _still_working():
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)  # let the interpreter report it as it would
    logging.shutdown()
    os._exit(code)


def _still_working() -> bool:
    """A thread other than this one that the interpreter's exit would wait for."""
    main_thread = threading.main_thread()
    return any(t is not main_thread and not t.daemon for t in threading.enumerate())
