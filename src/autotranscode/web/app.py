"""The Starlette app: server-rendered pages, the JSON API beside them, a live stream.

Built by ``create_app`` for one state dir; it reads the journal through a connection of
its own (the pipeline's commits reach it as they land) and writes only what the CLI's
``retry`` writes. Blocking work (SQLite, files) runs in Starlette's thread pool.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import anyio
import msgspec
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import status
from ..backends import Backend
from ..errors import AutotranscodeError
from ..journal import Journal
from ..progress import clock_text, size_text
from ..service import JOURNAL_FILE, usable_state_dir
from ..settings import Settings
from ..stages import Stage
from ..text import shown
from ..waiting import Refused
from .openapi import openapi
from .security import CSRF_FIELD, SESSION_COOKIE, Guard, Keys
from .views import (
    DEFAULT_UPLOAD_LIMIT,
    PAGE_SIZE,
    Dashboard,
    RetryRefused,
    UploadError,
    WorkersView,
    receive_upload,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: How often a live stream looks for news (one cheap statement), and the longest silence
#: before it sends a comment, so proxies and browsers keep the connection.
TICK_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0
#: Lines of a file's log the File page shows.
LOG_TAIL_LINES = 60
JSON = "application/json"
#: What the Queue page's buttons do to a file.
ACTIONS: dict[str, Callable[[Dashboard, str], None]] = {
    "cancel": Dashboard.cancel,
    "front": Dashboard.to_front,
}


def create_app(
    state_dir: Path,
    settings: Settings,
    *,
    token: str | None = None,
    drop: Path | None = None,
    out: Path | None = None,
    upload_limit: int = DEFAULT_UPLOAD_LIMIT,
    backend: Backend | None = None,
    backend_problem: str | None = None,
    expected_workers: int = 0,
) -> Starlette:
    """The dashboard of ``state_dir``'s journal. ``token``: required of every request (see
    ``security``); None serves loopback names only. ``drop`` enables uploads into it;
    ``out`` adds its disk space to ``/healthz``. ``backend``: where workers' heartbeats and
    the job queue are (workers, queue depth, cancel, move to the front); without one,
    ``backend_problem`` says why in ``/healthz``. ``expected_workers``: workers this process
    runs (``run``), fewer alive is not ready."""
    journal = Journal(usable_state_dir(state_dir) / JOURNAL_FILE)
    dash = Dashboard(
        state_dir,
        settings,
        journal,
        drop,
        out,
        upload_limit,
        backend=backend,
        backend_problem=backend_problem,
        expected_workers=expected_workers,
    )
    keys = Keys(token)
    templates = _templates()

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.update(csrf=keys.csrf, login=keys.token is not None, uploads=drop is not None)
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def not_found(request: Request, what: str) -> Response:
        return page(request, "error.html", 404, title="Not found", message=what)

    # -- pages ---------------------------------------------------------------------------------

    def overview(request: Request) -> Response:
        return page(
            request,
            "overview.html",
            nav="overview",
            totals=dash.totals(),
            in_flight=dash.in_flight(),
            files=dash.recent(10),
            side=dash.side(),
            throughput=dash.throughput(),
            now=time.time(),
        )

    def queue_page(request: Request) -> Response:
        return page(request, "queue.html", nav="queue", queue=dash.queue())

    def queue_action(request: Request) -> Response:
        """The Queue page's buttons (a form POST): done, back to the page; else why not."""
        act = ACTIONS.get(request.path_params["action"])
        if act is None:
            return not_found(request, "No such action: cancel or front.")
        try:
            act(dash, request.path_params["fid"])
        except KeyError:
            return not_found(request, "No such file in the journal.")
        except Refused as exc:
            return page(request, "error.html", 409, title="Not done", message=str(exc))
        return RedirectResponse("/queue", status_code=303)

    def history(request: Request) -> Response:
        q, stage, number = _history_query(request)
        result = dash.history(q, stage, (number - 1) * PAGE_SIZE)
        pages = max((result.total + PAGE_SIZE - 1) // PAGE_SIZE, 1)

        def link(n: int) -> str:
            return "/history?" + urlencode(
                {"q": q, "stage": stage.value if stage else "", "page": n}
            )

        return page(
            request,
            "history.html",
            nav="history",
            result=result,
            q=q,
            stage=stage.value if stage else "",
            stages=[s.value for s in Stage],
            number=number,
            pages=pages,
            prev_link=link(number - 1) if number > 1 else None,
            next_link=link(number + 1) if number < pages else None,
        )

    def file_page(request: Request) -> Response:
        f = dash.file(request.path_params["fid"])
        if f is None:
            return not_found(request, "No such file in the journal.")
        log_lines = status.log_tail(Path(f.log), LOG_TAIL_LINES) if f.log else []
        return page(request, "file.html", nav="history", f=f, log_lines=log_lines)

    def download(request: Request) -> Response:
        path = dash.output_file(request.path_params["fid"], request.path_params["preset"])
        if path is None:
            return not_found(request, "No such output in OUT (not done, moved, or a folder).")
        return FileResponse(path, filename=path.name, content_disposition_type="attachment")

    def file_retry(request: Request) -> Response:
        try:
            follow = dash.retry(request.path_params["fid"])
        except KeyError:
            return not_found(request, "No such file in the journal.")
        except RetryRefused as exc:
            return page(request, "error.html", 409, title="Not retried", message=str(exc))
        return RedirectResponse(f"/files/{follow}", status_code=303)

    def presets_page(request: Request) -> Response:
        return page(request, "presets.html", nav="presets", presets=dash.presets())

    async def login(request: Request) -> Response:
        target = _safe_next(request.query_params.get("next", "/"))
        if keys.token is None:
            return RedirectResponse(target, status_code=303)
        if request.method == "GET":
            return page(request, "login.html", target=target, failed=False)
        # The form is a few bytes (the guard has read and checked it already); parsed here
        # rather than by request.form(), which would need python-multipart for nothing.
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        given = next(iter(form.get("token", [])), "")
        if not keys.token_ok(given):
            return page(request, "login.html", 401, target=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE, keys.session, httponly=True, samesite="strict", path="/"
        )
        return response

    def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # -- API -----------------------------------------------------------------------------------

    def api_status(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "10"))
            stages = [Stage(s) for s in request.query_params.getlist("stage")]
        except ValueError:
            return _error(400, "limit is a number; stage is one of the stages")
        report = status.report(journal, state_dir, max(limit, 0), stages=stages)
        return Response(status.to_json(report), media_type=JSON)

    def api_files(request: Request) -> Response:
        try:
            offset = max(int(request.query_params.get("offset", "0")), 0)
            limit = min(max(int(request.query_params.get("limit", str(PAGE_SIZE))), 0), 500)
            raw_stage = request.query_params.get("stage")
            stage = Stage(raw_stage) if raw_stage else None
        except ValueError:
            return _error(400, "offset and limit are numbers; stage is one of the stages")
        result = dash.history(request.query_params.get("q", ""), stage, offset, limit)
        return Response(status.to_json(result), media_type=JSON)

    def api_file(request: Request) -> Response:
        f = dash.file(request.path_params["fid"])
        if f is None:
            return _error(404, "no such file in the journal")
        return Response(status.to_json(f), media_type=JSON)

    def api_retry(request: Request) -> Response:
        try:
            follow = dash.retry(request.path_params["fid"])
        except KeyError:
            return _error(404, "no such file in the journal")
        except RetryRefused as exc:
            return _error(409, str(exc))
        return JSONResponse({"ok": True, "id": follow})

    def api_queue(request: Request) -> Response:
        return Response(status.to_json(dash.queue()), media_type=JSON)

    def api_queue_action(request: Request) -> Response:
        fid, act = request.path_params["fid"], ACTIONS.get(request.path_params["action"])
        if act is None:
            return _error(404, "no such action: cancel or front")
        try:
            act(dash, fid)
        except KeyError:
            return _error(404, "no such file in the journal")
        except Refused as exc:
            return _error(409, str(exc))
        return JSONResponse({"ok": True, "id": fid})

    def api_workers(request: Request) -> Response:
        side = dash.side()
        view = WorkersView(side.workers, side.queue_depth, side.problem, dash.throughput())
        return Response(msgspec.json.encode(view), media_type=JSON)

    def api_presets(request: Request) -> Response:
        return Response(msgspec.json.encode(dash.presets()), media_type=JSON)

    def api_session(request: Request) -> Response:
        return JSONResponse({"csrf_token": keys.csrf, "uploads": drop is not None})

    async def api_upload(request: Request) -> Response:
        if drop is None:
            return _error(404, "uploads need a drop folder: serve with `run DROP OUT --web`")
        declared = request.headers.get("content-length")
        try:
            path = await receive_upload(
                drop,
                request.query_params.get("name", ""),
                request.stream(),
                dash.upload_limit,
                int(declared) if declared and declared.isdigit() else None,
            )
        except UploadError as exc:
            return _error(exc.status, str(exc))
        return JSONResponse({"ok": True, "name": shown(path.name)}, status_code=201)

    async def api_events(request: Request) -> Response:
        return StreamingResponse(
            _live(dash),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    def api_openapi(request: Request) -> Response:
        return JSONResponse(openapi())

    def healthz(request: Request) -> Response:
        health = dash.health()
        return JSONResponse(health, status_code=200 if health["ok"] else 503)

    def metrics(request: Request) -> Response:
        return PlainTextResponse(dash.metrics(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            dash.stopping.set()
            journal.close()

    routes = [
        Route("/", overview),
        Route("/history", history),
        Route("/files/{fid}", file_page),
        Route("/files/{fid}/retry", file_retry, methods=["POST"]),
        Route("/files/{fid}/outputs/{preset}", download),
        Route("/presets", presets_page),
        Route("/queue", queue_page),
        Route("/queue/{fid}/{action:str}", queue_action, methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/status", api_status),
        Route("/api/files", api_files),
        Route("/api/files/{fid}", api_file),
        Route("/api/files/{fid}/retry", api_retry, methods=["POST"]),
        Route("/api/queue", api_queue),
        Route("/api/queue/{fid}/{action:str}", api_queue_action, methods=["POST"]),
        Route("/api/workers", api_workers),
        Route("/api/presets", api_presets),
        Route("/api/session", api_session),
        Route("/api/upload", api_upload, methods=["POST"]),
        Route("/api/events", api_events),
        Route("/api/openapi.json", api_openapi),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def unavailable(request: Request, exc: Exception) -> Response:
        """The journal cannot be read (locked too long, damaged, gone): one line, 503."""
        log.warning("dashboard: %s", exc)
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get(
            "accept", ""
        ):
            return _error(503, str(exc))
        return page(request, "error.html", 503, title="Unavailable", message=str(exc))

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={AutotranscodeError: unavailable}
    )
    app.state.dashboard = dash
    app.add_middleware(Guard, keys=keys)
    return app


async def _live(dash: Dashboard) -> AsyncIterator[bytes]:
    """Server-Sent Events: the totals, the files in flight, workers and queue depth, each time
    the journal or those have changed (looked at every ``TICK_SECONDS``), until the client
    goes or the server stops."""
    yield b"retry: 2000\n\n"
    last: tuple[int, object] | None = None
    quiet = 0.0
    while not dash.stopping.is_set():
        try:
            # The journal's changes, and the workers' and queue's (read every SIDE_SECONDS).
            version = await anyio.to_thread.run_sync(dash.live_version)
            data = await anyio.to_thread.run_sync(dash.live) if version != last else None
        except AutotranscodeError as exc:  # a journal busy or gone: said, then tried again
            log.warning("dashboard: %s", exc)
            yield b"event: problem\ndata: " + msgspec.json.encode(str(exc)) + b"\n\n"
            await anyio.sleep(KEEPALIVE_SECONDS / 3)
            continue
        if data is not None:
            last = version
            yield b"event: status\ndata: " + data + b"\n\n"
            quiet = 0.0
        elif quiet >= KEEPALIVE_SECONDS:
            yield b": still here\n\n"
            quiet = 0.0
        await anyio.sleep(TICK_SECONDS)
        quiet += TICK_SECONDS


def _templates() -> Jinja2Templates:
    env = Environment(
        loader=PackageLoader("autotranscode.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters.update(shown=shown, size=size_text, clock=clock_text, when=_when)
    return Jinja2Templates(env=env)


def _when(iso: str) -> str:
    return iso.replace("T", " ")[:19] + " UTC"


def _history_query(request: Request) -> tuple[str, Stage | None, int]:
    q = request.query_params.get("q", "")
    try:
        stage = Stage(request.query_params["stage"]) if request.query_params.get("stage") else None
    except ValueError:
        stage = None
    try:
        number = max(int(request.query_params.get("page", "1")), 1)
    except ValueError:
        number = 1
    return q, stage, number


def _safe_next(target: str) -> str:
    """Only a path of this site: a login must not send the browser elsewhere."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _error(status_code: int, reason: str) -> Response:
    return JSONResponse({"error": reason}, status_code=status_code)


__all__ = ["CSRF_FIELD", "create_app"]
