"""The command line: a thin layer that resolves settings and wires the parts together.

Precedence is click's own: a flag beats ``AUTOTRANSCODE_*`` in the environment,
which beats the config file (loaded into click's ``default_map``), which beats
the defaults in ``settings.Settings``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import settings as settings_mod
from .backends import Backend
from .deploy import open_backend
from .engines import open_engine
from .engines.worker import Worker, WorkerPool, workdir_for
from .errors import AutotranscodeError, ConfigError
from .journal import FileState, Journal
from .media import presets
from .media.probe import MediaInfo, ignored
from .media.transcoder import command, find_ffmpeg
from .pipeline import Pipeline
from .procs import crash_record, yield_cpu_to_ffmpeg
from .progress import LogReporter, Reporter, RichReporter, Subscriber
from .settings import Settings
from .sources import DONE_FOLDER, reset_failed
from .text import shown

if TYPE_CHECKING:  # rich loads only for a terminal or a table: ~20 ms off every start
    from rich.console import Console, Group

log = logging.getLogger(__name__)

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


_force = click.option(
    "--force",
    is_flag=True,
    help="Transcode each file again even if it (or the same content) was done before.",
)

_on_success = click.option(
    "--on-success",
    type=click.Choice(["keep", "move", "delete"]),
    envvar="AUTOTRANSCODE_ON_SUCCESS",
    help="What to do with a source once its output is safely in OUT: keep it, move it into "
    "a 'done' folder beside it, or delete it [default: keep].",
)


def common_options(func: F) -> F:
    """Options every command shares, each also settable as AUTOTRANSCODE_<NAME> or in the file."""
    options = [
        click.option(
            "--config",
            type=click.Path(dir_okay=False),
            callback=_load_config,
            is_eager=True,
            expose_value=False,
            envvar="AUTOTRANSCODE_CONFIG",
            help="TOML config file [default: ~/.config/autotranscode/config.toml].",
        ),
        click.option(
            "--backend",
            type=click.Choice(["local", "aws"]),
            envvar="AUTOTRANSCODE_BACKEND",
            help="Where objects and queues live [default: local].",
        ),
        click.option(
            "--preset",
            multiple=True,
            envvar="AUTOTRANSCODE_PRESET",
            help="Output preset; repeat for several outputs per file [default: web-720p].",
        ),
        click.option(
            "--workers",
            type=int,
            envvar="AUTOTRANSCODE_WORKERS",
            help="Transcoding workers to run in this process (0: rely on others) [default: 1].",
        ),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="AUTOTRANSCODE_STATE_DIR",
            help="Journal, local store and queues [default: ~/.local/state/autotranscode].",
        ),
        click.option(
            "--pattern",
            multiple=True,
            envvar="AUTOTRANSCODE_PATTERN",
            help="Glob of file names to take, e.g. '*.mov'; repeatable "
            "[default: common audio and video extensions].",
        ),
        click.option(
            "--ffmpeg",
            envvar="AUTOTRANSCODE_FFMPEG",
            help="ffmpeg to run [default: the one bundled by imageio-ffmpeg].",
        ),
        click.option(
            "--endpoint-url",
            envvar="AUTOTRANSCODE_ENDPOINT_URL",
            help="aws: S3/SQS/SNS endpoint (e.g. a compatible server).",
        ),
        click.option("--region", envvar="AUTOTRANSCODE_REGION", help="aws: region."),
        click.option("--profile", envvar="AUTOTRANSCODE_PROFILE", help="aws: credentials profile."),
        click.option(
            "--name",
            envvar="AUTOTRANSCODE_NAME",
            help="aws: deployment name, prefix of buckets, queues and topic "
            "[default: autotranscode].",
        ),
        click.option(
            "--engine",
            type=click.Choice(["workers", "mediaconvert"]),
            envvar="AUTOTRANSCODE_ENGINE",
            help="aws: who transcodes: our workers, or AWS Elemental MediaConvert "
            "[default: workers].",
        ),
        click.option("-v", "--verbose", count=True, help="More log output (-vv for debug)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings(params: dict[str, Any]) -> Settings:
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


@contextmanager
def _errors() -> Iterator[None]:
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


def _setup_logging(verbose: int, console: Console | None) -> None:
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


def _console() -> Console | None:
    if not sys.stderr.isatty() and not {"FORCE_COLOR", "TTY_COMPATIBLE"} & os.environ.keys():
        return None
    from rich.console import Console

    console = Console(stderr=True)
    return console if console.is_terminal else None


def _usable_state_dir(state_dir: Path) -> Path:
    """The state dir, made if need be and written to once: a folder we cannot use (no
    permission, read-only, under /proc, a file in the way) is a setting to fix, said in one
    line before anything else starts, not a traceback from whichever part touches it first."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=state_dir):
            pass
    except OSError as exc:
        raise ConfigError(
            f"state dir {state_dir} cannot be used ({exc.strerror or exc}); give a writable "
            "folder with --state-dir or AUTOTRANSCODE_STATE_DIR"
        ) from exc
    return state_dir


