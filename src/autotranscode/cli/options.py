"""What every command shares: options, the config file, settings, logging, errors, Ctrl+C.

Precedence is click's own: a flag beats ``AUTOTRANSCODE_*`` in the environment,
which beats the config file (loaded into click's ``default_map``), which beats
the defaults in ``settings.Settings``; ``--help`` shows those defaults from there.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import settings as settings_mod
from ..errors import AutotranscodeError, ConfigError
from ..progress import LogReporter, Reporter, RichReporter
from ..settings import Settings

if TYPE_CHECKING:  # rich loads only for a terminal or a table: ~20 ms off every start
    from rich.console import Console

EXIT_OK = 0
#: Some files failed; the others were transcoded.
EXIT_FAILED = 1
#: Bad usage or configuration (click uses 2 for usage errors too).
EXIT_CONFIG = 2
#: A backend or the system failed as a whole.
EXIT_ERROR = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A config file that cannot be read is one line and exit 2, like any other bad setting:
    also the default one, when ~/.config (XDG_CONFIG_HOME) may not be looked into."""
    path = Path(value) if value else settings_mod.default_config_file()
    try:
        try:
            found = path.is_file()
        except OSError as exc:  # Python < 3.14 raises where stat() is refused
            raise ConfigError(
                f"config file {path} cannot be looked for ({exc.strerror or exc}); fix the "
                "folder's permissions, or set XDG_CONFIG_HOME or --config elsewhere"
            ) from exc
        if value or found:
            ctx.default_map = settings_mod.load_file(path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_CONFIG)
    return value


def _home_as_tilde(path: Path) -> str:
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def _settings_default(setting: str) -> str:
    """A setting's default as --help shows it: read from Settings when help is asked for,
    so the environment it depends on (XDG_*, HOME) is the one of this run."""
    if setting == "config":
        return _home_as_tilde(settings_mod.default_config_file())
    value = getattr(Settings(), setting)
    if isinstance(value, Path):
        return _home_as_tilde(value)
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return str(value)


