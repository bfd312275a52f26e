"""The dashboard served for real: uvicorn on its thread (as ``run --web`` serves it), its
live stream (Server-Sent Events) seeing the pipeline's commits from another connection,
and uploads into DROP, streamed and renamed whole, refused with nothing written."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from autotranscode.errors import ConfigError
from autotranscode.journal import FileState, Journal
from autotranscode.settings import Settings
from autotranscode.stages import Stage
from autotranscode.web.app import create_app
from autotranscode.web.server import Bind, WebServer, parse_bind, token_for
from autotranscode.web.views import UPLOAD_PREFIX

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

LOCAL = "http://127.0.0.1:8765"


def events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream."""
    name, data = "message", ""
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield name, data
            name, data = "message", ""


def test_the_live_stream_pushes_the_pipelines_changes(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    app = create_app(state_dir, Settings(state_dir=state_dir))
    pipeline_side = Journal(state_dir / "journal.db")  # the pipeline's own connection
    try:
        with (
            WebServer(app, Bind("127.0.0.1", 0)) as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
            http.stream("GET", "/api/events") as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            received = events(stream.iter_lines())
            name, data = next(received)
            assert name == "status"
            assert json.loads(data)["totals"]["files"] == 0
            pipeline_side.record(
                "f1", Path("/drop/a.mov"), tmp_path, ("web-720p",), 10, time.time_ns()
            )
            pipeline_side.advance("f1", FileState.UPLOADING)
            pipeline_side.story.note_progress("f1", Stage.UPLOADING, 0.5)
            seen: list[dict[str, object]] = []
            for _, data in received:
                update = json.loads(data)
                flying = update["in_flight"]
                if flying and (flying[0]["progress"] or {}).get("percent") == 50.0:
                    seen.append(update)
                    break
            assert seen and seen[0]["totals"]["in_flight"] == 1  # type: ignore[index]
            # A page still open does not hold the stop up: its stream ends with the server.
            server.stop()
            assert list(received) == []
            assert not [t for t in threading.enumerate() if t.name == "autotranscode-web"]
    finally:
        pipeline_side.close()


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    app = create_app(tmp_path, Settings(state_dir=tmp_path))
    with WebServer(app, Bind("127.0.0.1", 0)) as first:
        other = create_app(tmp_path, Settings(state_dir=tmp_path))
        with pytest.raises(ConfigError, match=r"cannot listen on http://127\.0\.0\.1:\d+/"):
            WebServer(other, Bind("127.0.0.1", first.port)).start()
        other.state.dashboard.journal.close()


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        ("", Bind("127.0.0.1", 8765)),
        (":9000", Bind("127.0.0.1", 9000)),
        ("0.0.0.0:80", Bind("0.0.0.0", 80)),
        ("[::1]:8080", Bind("::1", 8080)),
        ("localhost", Bind("localhost", 8765)),
    ],
)
def test_bind_addresses(text: str, bind: Bind) -> None:
    assert parse_bind(text) == bind


def test_beyond_loopback_there_is_always_a_token() -> None:
    assert token_for(Bind("127.0.0.1", 1), None) == (None, False)
    assert token_for(Bind("0.0.0.0", 1), "given") == ("given", False)
    made, generated = token_for(Bind("0.0.0.0", 1), None)
    assert generated and made and len(made) >= 24
    assert token_for(Bind("::", 1), None)[1]


# -- upload -------------------------------------------------------------------------------------


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def client(tmp_path: Path, drop: Path) -> Iterator[TestClient]:
    state_dir = tmp_path / "state"
    app = create_app(state_dir, Settings(state_dir=state_dir), drop=drop, upload_limit=1000)
    with TestClient(app, base_url=LOCAL) as c:
        c.headers["X-CSRF-Token"] = c.get("/api/session").json()["csrf_token"]
        yield c


def chunks(n: int, size: int = 100) -> Iterator[bytes]:
    for i in range(n):
        yield bytes([i % 256]) * size


def test_an_upload_lands_whole_under_its_name(client: TestClient, drop: Path) -> None:
    answer = client.post("/api/upload", params={"name": "Früh clip.mov"}, content=chunks(9))
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"ok": True, "name": "Früh clip.mov"}
    assert [p.name for p in drop.iterdir()] == ["Früh clip.mov"]
    assert (drop / "Früh clip.mov").read_bytes() == b"".join(chunks(9))


@pytest.mark.parametrize(
    "name", ["../escape.mov", "a/b.mov", "..", ".hidden.mov", "", "x\\..\\y.mov", "a\nb.mov"]
)
def test_a_name_that_could_escape_drop_is_refused(
    client: TestClient, drop: Path, tmp_path: Path, name: str
) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    answer = client.post("/api/upload", params={"name": name}, content=b"data")
    assert answer.status_code == 400, answer.text
    assert list(drop.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(
    client: TestClient, drop: Path
) -> None:
    declared = client.post("/api/upload", params={"name": "big.mov"}, content=b"x" * 1001)
    assert declared.status_code == 413
    streamed = client.post("/api/upload", params={"name": "big.mov"}, content=chunks(11))
    assert streamed.status_code == 413  # no length given: counted as it comes
    assert list(drop.iterdir()) == []


def test_an_upload_never_replaces_a_file_in_drop(client: TestClient, drop: Path) -> None:
    (drop / "taken.mov").write_bytes(b"mine")
    answer = client.post("/api/upload", params={"name": "taken.mov"}, content=b"theirs")
    assert answer.status_code == 409
    assert (drop / "taken.mov").read_bytes() == b"mine"
    assert [p.name for p in drop.iterdir()] == ["taken.mov"]


def test_an_upload_needs_the_csrf_token(client: TestClient, drop: Path) -> None:
    del client.headers["X-CSRF-Token"]
    answer = client.post("/api/upload", params={"name": "a.mov"}, content=b"data")
    assert answer.status_code == 403
    assert list(drop.iterdir()) == []


def test_without_a_drop_folder_there_are_no_uploads(tmp_path: Path) -> None:
    app = create_app(tmp_path, Settings(state_dir=tmp_path))
    with TestClient(app, base_url=LOCAL) as c:
        token = c.get("/api/session").json()["csrf_token"]
        answer = c.post(
            "/api/upload", params={"name": "a.mov"}, content=b"x", headers={"X-CSRF-Token": token}
        )
        assert answer.status_code == 404
    assert UPLOAD_PREFIX.startswith(".")  # what is in progress is hidden from the watcher
