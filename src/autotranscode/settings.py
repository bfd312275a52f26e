"""One frozen, validated settings object, resolved by the CLI: flag > environment > file > default.

Nothing here reads the environment at import time; ``default_state_dir`` and
``default_config_file`` are called when a command runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import presets
from .errors import ConfigError
from .media import DEFAULT_EXTENSIONS

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

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "autotranscode"


def default_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autotranscode" / "config.toml"


class Settings(BaseModel):
    """Everything a command needs to know; see ``autotranscode COMMAND --help`` for each."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["local", "aws"] = "local"
    preset: tuple[str, ...] = (presets.DEFAULT_PRESET,)
    workers: int = Field(default=DEFAULT_WORKERS, ge=0, le=64)
    state_dir: Path = Field(default_factory=default_state_dir)
    pattern: tuple[str, ...] = ()
    ffmpeg: str | None = None
    settle: float = Field(default=DEFAULT_SETTLE_SECONDS, ge=0, le=3600)
    poll: bool = False
    transfers: int = Field(default=DEFAULT_TRANSFERS, ge=1, le=64)
    visibility_timeout: int = Field(default=DEFAULT_VISIBILITY_SECONDS, ge=10, le=43200)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=100)
    on_success: Literal["keep", "move", "delete"] = "keep"
    #: Who transcodes: our workers (via the job queue) or AWS Elemental MediaConvert.
    engine: Literal["workers", "mediaconvert"] = "workers"
    #: The role MediaConvert assumes; default: the one `setup --engine mediaconvert` makes.
    mediaconvert_role: str | None = None
    # aws backend
    name: str = DEFAULT_NAME
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None

    @field_validator("preset")
    @classmethod
    def _presets(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            return (presets.DEFAULT_PRESET,)
        try:
            return tuple(dict.fromkeys(presets.get(p).id for p in v))
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use 1-24 lowercase letters, digits and hyphens (it names buckets)")
        return v

    @property
    def extensions(self) -> tuple[str, ...]:
        return DEFAULT_EXTENSIONS

    def matches(self, filename: str) -> bool:
        """Whether a file name counts as media under ``pattern`` (or the default extensions)."""
        import fnmatch

        lower = filename.lower()
        if self.pattern:
            return any(fnmatch.fnmatch(lower, p.lower()) for p in self.pattern)
        return lower.endswith(DEFAULT_EXTENSIONS)


def build(values: dict[str, Any]) -> Settings:
    """Validate resolved values into Settings, turning pydantic's report into one clear line."""
    clean = {k: v for k, v in values.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from exc


def load_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file; keys are the long option names (``state-dir`` or ``state_dir``).

    A ``[presets.NAME]`` table defines a custom preset (see ``presets.define``); they
    are registered here, before the ``preset`` setting that may name them is checked.
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
    for name, spec in custom.items():
        try:
            presets.define(name, spec)
        except ConfigError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    values: dict[str, Any] = {}
    for key, value in raw.items():
        field = key.replace("-", "_")
        if field not in Settings.model_fields:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        if field in ("preset", "pattern") and isinstance(value, str):
            value = [value]
        values[field] = value
    try:
        Settings(**values)
    except ValidationError as exc:
        raise ConfigError(f"config file {path}: {_explain(exc)}") from exc
    return values


def _explain(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]).replace("_", "-")
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"--{where}: {msg}" if where else msg
