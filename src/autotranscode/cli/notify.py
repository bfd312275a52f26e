"""``--notify-url`` and ``--on-done``: what ``run`` and ``transcode`` tell others of each
finished file (see ``notify``). Options of their own module, so the commands that take
them add one decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..notify import NotifyConfig

F = TypeVar("F", bound=Callable[..., Any])


def notify_options(func: F) -> F:
    func = click.option(
        "--on-done",
        metavar="CMD",
        envvar="AUTOTRANSCODE_ON_DONE",
        help="Run CMD (no shell) when a file is finished, with its output paths as arguments "
        "and AUTOTRANSCODE_FILE_ID, _STAGE, _SOURCE, _REASON in its environment.",
    )(func)
    return click.option(
        "--notify-url",
        metavar="URL",
        envvar="AUTOTRANSCODE_NOTIFY_URL",
        help="POST each finished file's notification (Elastic Transcoder's JSON) to URL, "
        "retried a few times; a failure is written in the file's log.",
    )(func)


def notify_config(params: dict[str, Any]) -> NotifyConfig | None:
    """The options' values, checked (ConfigError), or None when neither is given."""
    return NotifyConfig.parse(params.get("notify_url"), params.get("on_done"))