@contextmanager
def _client_lock(state_dir: Path) -> Iterator[None]:
    """One client per state dir: two would take each other's notifications."""
    _usable_state_dir(state_dir)
    try:
        fh = (state_dir / "client.lock").open("a+")
    except OSError as exc:
        raise ConfigError(
            f"state dir {state_dir}: cannot open client.lock ({exc.strerror or exc})"
        ) from exc
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(
                f"another autotranscode run/transcode is using {state_dir}; "
                "wait for it, or give this one its own --state-dir"
            ) from exc
        yield


class _Stopper:
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


#: A stop asked while the main thread was between its check and its wait is seen this late.
STOP_CHECK_SECONDS = 1.0


def _wait_or_stop(pipe: Pipeline, fids: list[str], stopper: _Stopper) -> None:
    """Until the files are finished or Ctrl+C: asleep, not polling (each wake-up costs CPU)."""
    stopper.on_stop.append(pipe.wake)
    while not pipe.wait(fids, timeout=STOP_CHECK_SECONDS) and not stopper.event.is_set():
        pass


@contextmanager
def _service(s: Settings, out: Path, hooks: Subscriber) -> Iterator[Pipeline]:
    """Backend, journal, in-process workers and pipeline, started and (always) stopped in order."""
    backend = open_backend(s)
    journal = Journal(s.state_dir / "journal.db")
    in_process = s.workers if s.engine == "workers" else 0
    pool = WorkerPool(_workers(s, backend, in_process) if in_process else [])
    pipe = Pipeline(backend, journal, out, s, engine=open_engine(s, backend), hooks=hooks)
    crashes = contextlib.ExitStack()
    try:
        if in_process:
            crashes.enter_context(crash_record(s.state_dir))
        pool.start()
        # ffmpeg runs from the worker threads just started; what this thread starts from
        # now on (listener, transfers, watcher) and its own work come second to it.
        yield_cpu_to_ffmpeg()
        yield pipe
    finally:
        pool.signal_stop()  # workers and the listener wind down together, not one after the other
        pipe.stop()
        pool.stop()
        journal.close()
        backend.close()
        crashes.close()


def _workers(s: Settings, backend: Backend, count: int) -> list[Worker]:
    ffmpeg = find_ffmpeg(s.ffmpeg)
    return [
        Worker(
            backend,
            ffmpeg,
            workdir_for(s.state_dir / "work", f"worker-{i + 1}"),
            visibility=s.visibility_timeout,
            max_attempts=s.max_attempts,
            name=f"worker-{i + 1}",
            catalog=s.catalog,
        )
        for i in range(count)
    ]


def _reporter(console: Console | None) -> Reporter:
    return RichReporter(console) if console is not None else LogReporter()


