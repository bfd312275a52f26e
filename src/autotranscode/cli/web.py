"""The web dashboard from the command line: ``web`` serves a state dir's journal from a
process of its own; ``run --web`` serves it beside the pipeline (``dashboard``).

Starlette and uvicorn are imported only here, inside the commands that serve: every
other command starts as fast as before.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from ..backends import Backend, open_backend
from ..errors import AutotranscodeError
from ..settings import Settings
from ..web.server import DEFAULT_BIND  # stdlib only: uvicorn loads when a server starts
from .logs import Logs, logging_options, start_logging
from .options import (
    EXIT_OK,
    Command,
    Stopper,
    config_option,
    errors,
    settings_from,
    state_dir_option,
)

F = TypeVar("F", bound=Callable[..., Any])

#: The largest upload, in MB, unless --web-upload-limit says otherwise.
DEFAULT_UPLOAD_LIMIT_MB = 20_000

_token_option = click.option(
    "--web-token",
    envvar="AUTOTRANSCODE_WEB_TOKEN",
    help="Token every dashboard request must carry (needed beyond loopback; made up and "
    "printed at start when not given).",
)
_upload_limit_option = click.option(
    "--web-upload-limit",
    type=click.IntRange(min=0),
    default=DEFAULT_UPLOAD_LIMIT_MB,
    show_default=True,
    envvar="AUTOTRANSCODE_WEB_UPLOAD_LIMIT",
    help="Largest file (MB) the dashboard accepts for upload into DROP.",
)


def web_option(func: F) -> F:
    """``run``'s options for the dashboard: --web [HOST:PORT], --web-token, the upload limit."""
    func = _upload_limit_option(func)
    func = _token_option(func)
    return click.option(
        "--web",
        "web",
        is_flag=False,
        flag_value=DEFAULT_BIND,
        default=None,
        metavar="[HOST:PORT]",
        help=f"Serve the web dashboard too (at {DEFAULT_BIND} unless given).",
    )(func)


@contextlib.contextmanager
def dashboard(
    params: dict[str, Any],
    s: Settings,
    drop: Path | None = None,
    out: Path | None = None,
    bind: str | None = None,
    backend: Backend | None = None,
) -> Iterator[None]:
    """The dashboard served while the block runs, if ``--web`` (or ``bind``) asks for it.

    ``backend``: the running client's (``run``: its in-process workers are expected alive);
    without one, the state dir's deployment is opened (never created) for the workers'
    heartbeats and the job queue, and what keeps it from opening goes into ``/healthz``."""
    where = bind or params.get("web")
    if not where:
        yield
        return
    from ..web.app import create_app
    from ..web.server import WebServer, parse_bind, token_for

    address = parse_bind(where)
    token, made_up = token_for(address, params.get("web_token"))
    limit_mb = params.get("web_upload_limit")
    expected = s.workers if backend is not None and s.engine == "workers" else 0
    problem = None
    with contextlib.ExitStack() as stack:
        if backend is None:
            try:
                backend = open_backend(s)
                stack.callback(backend.close)
            except AutotranscodeError as exc:
                problem = str(exc)
        app = create_app(
            s.state_dir,
            s,
            token=token,
            drop=drop,
            out=out,
            upload_limit=(DEFAULT_UPLOAD_LIMIT_MB if limit_mb is None else limit_mb) * 1000**2,
            backend=backend,
            backend_problem=problem,
            expected_workers=expected,
        )
        with WebServer(app, address) as server:
            click.echo(f"dashboard at {server.url}", err=True)
            if made_up:
                click.echo(
                    f"dashboard token: {token} (bound beyond loopback: log in with it, or send "
                    "it as Authorization: Bearer TOKEN; --web-token sets one)",
                    err=True,
                )
            yield


@click.command("web", cls=Command)
@click.option(
    "--web",
    "bind",
    default=DEFAULT_BIND,
    show_default=True,
    metavar="HOST:PORT",
    help="Where to serve the dashboard.",
)
@_token_option
@click.option(
    "--drop",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The drop folder of the run: enables uploads into it.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The output folder of the run: its free space joins /healthz.",
)
@_upload_limit_option
@config_option
@state_dir_option
@logging_options
def web(bind: str, drop: Path | None, out_dir: Path | None, logs: Logs, **params: Any) -> None:
    """Serve the web dashboard of --state-dir until Ctrl+C.

    It reads the journal that `run` writes (from this process or another); Retry hands a
    failed file back the way `autotranscode retry` does, and a running `run` takes it
    within seconds. Bound beyond loopback, every request needs the token.
    """
    stopper = Stopper(quiet=True)
    with errors():
        start_logging(logs)
        s = settings_from(params)
        with dashboard(params, s, drop=drop, out=out_dir, bind=bind):
            stopper.install()
            stopper.event.wait()
            click.echo("stopping the dashboard", err=True)
    sys.exit(EXIT_OK)
