"""What every command shares: options, the config file, settings, logging, errors, Ctrl+C.

Precedence is click's own: a flag beats ``AUTOTRANSCODE_*`` in the environment,
which beats the config file (loaded into click's ``default_map``), which beats
the defaults in ``settings.Settings``; ``--help`` shows those defaults from there.
"""

from __future__ import annotations

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
from ..text import shown

if TYPE_CHECKING:  # rich loads only for a terminal or a table: ~20 ms off every start
    from rich.console import Console

# Exit codes, the same for every command (the README lists them).
EXIT_OK = 0
#: Some files failed (or were partly done); the others were transcoded.
EXIT_FAILED = 1
#: Bad usage or configuration: an unknown option, a bad value, a folder that does not
#: exist (click uses 2 for usage errors too).
EXIT_CONFIG = 2
#: A backend or the system failed as a whole (an endpoint down, a damaged journal).
EXIT_ERROR = 3
#: Stopped by Ctrl+C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])

#: --help's sections, in order: a command's own options, then the shared groups.
OWN, AWS, LOGGING = "Options", "AWS options", "Logging options"


class Command(click.Command):
    """A command whose --help lists its options in sections (click has no option groups):
    its own first, then "AWS options" and "Logging options" where the command takes them."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and not isinstance(param, click.Argument):
                rows.setdefault(getattr(param, "section", OWN), []).append(record)
        for section in (OWN, AWS, LOGGING):
            if section in rows:
                with formatter.section(section):
                    formatter.write_dl(rows[section])


class CommandGroup(click.Group):
    """A command group whose subcommands list their options in sections too."""

    command_class = Command

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        Command.format_options(self, ctx, formatter)  # type: ignore[arg-type]
        self.format_commands(ctx, formatter)


class SectionOption(click.Option):
    """An option listed under ``section`` in --help (see ``Command``)."""

    def __init__(self, *args: Any, section: str = OWN, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.section = section


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A config file that cannot be read is one line and exit 2, like any other bad setting:
    also the default one, when ~/.config (XDG_CONFIG_HOME) may not be looked into. While
    the shell completes a word, a bad file only means no custom presets to offer."""
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
        if ctx.resilient_parsing:
            return value
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


class SettingOption(SectionOption):
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