def entry() -> None:
    """The ``autotranscode`` command (and ``python -m autotranscode``): ``main``, then a quick
    exit.

    By the time a command returns, its files are closed and its threads stopped; the
    interpreter's teardown, which frees every module and object one by one (~50 ms), would
    only delay the exit. Anything unusual (a thread the interpreter would wait for, output
    that cannot be flushed, a non-numeric exit) takes the ordinary exit instead.
    """
    try:
        main()
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


# -- commands ------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="autotranscode", prog_name="autotranscode")
def main() -> None:
    """Turn a folder into a media transcoding pipeline (local, or S3 + SQS + SNS).

    \b
    autotranscode run ~/Drop ~/Done        watch a folder, transcode what lands in it
    autotranscode transcode a.mov -o out   transcode files and exit
    autotranscode worker --backend aws     serve transcoding jobs from the queue
    """


@main.command()
@click.argument("drop", type=click.Path(file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--settle",
    type=float,
    envvar="AUTOTRANSCODE_SETTLE",
    help="Seconds a file must stay unchanged before it is taken [default: 0.5].",
)
@click.option(
    "--poll",
    is_flag=True,
    default=None,
    envvar="AUTOTRANSCODE_POLL",
    help="Poll the folder instead of using file events (network shares).",
)
@click.option("--recursive", is_flag=True, help="Also watch subfolders of DROP.")
@_force
@_on_success
@common_options
def run(drop: Path, out: Path, recursive: bool, force: bool, verbose: int, **params: Any) -> None:
    """Watch DROP; transcode each new media file into OUT until Ctrl+C.

    Files already in DROP are taken at start-up unless they were done before; work
    a previous run left unfinished is resumed.
    """
    console = _console()
    _setup_logging(verbose, console)
    stopper = _Stopper()
    with _errors():
        s = _settings(params)
        if not drop.is_dir():
            raise ConfigError(f"drop folder {drop} does not exist")
        _check_folders(drop, out)
        reporter = _reporter(console)
        from .watcher import Watcher  # watchdog: for run only, not every start

        with _client_lock(s.state_dir), _service(s, out, reporter) as pipe:
            watcher = Watcher(
                drop,
                functools.partial(pipe.add, force=True) if force else pipe.add,
                matches=s.matches,
                settle=s.settle,
                poll=s.poll,
                recursive=recursive,
                exclude=(out, s.state_dir, drop / DONE_FOLDER),
                on_skipped=pipe.skip,
                hooks=reporter,
            )
            stopper.install()
            with reporter:
                pipe.start()
                watcher.start()
                log.warning("watching %s -> %s (%s backend); Ctrl+C to stop", drop, out, s.backend)
                try:
                    stopper.event.wait()
                finally:
                    watcher.stop()
    sys.exit(EXIT_OK)


def _check_folders(drop: Path, out: Path) -> None:
    """OUT may be inside DROP or hold it (the watcher keeps them apart), but not be DROP:
    every output would be a new drop."""
    same = drop.resolve() == out.resolve()
    with contextlib.suppress(OSError):
        same = same or os.path.samefile(drop, out)
    if same:
        raise ConfigError(
            f"OUT ({out}) is the drop folder itself: give the outputs a folder of their own "
            "(one inside DROP, or beside it)"
        )


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the outputs.",
)
@_force
@_on_success
@common_options
def transcode(files: tuple[Path, ...], out: Path, force: bool, verbose: int, **params: Any) -> None:
    """Transcode FILES (or the media files in a folder) into --out, then exit.

    Exit status 0 when every file succeeded, 1 when some failed (see the summary).
    """
    console = _console()
    _setup_logging(verbose, console)
    stopper = _Stopper()
    with _errors():
        s = _settings(params)
        inputs = _expand(files, s)
        reporter = _reporter(console)
        with _client_lock(s.state_dir), _service(s, out, reporter) as pipe:
            stopper.install()
            with reporter:
                pipe.start(resume=False)
                fids = [pipe.add(path, retry_failed=True, force=force) for path in inputs]
                _wait_or_stop(pipe, fids, stopper)
                results = [
                    (path, outcome.state, outcome.detail)
                    for path, outcome in zip(inputs, map(pipe.outcome, fids), strict=True)
                ]
    interrupted = stopper.event.is_set()
    failed = _summary(results, interrupted)
    sys.exit(EXIT_INTERRUPTED if interrupted else EXIT_FAILED if failed else EXIT_OK)


