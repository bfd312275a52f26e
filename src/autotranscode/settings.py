"""One frozen, validated settings object, resolved by the CLI: flag > environment > file > default.

Nothing here reads the environment at import time; ``default_state_dir`` and
``default_config_file`` are called when a command runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, field

from .errors import ConfigError
from .hours import Hours
from .media import presets
from .media.probe import DEFAULT_EXTENSIONS
from .messages import MAX_CHUNK_SECONDS, MAX_OUTPUTS, MIN_CHUNK_SECONDS, located
from .procs import IoPriority
from .sidecars import DEFAULT_PATTERNS as DEFAULT_SIDECARS
from .sidecars import parse as parse_sidecars

ENV_PREFIX = "AUTOTRANSCODE_"
DEFAULT_NAME = "autotranscode"
#: One libx264 encode already keeps two cores busy; more workers on a laptop only add memory.
DEFAULT_WORKERS = 1
#: A file must keep its size and mtime this long before it is taken.
DEFAULT_SETTLE_SECONDS = 0.5
DEFAULT_TRANSFERS = 4
#: A worker's lease on a job; heartbeats renew it while ffmpeg runs.
DEFAULT_VISIBILITY_SECONDS = 60
#: Attempts at a job before it goes to the dead-letter queue.
DEFAULT_MAX_ATTEMPTS = 3
#: aws: a job with no notice this long, while the job queue is empty, is submitted again.
DEFAULT_RESUBMIT_AFTER_SECONDS = 300
#: run: a full rescan of DROP this often catches what file events missed (stat data only).
DEFAULT_RESCAN_SECONDS = 30.0
#: In place: originals replaced are kept this many full days in the trash, then deleted.
DEFAULT_KEEP_DAYS = 7
#: In place, without --pattern: the video files (its one preset is a video preset, which
#: an audio file would only fail).
_AUDIO_EXTENSIONS = (".m4a", ".mp3", ".wav", ".flac", ".aac", ".ogg", ".opus", ".aif", ".aiff")
IN_PLACE_EXTENSIONS = tuple(e for e in DEFAULT_EXTENSIONS if e not in (*_AUDIO_EXTENSIONS, ".wma"))

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "autotranscode"


def default_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autotranscode" / "config.toml"


class Settings(msgspec.Struct, frozen=True):
    """Everything a command needs to know; see ``autotranscode COMMAND --help`` for each.

    Made by ``build``, which checks every value; the constructor checks only what
    ``__post_init__`` does.
    """

    backend: Literal["local", "aws"] = "local"
    preset: tuple[str, ...] = (presets.DEFAULT_PRESET,)
    #: The presets ``preset`` (and jobs) may name: built-in, plus the config file's custom ones.
    catalog: presets.Catalog = presets.DEFAULT_CATALOG
    #: The audio tracks every output carries ("all" or "first"); None: each preset's own.
    audio: presets.AudioTracks | None = None
    #: A VMAF target for every preset that can take one ("vmaf:93"); None: each preset's own.
    quality: str | None = None
    #: Every video output's VMAF measured (sampled), searched for or not.
    measure_quality: bool = False
    workers: Annotated[int, Meta(ge=0, le=64)] = DEFAULT_WORKERS
    state_dir: Path = field(default_factory=default_state_dir)
    pattern: tuple[str, ...] = ()
    ffmpeg: str | None = None
    settle: Annotated[float, Meta(ge=0, le=3600)] = DEFAULT_SETTLE_SECONDS
    poll: bool = False
    transfers: Annotated[int, Meta(ge=1, le=64)] = DEFAULT_TRANSFERS
    visibility_timeout: Annotated[int, Meta(ge=10, le=43200)] = DEFAULT_VISIBILITY_SECONDS
    max_attempts: Annotated[int, Meta(ge=1, le=100)] = DEFAULT_MAX_ATTEMPTS
    #: aws: seconds without a notice (and an empty job queue) before a job is taken for lost.
    resubmit_after: Annotated[int, Meta(ge=1, le=86400)] = DEFAULT_RESUBMIT_AFTER_SECONDS
    on_success: Literal["keep", "move", "delete"] = "keep"
    #: Files beside a source copied with its outputs (``sidecars``); ``none``: not any.
    sidecars: tuple[str, ...] = DEFAULT_SIDECARS
    #: Each output replaces its source in the source's folder (``library``).
    in_place: bool = False
    #: In place: replace "always", only when the output is "smaller", or "never" (report).
    replace: Literal["always", "smaller", "never"] = "smaller"
    #: In place: where replaced originals go; None: the trash folder in the state dir.
    keep_originals: Path | None = None
    keep_days: Annotated[int, Meta(ge=0, le=3650)] = DEFAULT_KEEP_DAYS
    #: Who transcodes: our workers (via the job queue) or AWS Elemental MediaConvert.
    engine: Literal["workers", "mediaconvert"] = "workers"
    #: The role MediaConvert assumes; default: the one `setup --engine mediaconvert` makes.
    mediaconvert_role: str | None = None
    #: When transcoding starts (``hours``): "01:00-07:00", local time; None: at any hour.
    hours: str | None = None
    #: Niceness and I/O class of the ffmpeg children (``procs.IoPriority``); None: as ours.
    nice: Annotated[int, Meta(ge=0, le=19)] | None = None
    ionice: str | None = None
    #: Encoder threads of each ffmpeg a worker runs (a worker pinned to one core: 1);
    #: None: ffmpeg's choice, one per CPU the process may use.
    threads: Annotated[int, Meta(ge=1, le=256)] | None = None
    rescan: Annotated[float, Meta(ge=1, le=86400)] = DEFAULT_RESCAN_SECONDS
    #: A video longer than about twice this is cut into chunks of about this many seconds,
    #: transcoded by many workers at once and joined (``engines.parts``); None: whole files.
    chunk_seconds: Annotated[float, Meta(ge=MIN_CHUNK_SECONDS, le=MAX_CHUNK_SECONDS)] | None = None
    #: With chunk_seconds: cuts prefer keyframes at scene changes (``media.scenes``: one
    #: cheap decode of the video on the worker that splits it).
    chunk_scenes: bool = False
    # aws backend
    name: str = DEFAULT_NAME
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None

    def __post_init__(self) -> None:
        """Presets by their ids, each once; a name that can name buckets. msgspec reports a
        failure here without the field's name, so the message carries the option."""
        if self.audio is not None and self.catalog.audio != self.audio:
            msgspec.structs.force_setattr(self, "catalog", self.catalog.with_audio(self.audio))
        if self.quality is not None or self.measure_quality:
            try:
                presets.parse_target("-", self.quality or "vmaf:1")
            except ConfigError:
                raise ValueError("--quality: use vmaf:N, N a VMAF score from 1 to 100") from None
            chosen = self.catalog.with_quality(self.quality, self.measure_quality)
            msgspec.structs.force_setattr(self, "catalog", chosen)
        try:
            ids = tuple(dict.fromkeys(self.catalog.get(p).id for p in self.preset))
        except ConfigError as exc:
            raise ValueError(f"--preset: {exc}") from exc
        if len(ids) > MAX_OUTPUTS:
            # A job with more would be refused by every worker.
            raise ValueError(f"--preset: at most {MAX_OUTPUTS} presets (outputs) per file")
        msgspec.structs.force_setattr(self, "preset", ids or (presets.DEFAULT_PRESET,))
        if self.quality is not None and not any(
            self.catalog.get(p).quality is not None for p in self.preset
        ):
            # Else the target would be ignored without a word (HLS, audio, pictures).
            raise ValueError(
                f"--quality: none of the presets ({', '.join(self.preset)}) can take a VMAF"
                " target; it needs a video preset with a crf"
            )
        msgspec.structs.force_setattr(self, "sidecars", parse_sidecars(self.sidecars))
        for option, check in (("hours", Hours.parse), ("ionice", IoPriority.parse)):
            value = getattr(self, option)
            try:
                if value is not None:
                    check(value)
            except ValueError as exc:
                raise ValueError(f"--{option}: {exc}") from exc
        if self.in_place:
            self._check_in_place()
        if not _NAME.match(self.name):
            raise ValueError(
                "--name: use 1-24 lowercase letters, digits and hyphens (it names buckets)"
            )

    def _check_in_place(self) -> None:
        """One file becomes one file: a single video preset, and no --on-success (the
        source is replaced, its original kept in the trash)."""
        if len(self.preset) != 1 or self.catalog.get(self.preset[0]).kind != "video":
            raise ValueError(
                "--in-place: give exactly one video preset (each file is replaced by one "
                f"output), not {', '.join(self.preset)}"
            )
        if self.on_success != "keep":
            raise ValueError(
                "--on-success: not with --in-place (the source is replaced and its original "
                "kept in the trash for --keep-days)"
            )

    def matches(self, filename: str) -> bool:
        """Whether a file name counts as media under ``pattern`` (or the default extensions)."""
        import fnmatch

        lower = filename.lower()
        if self.pattern:
            return any(fnmatch.fnmatch(lower, p.lower()) for p in self.pattern)
        return lower.endswith(IN_PLACE_EXTENSIONS if self.in_place else DEFAULT_EXTENSIONS)


