"""The dashboard's HTTP surface, through an HTTP client (Starlette's TestClient speaks httpx
to the real app): every page and endpoint, and what each refuses.

The journal behind it is driven through its real transitions, as the pipeline drives it
(no rows written by hand); names are hostile, so that escaping is tested where it matters.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from starlette.testclient import TestClient

from autotranscode import filelog, status
from autotranscode.journal import FileState, Journal
from autotranscode.settings import Settings
from autotranscode.stages import HAPPY_PATH, OutputStatus
from autotranscode.story import OutputRecord
from autotranscode.web.app import create_app
from autotranscode.web.security import CONTENT_SECURITY_POLICY, SESSION_COOKIE
from autotranscode.web.views import PresetInfo

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

LOCAL = "http://127.0.0.1:8765"
TO_CLEANED = HAPPY_PATH
HOSTILE = "<script>alert(1)<\\script>\x1b[31m.mov"
BAD_REASON = "<img src=x onerror=alert(2)> is not media"


def add(journal: Journal, fid: str, name: str, out: Path, size: int = 1000) -> None:
    journal.record(fid, Path("/drop") / name, out, ("web-720p",), size, time.time_ns())


def finish(journal: Journal, fid: str, out: Path, size: int = 400) -> None:
    for state in TO_CLEANED:
        journal.advance(fid, state)
    journal.story.record_output(
        fid,
        OutputRecord(
            "web-720p", OutputStatus.DONE, str(out / f"{fid}.mp4"), size=size, vmaf=93.4, crf=24.5
        ),
    )


@pytest.fixture
def state(tmp_path: Path) -> Iterator[tuple[Path, Journal]]:
    """A state dir whose journal holds a done file, a failed one and one in flight."""
    state_dir, out = tmp_path / "state", tmp_path / "out"
    out.mkdir()
    journal = Journal(state_dir / "journal.db")
    add(journal, "done1", "fine.mov", out, size=1000)
    finish(journal, "done1", out)
    add(journal, "bad1", HOSTILE, out)
    journal.fail("bad1", BAD_REASON)
    add(journal, "fly1", "busy.mov", out)
    journal.advance("fly1", FileState.UPLOADING)
    yield state_dir, journal
    journal.close()


def client_for(state_dir: Path, **kwargs: object) -> TestClient:
    app = create_app(state_dir, Settings(state_dir=state_dir), **kwargs)  # type: ignore[arg-type]
    return TestClient(app, base_url=LOCAL, follow_redirects=False)


@pytest.fixture
def client(state: tuple[Path, Journal]) -> Iterator[TestClient]:
    with client_for(state[0], out=state[0].parent / "out") as c:
        yield c


def csrf(client: TestClient) -> str:
    token: str = client.get("/api/session").json()["csrf_token"]
    return token


# -- pages --------------------------------------------------------------------------------------


def test_pages_render_hostile_names_as_text(client: TestClient) -> None:
    for path in ("/", "/history", "/files/bad1", "/presets"):
        page = client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert page.headers["content-type"].startswith("text/html")
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
        assert "\x1b" not in page.text, path
        # Scripts only from the package, never inline (the CSP would refuse them anyway).
        assert re.findall(r"<script[^>]*>", page.text) == [
            '<script src="/static/dashboard.js" defer>'
        ]
    overview = client.get("/").text
    assert "&lt;script&gt;alert(1)&lt;\\script&gt;\\x1b[31m.mov" in overview
    assert "busy.mov" in overview  # in flight
    story = client.get("/files/bad1").text
    assert "&lt;img src=x onerror=alert(2)&gt; is not media" in story
    assert 'action="/files/bad1/retry"' in story  # the Retry button of a failed file
    assert 'action="/files/done1/retry"' not in client.get("/files/done1").text
    # A file in flight has its stage kept live on its page (dashboard.js); a finished one not.
    assert 'id="live-stage" data-file="fly1"' in client.get("/files/fly1").text
    assert 'id="live-stage"' not in client.get("/files/done1").text


def test_the_file_page_tells_the_whole_story_and_its_log(
    client: TestClient, state: tuple[Path, Journal]
) -> None:
    log = filelog.log_path(state[0], "done1")
    log.parent.mkdir()
    log.write_text("ffmpeg -i INPUT <b>out</b>\nframe=  48 fps=0.0\n")
    page = client.get("/files/done1").text
    for stage in ("queued", "uploading", "transcoding", "downloading", "done"):
        assert f"<td>{stage}</td>" in page, stage
    assert "frame=  48 fps=0.0" in page and "&lt;b&gt;out&lt;/b&gt;" in page
    assert "400 bytes" in page  # the output's size
    assert "93.4 (crf 24.5)" in page  # its sampled VMAF and the CRF a target chose


def test_the_file_page_says_an_output_was_remuxed_and_why(
    client: TestClient, state: tuple[Path, Journal]
) -> None:
    journal, out = state[1], state[0].parent / "out"
    add(journal, "copy1", "ours.mp4", out)
    finish(journal, "copy1", out)
    note = "already h264 high, 320x240, yuv420p, 0.25 Mbit/s, aac: <what> web-720p makes"
    journal.story.record_output(
        "copy1",
        OutputRecord(
            "web-720p", OutputStatus.DONE, str(out / "ours.mp4"), action="remuxed", note=note
        ),
    )
    page = client.get("/files/copy1").text
    assert "<th>made</th>" in page
    assert "remuxed: <span" in page and "&lt;what&gt; web-720p makes" in page
    assert '<td class="action"></td>' in client.get("/files/done1").text  # not said: blank


def test_unknown_file_is_404_on_page_and_api(client: TestClient) -> None:
    assert client.get("/files/nope").status_code == 404
    missing = client.get("/api/files/nope")
    assert missing.status_code == 404 and missing.json() == {"error": "no such file in the journal"}


def test_presets_page_and_api_show_each_preset_command(client: TestClient) -> None:
    presets = msgspec.json.decode(client.get("/api/presets").content, type=list[PresetInfo])
    ids = [p.id for p in presets]
    assert "web-720p" in ids
    web = presets[ids.index("web-720p")]
    assert web.command.startswith("ffmpeg ") and "INPUT" in web.command
    assert web.command.replace("'", "&#39;") in client.get("/presets").text


# -- API ----------------------------------------------------------------------------------------


def test_api_status_is_status_json(client: TestClient, state: tuple[Path, Journal]) -> None:
    answer = client.get("/api/status?limit=5")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    report = msgspec.json.decode(answer.content, type=status.Report)
    expected = status.report(state[1], state[0], 5)
    assert report.totals == expected.totals
    assert [f.id for f in report.in_flight] == ["fly1"]
    assert {f.id for f in report.recent} == {"done1", "bad1"}
    assert report.totals.by_stage == {"uploading": 1, "done": 1, "failed": 1}
    failed = client.get("/api/status", params={"stage": "failed"}).json()
    assert [f["id"] for f in failed["recent"]] == ["bad1"]
    assert client.get("/api/status?stage=nonsense").status_code == 400


def test_api_file_is_its_whole_story(client: TestClient) -> None:
    f = msgspec.json.decode(client.get("/api/files/bad1").content, type=status.FileStatus)
    assert f.name == HOSTILE and f.reason == BAD_REASON and f.stage == "failed"
    assert [t.stage for t in f.transitions] == ["queued", "failed"]


def test_history_pages_search_and_filter_in_sql(tmp_path: Path) -> None:
    state_dir, out = tmp_path / "state", tmp_path / "out"
    journal = Journal(state_dir / "journal.db")
    for i in range(120):
        add(journal, f"f{i:03d}", f"clip {i:03d}.mov", out)
        finish(journal, f"f{i:03d}", out)
    journal.story.record_output(
        "f007", OutputRecord("web-720p", OutputStatus.FAILED, None, reason="no space")
    )
    add(journal, "x1", "100% real_file.mov", out)
    journal.fail("x1", "broken")
    with client_for(state_dir) as c:
        first = c.get("/api/files").json()
        assert first["total"] == 121 and len(first["files"]) == 50
        assert first["files"][0]["id"] == "x1"  # newest first
        ids = [
            f["id"] for p in (0, 50, 100) for f in c.get(f"/api/files?offset={p}").json()["files"]
        ]
        assert len(ids) == len(set(ids)) == 121
        found = c.get("/api/files", params={"q": "clip 11"}).json()
        assert sorted(f["id"] for f in found["files"]) == [f"f{i}" for i in range(110, 120)]
        assert c.get("/api/files", params={"q": "100%"}).json()["total"] == 1
        assert c.get("/api/files", params={"q": "0% real_"}).json()["total"] == 1
        assert c.get("/api/files", params={"q": "0%_"}).json()["total"] == 0  # literal % and _
        partly = c.get("/api/files", params={"stage": "partly done"}).json()
        assert [f["id"] for f in partly["files"]] == ["f007"]
        assert c.get("/api/files", params={"stage": "done"}).json()["total"] == 119
        assert c.get("/api/files", params={"stage": "failed"}).json()["total"] == 1
        assert c.get("/api/files?limit=x").status_code == 400
        page3 = c.get("/history", params={"page": 3}).text
        assert "page 3 of 3" in page3 and 'rel="prev"' in page3 and 'rel="next"' not in page3
        assert "121 files" in page3
    journal.close()


def test_retry_hands_a_failed_file_back_to_the_pipeline(
    client: TestClient, state: tuple[Path, Journal]
) -> None:
    journal = state[1]
    refused = client.post("/api/files/bad1/retry")
    assert refused.status_code == 403
    assert journal.get("bad1").state is FileState.FAILED  # type: ignore[union-attr]
    token = csrf(client)
    assert client.post("/api/files/nope/retry", headers={"X-CSRF-Token": token}).status_code == 404
    done = client.post("/api/files/done1/retry", headers={"X-CSRF-Token": token})
    assert done.status_code == 409 and "only failed or partly done" in done.json()["error"]
    flying = client.post("/api/files/fly1/retry", headers={"X-CSRF-Token": token})
    assert flying.status_code == 409
    retried = client.post("/api/files/bad1/retry", headers={"X-CSRF-Token": token})
    assert retried.status_code == 200 and retried.json() == {"ok": True, "id": "bad1"}
    record = journal.get("bad1")
    assert record is not None and record.state is FileState.DISCOVERED
    assert journal.events_of("bad1")[-1][2] == "retry"  # as `autotranscode retry` records it


def test_the_retry_button_posts_a_form_with_its_csrf_token(
    client: TestClient, state: tuple[Path, Journal]
) -> None:
    page = client.get("/files/bad1").text
    field = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert field is not None
    assert client.post("/files/bad1/retry", data={"csrf": "wrong"}).status_code == 403
    assert state[1].get("bad1").state is FileState.FAILED  # type: ignore[union-attr]
    pressed = client.post("/files/bad1/retry", data={"csrf": field.group(1)})
    assert pressed.status_code == 303 and pressed.headers["location"] == "/files/bad1"
    assert state[1].get("bad1").state is FileState.DISCOVERED  # type: ignore[union-attr]


def test_healthz_says_ready_or_why_not(state: tuple[Path, Journal], tmp_path: Path) -> None:
    with client_for(state[0], out=tmp_path / "out") as c:
        health = c.get("/healthz")
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["ok"] is True and body["checks"]["journal"]["ok"] is True
        assert body["checks"]["disk_out"]["free_bytes"] > 0
    with client_for(state[0], out=tmp_path / "no such folder") as c:
        health = c.get("/healthz")
        assert health.status_code == 503
        assert health.json()["checks"]["disk_out"]["ok"] is False


def test_metrics_in_prometheus_text_format(client: TestClient) -> None:
    answer = client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = dict(
        line.rsplit(" ", 1) for line in answer.text.splitlines() if not line.startswith("#")
    )
    assert samples['autotranscode_files{stage="done"}'] == "1"
    assert samples['autotranscode_files{stage="failed"}'] == "1"
    assert samples['autotranscode_files{stage="uploading"}'] == "1"
    assert samples["autotranscode_in_flight"] == "1"
    assert samples["autotranscode_bytes_in"] == "1000"
    assert samples["autotranscode_bytes_out"] == "400"
    assert float(samples["autotranscode_files_per_hour"]) > 0  # the done file, this hour
    # Without a backend, queue depth and workers are unknown: left out, not said to be 0.
    assert "autotranscode_queue_depth" not in samples and "autotranscode_workers" not in samples
    for line in answer.text.splitlines():
        assert re.fullmatch(
            r"# (HELP|TYPE) \w+ .+|\w+(\{stage=\"[a-z ]+\"\})? -?\d+(\.\d+)?", line
        ), line


def test_openapi_describes_every_route_with_the_status_models(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    routes = {r.path for r in client.app.routes if getattr(r, "path", "").startswith("/api/")}  # type: ignore[attr-defined]
    for path in routes - {"/api/openapi.json"} | {"/healthz", "/metrics"}:
        assert path.replace(":str}", "}") in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert {"Report", "FileStatus", "Totals", "HistoryPage", "PresetInfo"} <= schemas.keys()
    refs = re.findall(r'"\$ref": ?"#/components/schemas/(\w+)"', msgspec.json.encode(spec).decode())
    assert refs and set(refs) <= schemas.keys()


# -- security -----------------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/api/status", "/files/nope", "/static/dashboard.js", "/healthz"):
        answer = client.get(path)
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert answer.headers["x-content-type-options"] == "nosniff", path
    js = client.get("/static/dashboard.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "innerHTML" not in js.text and "eval(" not in js.text


def test_without_a_token_only_loopback_names_are_served(state: tuple[Path, Journal]) -> None:
    app = create_app(state[0], Settings(state_dir=state[0]))
    with TestClient(app, base_url="http://rebound.example:8765") as c:
        assert c.get("/api/status").status_code == 403
    with TestClient(app, base_url="http://localhost:8765") as c:
        assert c.get("/api/status").status_code == 200


def test_a_token_is_required_of_every_request(state: tuple[Path, Journal]) -> None:
    with client_for(state[0], token="s3cret") as c:
        assert c.get("/api/status").status_code == 401
        assert c.get("/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/api/events").status_code == 401
        page = c.get("/history?q=a", headers={"Accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fhistory%3Fq%3Da"
        ok = c.get("/api/status", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.get("/healthz").status_code == 200  # a container's health check has no token
        assert c.get("/static/dashboard.css").status_code == 200
        # With the bearer token a POST needs no CSRF token: no browser forges that header.
        retried = c.post("/api/files/bad1/retry", headers={"Authorization": "Bearer s3cret"})
        assert retried.status_code == 200
        # Bound beyond loopback, any Host name is served once the token is given.
        c.base_url = "http://dashboard.lan:8765"  # type: ignore[assignment]
        assert c.get("/api/status", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_login_sets_a_strict_httponly_cookie_and_posts_still_need_csrf(
    state: tuple[Path, Journal],
) -> None:
    with client_for(state[0], token="s3cret") as c:
        form = c.get("/login?next=/files/bad1").text
        field = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
        assert field is not None
        token = field.group(1)
        no_csrf = c.post("/login?next=/files/bad1", data={"token": "s3cret"})
        assert no_csrf.status_code == 403
        wrong = c.post("/login?next=/files/bad1", data={"token": "nope", "csrf": token})
        assert wrong.status_code == 401 and SESSION_COOKIE not in c.cookies
        logged = c.post("/login?next=/files/bad1", data={"token": "s3cret", "csrf": token})
        assert logged.status_code == 303 and logged.headers["location"] == "/files/bad1"
        cookie = logged.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert c.get("/api/status").status_code == 200  # the cookie does
        assert c.post("/api/files/bad1/retry").status_code == 403  # but not a POST alone
        assert state[1].get("bad1").state is FileState.FAILED  # type: ignore[union-attr]
        ok = c.post("/api/files/bad1/retry", headers={"X-CSRF-Token": token})
        assert ok.status_code == 200
        elsewhere = c.post("/login?next=//evil.example/", data={"token": "s3cret", "csrf": token})
        assert elsewhere.headers["location"] == "/"


def test_totals_follow_the_journal_as_files_finish(
    client: TestClient, state: tuple[Path, Journal]
) -> None:
    """Overview and /metrics reuse their totals between changes of the counts: a file
    finishing changes them, bytes included."""
    before = client.get("/metrics").text.splitlines()
    assert 'autotranscode_files{stage="done"} 1' in before
    journal, out = state[1], state[0].parent / "out"
    for step in TO_CLEANED[1:]:
        journal.advance("fly1", step)
    counted = client.get("/metrics").text.splitlines()
    assert 'autotranscode_files{stage="done"} 2' in counted
    assert "autotranscode_bytes_out 400" in counted  # its output not recorded yet
    journal.story.record_output(
        "fly1", OutputRecord("web-720p", OutputStatus.DONE, str(out / "b.mp4"), size=100)
    )
    after = client.get("/metrics").text.splitlines()
    assert 'autotranscode_files{stage="done"} 2' in after
    assert "autotranscode_bytes_out 500" in after and "autotranscode_in_flight 0" in after
    assert "nothing in flight" in client.get("/").text


def test_a_journal_gone_is_a_503_in_one_line(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with client_for(state_dir) as c:
        assert c.get("/api/status").status_code == 200
        c.app.state.dashboard.journal.close()  # type: ignore[attr-defined]
        shutil.rmtree(state_dir)  # deleted under the running dashboard
        api = c.get("/api/status")
        assert api.status_code == 503
        assert api.json()["error"].startswith("journal: cannot read")
        page = c.get("/history", headers={"Accept": "text/html"})
        assert page.status_code == 503 and "journal: cannot read" in page.text
        health = c.get("/healthz")
        assert health.status_code == 503 and health.json()["checks"]["journal"]["ok"] is False


def test_downloads_serve_only_known_outputs_inside_out(
    client: TestClient, state: tuple[Path, Journal], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "done1.mp4").write_bytes(b"the output")
    got = client.get("/files/done1/outputs/web-720p")
    assert got.status_code == 200 and got.content == b"the output"
    assert got.headers["content-disposition"] == 'attachment; filename="done1.mp4"'
    assert 'href="/files/done1/outputs/web-720p"' in client.get("/files/done1").text
    assert client.get("/files/done1/outputs/other").status_code == 404
    assert client.get("/files/bad1/outputs/web-720p").status_code == 404  # failed: none
    assert client.get("/files/nope/outputs/web-720p").status_code == 404
    secret = tmp_path / "secret.txt"
    secret.write_text("not an output")
    (out / "link.mp4").symlink_to(secret)
    add(state[1], "lnk", "link.mov", out)
    for step in TO_CLEANED:
        state[1].advance("lnk", step)
    state[1].story.record_output(
        "lnk", OutputRecord("web-720p", OutputStatus.DONE, str(out / "link.mp4"))
    )
    assert client.get("/files/lnk/outputs/web-720p").status_code == 404  # leads out of OUT


def test_retry_of_a_partly_done_file_asks_again_for_the_outputs_it_lacks(
    client: TestClient, state: tuple[Path, Journal], tmp_path: Path
) -> None:
    """As ``autotranscode retry`` does: a new record of the file for just those presets."""
    journal, out = state[1], tmp_path / "out"
    journal.record("part1", Path("/drop/part.mov"), out, ("web-720p", "hls"), 10, 1)
    for step in TO_CLEANED:
        journal.advance("part1", step)
    journal.story.record_output(
        "part1", OutputRecord("web-720p", OutputStatus.DONE, str(out / "part.mp4"), size=5)
    )
    journal.story.record_output(
        "part1", OutputRecord("hls", OutputStatus.FAILED, None, reason="disk full")
    )
    page = client.get("/files/part1").text
    assert "partly done" in page and 'action="/files/part1/retry"' in page
    token = csrf(client)
    retried = client.post("/api/files/part1/retry", headers={"X-CSRF-Token": token})
    assert retried.status_code == 200, retried.text
    again = journal.get(retried.json()["id"])
    assert again is not None and again.id != "part1"
    assert again.state is FileState.DISCOVERED and again.presets == ("hls",) and again.forced
    assert journal.get("part1").state is FileState.CLEANED  # type: ignore[union-attr]
    # Retried once: the original is history now, nothing to retry of it a second time.
    twice = client.post("/api/files/part1/retry", headers={"X-CSRF-Token": token})
    assert twice.status_code == 409