def _expand(files: tuple[Path, ...], s: Settings) -> list[Path]:
    out: list[Path] = []
    for f in files:
        try:
            folder = f.is_dir()
        except OSError:  # a path we may not look at: the pipeline reports it as that file's
            folder = False
        if folder:
            out += sorted(
                p for p in f.iterdir() if p.is_file() and not ignored(p.name) and s.matches(p.name)
            )
        else:
            out.append(f)
    return out


def _summary(results: list[tuple[Path, FileState, str]], interrupted: bool) -> int:
    failed = 0
    for path, state, detail in results:
        name, detail = shown(path.name), shown(detail)
        if state == FileState.CLEANED:
            click.echo(f"ok      {name} -> {detail}")
        elif state == FileState.FAILED:
            failed += 1
            click.echo(f"FAILED  {name}: {detail}")
        elif state == FileState.SKIPPED:
            click.echo(f"skipped {name}: {detail}")
        else:
            click.echo(f"pending {name} ({state.lower()}; resumes on the next run)")
    done = sum(1 for _, st, _ in results if st == FileState.CLEANED)
    click.echo(f"{done} done, {failed} failed" + (" (interrupted)" if interrupted else ""))
    return failed


@main.command()
@common_options
def worker(verbose: int, **params: Any) -> None:
    """Serve transcoding jobs from the job queue until Ctrl+C (run one per machine, or more).

    --workers sets how many jobs this process runs at once [default: 1; one
    libx264 encode already uses about two cores].
    """
    _setup_logging(max(verbose, 1), None)
    stopper = _Stopper()
    with _errors():
        s = _settings(params)
        _usable_state_dir(s.state_dir)  # its work folder, and the local backend's store
        backend = open_backend(s, create=False)  # workers use a deployment; `setup` creates it
        pool = WorkerPool(_workers(s, backend, max(s.workers, 1)))
        stopper.install()
        with crash_record(s.state_dir):
            pool.start()
            try:
                stopper.event.wait()
            finally:
                pool.stop()
                backend.close()
    sys.exit(EXIT_OK)


_config_only = click.option(
    "--config",
    type=click.Path(dir_okay=False),
    callback=_load_config,
    is_eager=True,
    expose_value=False,
    envvar="AUTOTRANSCODE_CONFIG",
    help="TOML config file, for its custom presets.",
)


@main.group(invoke_without_command=True)
@_config_only
@click.pass_context
def presets_cmd(ctx: click.Context) -> None:
    """List output presets (``presets show NAME`` for the exact ffmpeg command).

    Custom presets come from [presets.NAME] tables in the config file.
    """
    if ctx.invoked_subcommand is None:
        from rich.console import Console
        from rich.table import Table

        table = Table("preset", "output", "description", box=None)
        for p in _catalog().all():
            table.add_row(p.id, p.extension + ("/" if p.folder else ""), p.description)
        Console().print(table)


main.add_command(presets_cmd, name="presets")


def _catalog() -> presets.Catalog:
    """The presets of the config file that ``--config`` read, for this command or its group."""
    ctx: click.Context | None = click.get_current_context()
    while ctx is not None:
        if ctx.default_map and "catalog" in ctx.default_map:
            return ctx.default_map["catalog"]  # type: ignore[no-any-return]
        ctx = ctx.parent
    return presets.DEFAULT_CATALOG


