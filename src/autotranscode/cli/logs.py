"""Log lines for people and for services: how much (``-q``, ``-v``, ``-vv``), in which form
(``--log-format text|json``) and where (stderr, or ``--log-file`` with rotation).

Only the CLI configures handlers. A name or reason in a message is made one visible line
(``text.shown``) by the formatters, whichever part logged it; the JSON form escapes what
JSON must and nothing twice.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.handlers
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ConfigError
from ..text import shown
from .options import LOGGING, SectionOption, options

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

#: A log file is rotated at this size, keeping LOG_FILE_BACKUPS older ones (PATH.1 …).
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5
#: What a record may carry (``extra=``) that the JSON form gives a field of its own.
FIELDS = ("file", "stage", "job_id")
#: Libraries whose INFO is about their own plumbing: shown from -vv only.
NOISY = ("botocore", "boto3", "s3transfer", "urllib3", "watchdog")


@dataclass(frozen=True)
class Logs:
    """The logging options of one command line."""

    verbose: int = 0
    quiet: bool = False
    format: str = "text"
    file: Path | None = None

    def level(self, least: int = 0) -> int:
        """Errors only with -q; else warnings, INFO from -v (or ``least``), DEBUG from -vv."""
        if self.quiet:
            return logging.ERROR
        verbose = max(self.verbose, least)
        return logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG


def logging_options(func: F) -> F:
    """-q, -v, --log-format and --log-file, handed to the command as one ``logs: Logs``."""

    @functools.wraps(func)
    def command(
        *args: Any, verbose: int, quiet: bool, log_format: str, log_file: Path | None, **kw: Any
    ) -> Any:
        if quiet and verbose:
            raise click.UsageError("-q and -v ask for opposite things: give one of them")
        return func(*args, logs=Logs(verbose, quiet, log_format, log_file), **kw)

    return options(  # type: ignore[return-value]
        click.option(
            "-q",
            "--quiet",
            cls=SectionOption,
            section=LOGGING,
            is_flag=True,
            help="Log errors only.",
        ),
        click.option(
            "-v",
            "--verbose",
            cls=SectionOption,
            section=LOGGING,
            count=True,
            help="More log lines: -v each file's steps, -vv debug.",
        ),
        click.option(
            "--log-format",
            cls=SectionOption,
            section=LOGGING,
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            envvar="AUTOTRANSCODE_LOG_FORMAT",
            help="json: one object a line (time, level, logger, message; file, stage, job_id "
            "where known).",
        ),
        click.option(
            "--log-file",
            cls=SectionOption,
            section=LOGGING,
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="AUTOTRANSCODE_LOG_FILE",
            help=f"Write log lines to this file instead of stderr, rotated at "
            f"{LOG_FILE_BYTES // 2**20} MB ({LOG_FILE_BACKUPS} old ones kept as PATH.1 …).",
        ),
    )(command)


class TextFormatter(logging.Formatter):
    """Log lines as text, each message one visible line whatever names it holds."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = shown(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and the
    record's ``file``, ``stage`` and ``job_id`` when it has them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": shown(record.getMessage()),
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = shown(str(value))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def start_logging(
    logs: Logs, console: Console | None = None, *, progress: bool = False, least: int = 0
) -> None:
    """Handlers for this command's log lines.

    ``console``: a terminal that shows the progress display (text lines go through rich,
    above it). ``progress``: a command whose progress, without a display, is log lines
    (INFO on the autotranscode logger), shown unless -q. ``least``: the verbosity of a
    command that is a service (``worker``: INFO). The start-up line of ``run`` is INFO too,
    and shown unless -q.
    """
    level = logs.level(least)
    handler = _handler(logs, console)
    root = logging.getLogger()
    root.handlers.clear()
    root.addHandler(handler)
    root.setLevel(level)
    shown_info = level if logs.quiet else min(level, logging.INFO)
    package = shown_info if progress and console is None else level
    logging.getLogger("autotranscode").setLevel(package)
    logging.getLogger("autotranscode.cli").setLevel(shown_info)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _handler(logs: Logs, console: Console | None) -> logging.Handler:
    handler: logging.Handler
    if logs.file is not None:
        try:
            handler = logging.handlers.RotatingFileHandler(
                logs.file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
            )
        except OSError as exc:
            raise ConfigError(
                f"--log-file {shown(str(logs.file))} cannot be opened ({exc.strerror or exc})"
            ) from exc
    elif console is not None and logs.format == "text":
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, markup=False)
        handler.setFormatter(TextFormatter("%(message)s"))
        return handler
    else:
        handler = logging.StreamHandler(sys.stderr)
    if logs.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(message)s"))
    return handler