def options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several option decorators as one, listed in --help in the order given."""

    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def _preset_names(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """--preset's completions: the built-in presets and the config file's custom ones."""
    from ..media import presets

    catalog = presets.DEFAULT_CATALOG
    while ctx is not None:
        if ctx.default_map and "catalog" in ctx.default_map:
            catalog = ctx.default_map["catalog"]
            break
        ctx = ctx.parent  # type: ignore[assignment]
    return [p.id for p in catalog.all() if p.id.startswith(incomplete)]


config_option = setting(
    "--config",
    type=click.Path(dir_okay=False),
    callback=_load_config,
    is_eager=True,
    expose_value=False,
    envvar="AUTOTRANSCODE_CONFIG",
    help="TOML config file",
)

state_dir_option = setting(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="AUTOTRANSCODE_STATE_DIR",
    help="Journal, local store and queues",
)

backend_option = setting(
    "--backend",
    type=click.Choice(["local", "aws"]),
    envvar="AUTOTRANSCODE_BACKEND",
    help="Where objects and queues live",
)

preset_option = setting(
    "--preset",
    multiple=True,
    envvar="AUTOTRANSCODE_PRESET",
    shell_complete=_preset_names,
    help="Output preset; repeat for several outputs per file (`autotranscode presets` lists them)",
)

audio_option = setting(
    "--audio",
    type=click.Choice(["all", "first"]),
    envvar="AUTOTRANSCODE_AUDIO",
    help="Audio tracks each output carries: all of the source's (each language, commentary), "
    "or its first alone",
    default_text="each preset's own: all, for the built-in ones",
)

quality_option = setting(
    "--quality",
    envvar="AUTOTRANSCODE_QUALITY",
    metavar="vmaf:N",
    help="A VMAF target: each file's CRF is searched (short samples, scored) to reach N at "
    "the smallest size, e.g. vmaf:93",
    default_text="each preset's fixed CRF",
)

measure_quality_option = setting(
    "--measure-quality",
    is_flag=True,
    default=None,
    envvar="AUTOTRANSCODE_MEASURE_QUALITY",
    help="Score every video output's VMAF (sampled), with or without --quality",
)

workers_option = setting(
    "--workers",
    type=int,
    envvar="AUTOTRANSCODE_WORKERS",
    help="Files this process transcodes at once; 0: none, the jobs wait for "
    "`autotranscode worker` processes (aws) or another process on this state dir",
)

pattern_option = setting(
    "--pattern",
    multiple=True,
    envvar="AUTOTRANSCODE_PATTERN",
    help="Glob of file names to take, e.g. '*.mov'; repeatable",
    default_text="common audio and video extensions",
)

ffmpeg_option = setting(
    "--ffmpeg",
    envvar="AUTOTRANSCODE_FFMPEG",
    help="ffmpeg to run",
    default_text="the one bundled by imageio-ffmpeg",
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

in_place_option = setting(
    "--in-place",
    is_flag=True,
    default=None,
    envvar="AUTOTRANSCODE_IN_PLACE",
    help="Replace each source with its output, in its own folder (one video preset); the "
    "original goes to the trash for --keep-days (see `autotranscode library`)",
)
replace_option = setting(
    "--replace",
    type=click.Choice(["always", "smaller", "never"]),
    envvar="AUTOTRANSCODE_REPLACE",
    help="In place: replace a source always, only when its output is smaller, or never "
    "(then only say what it would save)",
)
keep_originals_option = setting(
    "--keep-originals",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="AUTOTRANSCODE_KEEP_ORIGINALS",
    help="In place: folder the replaced originals go to, under their full path",
    default_text="trash/ in the state dir",
)
keep_days_option = setting(
    "--keep-days",
    type=int,
    envvar="AUTOTRANSCODE_KEEP_DAYS",
    help="In place: full days a replaced original is kept before it is deleted",
)
dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Only say what would be done to each file, and the space it would save (in place); "
    "nothing is written.",
)
#: How a source is replaced in place (``library``, ``--in-place``).
replacing_options = options(replace_option, keep_originals_option, keep_days_option)


chunk_seconds_option = setting(
    "--chunk-seconds",
    type=float,
    metavar="N",
    envvar="AUTOTRANSCODE_CHUNK_SECONDS",
    help="Cut a video longer than about 2N seconds into chunks of about N seconds, "
    "transcoded by many workers at once and joined (2 to 3600; 60 suits the aws backend)",
    default_text="off: each file is one job",
)
chunk_scenes_option = setting(
    "--chunk-scenes",
    is_flag=True,
    default=None,
    envvar="AUTOTRANSCODE_CHUNK_SCENES",
    help="With --chunk-seconds: cut at a keyframe on a scene change near each cut where "
    "there is one (costs one low-resolution decode of the video before its chunks start)",
)

hours_option = setting(
    "--hours",
    metavar="HH:MM-HH:MM,...",
    envvar="AUTOTRANSCODE_HOURS",
    help="Start transcoding only in these hours (local time; e.g. 01:00-07:00, or "
    "22:00-02:00,12:00-13:00); files found outside them wait, queued. A job started "
    "inside finishes",
    default_text="any hour",
)
nice_option = setting(
    "--nice",
    type=int,
    envvar="AUTOTRANSCODE_NICE",
    help="Niceness of the ffmpeg processes (0-19; 19 the most polite)",
    default_text="this process's",
)
ionice_option = setting(
    "--ionice",
    metavar="CLASS[:LEVEL]",
    envvar="AUTOTRANSCODE_IONICE",
    help="I/O class of the ffmpeg processes: idle, or best-effort:LEVEL (0-7, 7 the lowest)",
    default_text="this process's",
)
threads_option = setting(
    "--threads",
    type=int,
    metavar="N",
    envvar="AUTOTRANSCODE_THREADS",
    help="Encoder threads of each ffmpeg (1-256; e.g. 1 for a worker pinned to one core "
    "with taskset, one worker per core)",
    default_text="ffmpeg's: one per CPU this process may use",
)
#: The ffmpeg children's priorities (run, transcode, worker).
priority_options = options(nice_option, ionice_option)
rescan_option = setting(
    "--rescan",
    type=float,
    envvar="AUTOTRANSCODE_RESCAN",
    help="Seconds between full rescans of DROP, which catch what file events missed "
    "(a rescan reads the folders' entries, never the files)",
)


def _patterns(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    """``--sidecars '*.srt,*.nfo'`` as a list (Settings checks each; ``none``: not any)."""
    return None if value is None else value.split(",")


sidecars_option = setting(
    "--sidecars",
    metavar="PATTERN,...",
    envvar="AUTOTRANSCODE_SIDECARS",
    callback=_patterns,
    help="Files beside a source that share its name (ep1.en.srt, ep1-poster.jpg) copied "
    "beside its outputs, by glob; 'none' for none",
)

endpoint_option = click.option(
    "--endpoint-url",
    cls=SectionOption,
    section=AWS,
    envvar="AUTOTRANSCODE_ENDPOINT_URL",
    help="S3/SQS/SNS endpoint (e.g. a compatible server) [default: AWS, or AWS_ENDPOINT_URL].",
)
region_option = click.option(
    "--region",
    cls=SectionOption,
    section=AWS,
    envvar="AUTOTRANSCODE_REGION",
    help="Region [default: the AWS chain's: AWS_REGION, AWS_DEFAULT_REGION, the profile].",
)
profile_option = click.option(
    "--profile",
    cls=SectionOption,
    section=AWS,
    envvar="AUTOTRANSCODE_PROFILE",
    help="Credentials profile [default: the AWS chain's].",
)
name_option = setting(
    "--name",
    section=AWS,
    envvar="AUTOTRANSCODE_NAME",
    help="Deployment name, prefix of buckets, queues and topic",
)
engine_option = setting(
    "--engine",
    section=AWS,
    type=click.Choice(["workers", "mediaconvert"]),
    envvar="AUTOTRANSCODE_ENGINE",
    help="Who transcodes: our workers, or AWS Elemental MediaConvert",
)

#: The aws backend's connection and deployment, for commands that may use either backend.
aws_options = options(endpoint_option, region_option, profile_option, name_option, engine_option)


def _aws_backend(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """The commands that manage the aws deployment are on the aws backend whatever the
    environment or the config file say; only ``--backend local`` on their command line is
    a mistake to point out."""
    source = ctx.get_parameter_source(param.name or "")
    if value == "local" and source is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError(
            f"{ctx.info_name} manages the aws backend's cloud resources: drop --backend local "
            "(the local backend keeps everything in --state-dir, and each run resumes or "
            "removes what a previous one left there)",
            ctx,
        )
    return "aws"


#: For the aws-only commands: --backend is accepted (aws) but not shown, since it is implied.
aws_backend_option = click.option(
    "--backend",
    type=click.Choice(["local", "aws"]),
    hidden=True,
    callback=_aws_backend,
)


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


def existing_state_dir(state_dir: Path) -> Path:
    """The state dir of a command that only reads what others did (status, retry): never
    made here, so a mistyped --state-dir is said, not answered with "no files yet"."""
    if not state_dir.is_dir():
        raise ConfigError(
            f"state dir {shown(str(state_dir))} does not exist: nothing has run with it yet "
            "(check --state-dir or AUTOTRANSCODE_STATE_DIR)"
        )
    return state_dir


def plural(count: int, noun: str) -> str:
    """``1 file``, ``2 files``: for the nouns we count, which all take an s."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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
        #: The signal that asked for the stop (SIGINT: Ctrl+C), once one did.
        self.signum: int | None = None
        #: Called (in the main thread, from the handler) once a stop is asked.
        self.on_stop: list[Callable[[], None]] = []

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.event.is_set():
            os._exit(EXIT_INTERRUPTED)
        self.signum = signum
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