@presets_cmd.command("show")
@click.argument("name")
@_config_only
def presets_show(name: str) -> None:
    """Print the ffmpeg command NAME runs, for a 1080p source with audio."""
    with _errors():
        preset = _catalog().get(name)
        source = MediaInfo(60.0, "mov", "prores", 1920, 1080, "pcm_s16le")
        cmd = command("ffmpeg", preset, source, Path("INPUT"), Path(f"OUTPUT{preset.extension}"))
        click.echo(shlex.join(cmd))


@main.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, readable=False))
@click.option("--all-failed", is_flag=True, help="Retry every failed file.")
@common_options
def retry(files: tuple[Path, ...], all_failed: bool, verbose: int, **params: Any) -> None:
    """Try failed FILES (or --all-failed) again, to the folder and presets they had.

    A named file still in flight (its job lost while no `run` worked on it) is taken
    too: its job is submitted again.

    If `run` is active on this state dir it takes them over within seconds;
    otherwise they are transcoded now, as `transcode` would.
    """
    if not files and not all_failed:
        raise click.UsageError("name the failed files to retry, or pass --all-failed")
    console = _console()
    _setup_logging(verbose, console)
    stopper = _Stopper()
    with _errors():
        s = _settings(params)
        journal = Journal(_usable_state_dir(s.state_dir) / "journal.db")
        journal.supersede_failed()  # a later version of a path is the one to retry
        wanted = {os.path.abspath(f) for f in files}
        failed = [
            r
            for r in journal.recent(1_000_000, FileState.FAILED)
            if all_failed or str(r.path) in wanted
        ]
        # A named file still in flight (its job lost, say) is taken too: nothing else
        # would move it while no `run` works on this state dir.
        stuck = [r for r in journal.unfinished() if str(r.path) in wanted]
        journal.close()
        if not failed and not stuck:
            click.echo("no failed or unfinished files to retry")
            sys.exit(EXIT_OK)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(_client_lock(s.state_dir))
            except ConfigError:  # a run is active: it picks reset files up by itself
                journal = Journal(s.state_dir / "journal.db")
                for record in failed:
                    reset_failed(journal, record)
                journal.close()
                click.echo(f"{len(failed)} files handed to the running autotranscode")
                for record in stuck:
                    click.echo(
                        f"{shown(record.name)} is in flight ({record.state.lower()}) in the "
                        "running autotranscode, which submits its job again if it was lost"
                    )
                sys.exit(EXIT_OK)
            failed += stuck
            reporter = _reporter(console)
            pipe = stack.enter_context(_service(s, Path("."), reporter))
            stopper.install()
            fids = [r.id for r in failed]
            with reporter:
                pipe.start(resume=False)
                for record in failed:
                    pipe.retry(record)
                _wait_or_stop(pipe, fids, stopper)
                results = [(o.path, o.state, o.detail) for o in map(pipe.outcome, fids)]
    interrupted = stopper.event.is_set()
    failures = _summary(results, interrupted)
    sys.exit(EXIT_INTERRUPTED if interrupted else EXIT_FAILED if failures else EXIT_OK)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", default=10, show_default=True, help="Recent and failed files to list.")
@click.option("--watch", is_flag=True, help="Follow a running pipeline until Ctrl+C.")
@common_options
def status(as_json: bool, limit: int, watch: bool, verbose: int, **params: Any) -> None:
    """Files per state, what is in flight, and the failed ones with their reason."""
    with _errors():
        s = _settings(params)
        journal = Journal(_usable_state_dir(s.state_dir) / "journal.db")
        try:
            journal.supersede_failed()  # what a journal written by an older version may hold
            if as_json:
                click.echo(json.dumps(_status_data(journal, limit), indent=2, ensure_ascii=False))
            elif watch:
                _watch(journal, limit)
            else:
                from rich.console import Console

                Console().print(_status_view(journal, limit))
        finally:
            journal.close()