def build(values: dict[str, Any]) -> Settings:
    """Validate resolved values into Settings, turning msgspec's report into one clear line."""
    clean = {k: v for k, v in values.items() if v is not None}
    for key in clean:
        if key not in Settings.__struct_fields__:
            raise ConfigError(f"--{key.replace('_', '-')}: not a setting")
    try:
        return msgspec.convert(clean, Settings, dec_hook=_path)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, clean)) from exc


def _path(kind: type, value: Any) -> Any:
    if kind is Path:
        if isinstance(value, str | os.PathLike):
            return Path(value)
        raise TypeError(f"Expected a path, got `{type(value).__name__}`")
    raise NotImplementedError


def load_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file; keys are the long option names (``state-dir`` or ``state_dir``).

    A ``[presets.NAME]`` table defines a custom preset (see ``presets.build``); they
    become the ``catalog`` value, against which the ``preset`` setting is checked.
    """
    import tomllib  # only when there is a file to read

    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    custom = raw.pop("presets", {})
    if not isinstance(custom, dict) or not all(isinstance(v, dict) for v in custom.values()):
        raise ConfigError(f"config file {path}: [presets] must hold one table per preset")
    values: dict[str, Any] = {}
    if custom:
        try:
            values["catalog"] = presets.Catalog.define(custom)
        except ConfigError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    for key, value in raw.items():
        setting = key.replace("-", "_")
        if setting not in Settings.__struct_fields__ or setting == "catalog":
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        if setting in ("preset", "pattern") and isinstance(value, str):
            value = [value]
        if setting == "sidecars" and isinstance(value, str):
            value = value.split(",")  # "none", or "*.srt,*.nfo" as on the command line
        values[setting] = value
    try:
        build(values)
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    return values


def _explain(exc: msgspec.ValidationError, values: dict[str, Any]) -> str:
    """``--workers: a whole number from 0 to 64``: the option a value came by (checks in
    ``__post_init__`` name theirs), and what it takes in our words, not msgspec's."""
    where, problem = located(exc)
    if not where:
        return problem
    given = f", not {values[where]!r}" if where in values else ""
    return f"--{where.replace('_', '-')}: {_in_our_words(where, problem)}{given}"


#: msgspec's names of the JSON/TOML types, as a person would say what a setting takes.
_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "array": "a list",
}


def _in_our_words(field: str, problem: str) -> str:
    """What the field takes, for msgspec's "Expected `int` >= 0" or "Invalid enum value"."""
    import msgspec.inspect

    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    kind = next((f.type for f in info.fields if f.name == field), None)
    if isinstance(kind, msgspec.inspect.UnionType):  # optional: what it takes when given
        kind = next((t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)), kind)
    if isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        what = _KINDS["int" if isinstance(kind, msgspec.inspect.IntType) else "float"]
        low, high = kind.ge, kind.le
        if low is not None and high is not None:
            return f"{what} from {low:g} to {high:g}"
        return what
    if isinstance(kind, msgspec.inspect.LiteralType):
        return "one of " + ", ".join(map(str, kind.values))
    match = re.match(r"Expected `(\w+)`", problem)
    if match and match.group(1) in _KINDS:
        return _KINDS[match.group(1)]
    return problem