class SettingOption(click.Option):
    """An option whose ``[default: ...]`` in --help is the Settings field's own, not a copy.

    ``default_text`` describes a default that is no value of its own (None, an empty
    tuple): what the absence of the setting means; or, called, gives a default kept
    elsewhere, from a module only loaded when help is shown.
    """

    def __init__(
        self, *args: Any, default_text: str | Callable[[], str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.default_text = default_text

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        base = self.help
        text = self.default_text
        shown = text() if callable(text) else text or _settings_default(self.name or "")
        self.help = f"{base} [default: {shown}]." if base else f"[default: {shown}]"
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = base


def setting(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    """``click.option`` for a Settings field; its help gets the field's default."""
    return click.option(*decls, cls=SettingOption, **kwargs)


config_option = setting(
    "--config",
    type=click.Path(dir_okay=False),
    callback=_load_config,
    is_eager=True,
    expose_value=False,
    envvar="AUTOTRANSCODE_CONFIG",
    help="TOML config file",
)

force_option = click.option(
    "--force",
    is_flag=True,
    help="Transcode each file again even if it (or the same content) was done before.",
)

on_success_option = setting(
    "--on-success",
    type=click.Choice(["keep", "move", "delete"]),
    envvar="AUTOTRANSCODE_ON_SUCCESS",
    help="What to do with a source once its output is safely in OUT: keep it, move it into "
    "a 'done' folder beside it, or delete it",
)


def common_options(func: F) -> F:
    """Options every command shares, each also settable as AUTOTRANSCODE_<NAME> or in the file."""
    options = [
        config_option,
        setting(
            "--backend",
            type=click.Choice(["local", "aws"]),
            envvar="AUTOTRANSCODE_BACKEND",
            help="Where objects and queues live",
        ),
        setting(
            "--preset",
            multiple=True,
            envvar="AUTOTRANSCODE_PRESET",
            help="Output preset; repeat for several outputs per file",
        ),
        setting(
            "--workers",
            type=int,
            envvar="AUTOTRANSCODE_WORKERS",
            help="Transcoding workers to run in this process (0: rely on others)",
        ),
        setting(
            "--state-dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="AUTOTRANSCODE_STATE_DIR",
            help="Journal, local store and queues",
        ),
        setting(
            "--pattern",
            multiple=True,
            envvar="AUTOTRANSCODE_PATTERN",
            help="Glob of file names to take, e.g. '*.mov'; repeatable",
            default_text="common audio and video extensions",
        ),
        setting(
            "--ffmpeg",
            envvar="AUTOTRANSCODE_FFMPEG",
            help="ffmpeg to run",
            default_text="the one bundled by imageio-ffmpeg",
        ),
        click.option(
            "--endpoint-url",
            envvar="AUTOTRANSCODE_ENDPOINT_URL",
            help="aws: S3/SQS/SNS endpoint (e.g. a compatible server).",
        ),
        click.option("--region", envvar="AUTOTRANSCODE_REGION", help="aws: region."),
        click.option("--profile", envvar="AUTOTRANSCODE_PROFILE", help="aws: credentials profile."),
        setting(
            "--name",
            envvar="AUTOTRANSCODE_NAME",
            help="aws: deployment name, prefix of buckets, queues and topic",
        ),
        setting(
            "--engine",
            type=click.Choice(["workers", "mediaconvert"]),
            envvar="AUTOTRANSCODE_ENGINE",
            help="aws: who transcodes: our workers, or AWS Elemental MediaConvert",
        ),
        click.option("-v", "--verbose", count=True, help="More log output (-vv for debug)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(params: dict[str, Any]) -> Settings:
    """Settings from a command's parameters, over the config file's values."""
    # Settings the config file gives that have no option (visibility_timeout, max_attempts,
    # transfers...): click's default_map only feeds options, so take them from it here.
    ctx = click.get_current_context(silent=True)
    from_file = (ctx.default_map or {}) if ctx is not None else {}
    fields = {k: v for k, v in from_file.items() if k in Settings.__struct_fields__}
    fields.update(
        {k: v for k, v in params.items() if k in Settings.__struct_fields__ and v is not None}
    )
    for key in ("preset", "pattern"):
        if not fields.get(key):
            fields.pop(key, None)
    return settings_mod.build(fields)


def aws_settings(params: dict[str, Any], command: str) -> Settings:
    """Settings for a command that only makes sense on the aws backend."""
    s = settings_from(params)
    if s.backend != "aws":
        raise ConfigError(
            f"{command} is for the aws backend's cloud resources: pass --backend aws "
            "(the local backend keeps everything in --state-dir, and each run resumes or "
            "removes what a previous one left there)"
        )
    return s


@contextmanager
def errors() -> Iterator[None]:
    """Our errors become one line on stderr and an exit code, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except AutotranscodeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:  # Ctrl+C while connecting, before the clean-stop handler is in place
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


def setup_logging(verbose: int, console: Console | None) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    root.handlers.clear()
    if console is not None:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=console, show_path=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # Progress lines are INFO on the autotranscode logger; show them when there are no bars.
    logging.getLogger("autotranscode").setLevel(
        level if console is not None else min(level, logging.INFO)
    )
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "watchdog"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def ops_logging(verbose: int) -> None:
    """Commands that print what they did: log lines only with -v."""
    setup_logging(verbose, None)
    if not verbose:
        logging.getLogger("autotranscode").setLevel(logging.WARNING)


def terminal() -> Console | None:
    """A rich console on stderr when it is a terminal (or one is forced), else None."""
    if not sys.stderr.isatty() and not {"FORCE_COLOR", "TTY_COMPATIBLE"} & os.environ.keys():
        return None
    from rich.console import Console

    console = Console(stderr=True)
    return console if console.is_terminal else None


def reporter_for(console: Console | None) -> Reporter:
    """Progress bars on a terminal, log lines elsewhere."""
    return RichReporter(console) if console is not None else LogReporter()


class Stopper:
    """First Ctrl+C (or SIGTERM) stops cleanly; a second one exits at once (the journal is safe)."""

    def __init__(self, quiet: bool = False) -> None:
        self.event = threading.Event()
        self.quiet = quiet
        #: Called (in the main thread, from the handler) once a stop is asked.
        self.on_stop: list[Callable[[], None]] = []

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.event.is_set():
            os._exit(EXIT_INTERRUPTED)
        if not self.quiet:
            # sys.stderr, not click's own handle: a live display, while on, has taken it over
            # and prints the line above itself instead of under its cursor.
            print(
                "stopping (Ctrl+C again to quit at once; unfinished files resume next start)",
                file=sys.stderr,
                flush=True,
            )
        self.event.set()
        for wake in self.on_stop:
            wake()