def _watch(journal: Journal, limit: int) -> None:
    """Redraw in place on a terminal; elsewhere print each view that differs from the last."""
    stopper = _Stopper(quiet=True)
    from rich.console import Console
    from rich.live import Live

    stopper.install()
    console = Console()
    if console.is_terminal:
        with Live(_status_view(journal, limit), console=console, refresh_per_second=2) as live:
            while not stopper.event.wait(0.5):
                live.update(_status_view(journal, limit))
        return
    last = None
    while True:
        with console.capture() as capture:
            console.print(_status_view(journal, limit))
        text = capture.get()
        if text != last:
            click.echo(f"--- {time.strftime('%H:%M:%S')}\n{text}", nl=False)
            last = text
        if stopper.event.wait(1.0):
            return


def _status_data(journal: Journal, limit: int) -> dict[str, Any]:
    return {
        "counts": {k.value: v for k, v in journal.counts().items()},
        "in_flight": [
            {"path": shown(str(r.path)), "state": r.state.value} for r in journal.unfinished()
        ],
        "failed": [
            {"path": shown(str(r.path)), "reason": r.reason}
            for r in journal.recent(limit, FileState.FAILED)
        ],
        "skipped": [
            {"path": shown(str(r.path)), "reason": r.reason}
            for r in journal.recent(limit, FileState.SKIPPED)
        ],
        "recent": [
            {
                "path": shown(str(r.path)),
                "state": r.state.value,
                "outputs": list(r.outputs.values()),
                "warning": r.warning,
                **({"detail": f"same content as {shown(r.same_as)}"} if r.same_as else {}),
            }
            for r in journal.recent(limit)
        ],
    }


def _status_view(journal: Journal, limit: int) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    counts = journal.counts()
    if not counts:
        return Group("no files yet")
    table = Table("state", "files", box=None)
    for state in FileState:
        if counts.get(state):
            table.add_row(state.value.lower(), str(counts[state]))
    parts: list[Any] = [table]
    now = time.time()
    busy = journal.unfinished()
    if busy:
        flight = Table("in flight", "step", "for", box=None, title_justify="left")
        for r in busy[:limit]:
            flight.add_row(r.name, r.state.value.lower(), f"{now - r.updated_at:.0f}s")
        parts += ["", flight]
    copied = [r for r in journal.recent(limit, FileState.CLEANED) if r.same_as]
    if copied:
        parts += ["", Text("done without a transcode of their own", style="bold")]
        parts += [
            Text(f"  {shown(r.name)}: done (same content as {shown(r.same_as or '')})")
            for r in copied
        ]
    failed = journal.recent(limit, FileState.FAILED)
    if failed:
        parts += ["", Text("failed", style="bold")]
        parts += [Text(f"  {shown(str(r.path))}: {r.reason}") for r in failed]
    warned = [r for r in journal.recent(limit, FileState.CLEANED) if r.warning]
    if warned:
        parts += ["", Text("done, with a warning", style="bold")]
        parts += [Text(f"  {shown(str(r.path))}: {r.warning}") for r in warned]
    skipped = journal.recent(limit, FileState.SKIPPED)
    if skipped:
        parts += ["", Text("skipped", style="bold")]
        parts += [Text(f"  {shown(str(r.path))}: {r.reason}") for r in skipped]
    return Group(*parts)


# -- the journal: check, rebuild ------------------------------------------------------------------


@main.group("journal")
def journal_cmd() -> None:
    """Check the journal in --state-dir, or rebuild it from the output folders."""


@journal_cmd.command("check")
@common_options
def journal_check(verbose: int, **params: Any) -> None:
    """Say whether the journal is sound (exit 0) or damaged, and how (exit 3)."""
    _ops_logging(verbose)
    with _errors():
        from . import recovery

        path = _settings(params).state_dir / "journal.db"
        problem = recovery.check(path)
    if problem is not None:
        click.echo(f"damaged {path}: {problem}")
        click.echo(f"mend it: autotranscode journal rebuild --state-dir {path.parent} --out OUT")
        sys.exit(EXIT_ERROR)
    click.echo(f"ok      {path}")


@journal_cmd.command("rebuild")
@click.option(
    "--out",
    "out_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="An output folder whose outputs are to count as done; repeatable.",
)
@click.option("--force", is_flag=True, help="Rebuild a journal that is not damaged.")
@common_options
def journal_rebuild(out_dirs: tuple[Path, ...], force: bool, verbose: int, **params: Any) -> None:
    """Set a damaged journal aside (journal.db.damaged-TIME) and start a new one.

    The outputs found in each --out folder, by the stamps they carry, are recorded as
    done, so no later run transcodes their sources again. On the local backend, the
    objects the old journal's files left in the store are removed.
    """
    _ops_logging(verbose)
    with _errors():
        from . import recovery

        s = _settings(params)
        with _client_lock(s.state_dir):
            backend = open_backend(s, create=False) if s.backend == "local" else None
            try:
                store = backend.store if backend is not None else None
                done = recovery.rebuild(
                    s.state_dir / "journal.db", list(out_dirs), store, force, catalog=s.catalog
                )
            finally:
                if backend is not None:
                    backend.close()
    if done.moved_to is not None:
        click.echo(f"set aside {done.moved_to}")
    for output in done.recorded:
        click.echo(f"recorded {shown(str(output))}")
    click.echo(f"{len(done.recorded)} outputs recorded as done")
    if done.removed_objects:
        click.echo(f"{done.removed_objects} objects of the old journal removed from the store")
    if s.backend == "aws":
        click.echo(
            "note: objects of the old journal's files stay in the buckets until "
            "`autotranscode cleanup` removes them (after --older-than hours)",
            err=True,
        )


# -- the aws deployment: setup, cleanup, teardown, iam-policy --------------------------------------


def _aws_settings(params: dict[str, Any], command: str) -> Settings:
    s = _settings(params)
    if s.backend != "aws":
        raise ConfigError(
            f"{command} is for the aws backend's cloud resources: pass --backend aws "
            "(the local backend keeps everything in --state-dir, and each run resumes or "
            "removes what a previous one left there)"
        )
    return s


def _ops_logging(verbose: int) -> None:
    """These commands print what they did; log lines only with -v."""
    _setup_logging(verbose, None)
    if not verbose:
        logging.getLogger("autotranscode").setLevel(logging.WARNING)


def _resources(reports: list[Any]) -> None:
    for r in reports:
        details = f"  ({', '.join(r.details)})" if r.details else ""
        click.echo(f"{r.kind:<7} {r.status:<13} {r.name}{details}")


@main.command("setup")
@click.option(
    "--kms-key",
    metavar="ARN",
    help="Encrypt objects with this KMS key (SSE-KMS) [default: S3-managed keys, SSE-S3].",
)
@common_options
def setup_cmd(kms_key: str | None, verbose: int, **params: Any) -> None:
    """Create the aws deployment's buckets, queues and topic, or check them (safe to repeat).

    It needs rights to create them (an administrator's); clients and workers then run
    with the narrower policies `autotranscode iam-policy` prints. Run it again after
    changing visibility-timeout or max-attempts.
    """
    _ops_logging(verbose)
    with _errors():
        from .deploy import provision as cloud

        reports = cloud.setup(_aws_settings(params, "setup"), kms_key)
    _resources(reports)
    for r in reports:
        for warning in r.warnings:
            click.echo(f"warning: {r.name}: {warning}", err=True)


@main.command("cleanup")
@click.option("--s3", is_flag=True, help="Objects the pipeline left, and unfinished uploads.")
@click.option("--sqs", is_flag=True, help="Stale notifications; count the dead-letter queue.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; change nothing.")
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="HOURS",
    help="Objects of files this --state-dir does not know may be another client's: they are "
    "removed only once this old [default: 24].",
)
@common_options
def cleanup_cmd(
    s3: bool, sqs: bool, dry_run: bool, older_than: float | None, verbose: int, **params: Any
) -> None:
    """Remove what the pipeline left on aws (neither --s3 nor --sqs: both).

    This --state-dir's journal decides: objects and notifications of files still in
    progress stay; those of finished files go. Only one client per state dir, so it
    waits for no run/transcode: it refuses while one is active.
    """
    _ops_logging(verbose)
    with _errors():
        from .deploy import cleanup as cloud

        s = _aws_settings(params, "cleanup")
        both = not (s3 or sqs)
        with _client_lock(s.state_dir):
            journal = Journal(s.state_dir / "journal.db")
            try:
                report = cloud.cleanup(
                    s,
                    journal,
                    s3=s3 or both,
                    sqs=sqs or both,
                    dry_run=dry_run,
                    older_than_hours=cloud.DEFAULT_ORPHAN_HOURS
                    if older_than is None
                    else older_than,
                )
            finally:
                journal.close()
    would = "would " if dry_run else ""
    deleted, aborted = ("to delete", "to abort") if dry_run else ("deleted", "aborted")
    for url in report.aborted_uploads:
        click.echo(f"{would}abort upload {url}")
    for url in report.deleted_objects:
        click.echo(f"{would}delete {url}")
    if s3 or both:
        click.echo(
            f"objects: {len(report.deleted_objects)} {deleted}, "
            f"{len(report.aborted_uploads)} uploads {aborted}, {report.kept_objects} kept"
        )
    if sqs or both:
        click.echo(
            f"notifications: {report.deleted_messages} {deleted}, {report.kept_messages} kept"
        )
    if report.dead_letters is not None:
        click.echo(f"dead-letter queue: {report.dead_letters} messages (inspect, then purge)")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)


@main.command("teardown")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
def teardown_cmd(yes: bool, verbose: int, **params: Any) -> None:
    """Delete the aws deployment: topic, queues, and buckets with every object in them.

    Only what carries the tag autotranscode:deployment=NAME goes; anything named like
    it without that tag is kept and listed.
    """
    _ops_logging(verbose)
    with _errors():
        from .backends.aws import connect
        from .deploy import provision as cloud

        s = _aws_settings(params, "teardown")
        conn = connect(s)
        plan = cloud.teardown(s, dry_run=True, connection=conn)
        doomed = [r for r in plan if r.status == cloud.Status.WOULD_DELETE]
        if doomed and not yes:
            _resources(plan)
            click.confirm(
                f"Delete these {len(doomed)} resources of deployment {s.name!r} "
                f"(account {conn.names.account}, {conn.names.region}) and all they hold?",
                abort=True,
            )
        reports = cloud.teardown(s, connection=conn) if doomed else plan
    _resources(reports)
    if not doomed:
        click.echo(f"nothing to delete: deployment {s.name!r} has no resources here")


@main.command("iam-policy")
@click.option(
    "--role",
    type=click.Choice(["client", "worker", "mediaconvert"]),
    required=True,
    help="client: run/transcode/retry/cleanup; worker: `autotranscode worker`; "
    "mediaconvert: the role MediaConvert assumes.",
)
@click.option("--kms-key", metavar="ARN", help="The KMS key the buckets encrypt with, if any.")
@common_options
def iam_policy_cmd(role: str, kms_key: str | None, verbose: int, **params: Any) -> None:
    """Print the least-privilege IAM policy (JSON) for a role of this deployment."""
    _ops_logging(verbose)
    with _errors():
        from .deploy import iam as cloud

        policy = cloud.iam_policy(_aws_settings(params, "iam-policy"), role, kms_key)
    click.echo(json.dumps(policy, indent=2))


if __name__ == "__main__":
    main()
