"""The dashboard as a user starts it: ``run DROP OUT --web`` serving beside the pipeline,
and ``web --state-dir`` on its own, each a subprocess read over HTTP."""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from cli_harness import Cli, Proc, open_cli, wait_until

from autotranscode import status as model

from conftest import Clip


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def served(proc: Proc) -> str:
    """The dashboard's address, once the process says it listens."""
    proc.wait_for_log("dashboard at ")
    found = re.search(r"dashboard at (http://\S+/)", proc.stderr)
    assert found, proc
    return found.group(1)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, timeout=30, **kwargs)


def done_count(base: str, n: int) -> model.Report | None:
    """``/api/status`` once ``n`` files are done (decoded against the status model)."""
    report = msgspec.json.decode(get(base + "api/status").content, type=model.Report)
    return report if report.totals.by_stage.get("done") == n else None


def test_run_with_web_serves_the_dashboard_of_its_pipeline(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    port = free_port()
    run = cli.start("run", "run", drop, out, "--settle", "0.3", "--web", f"127.0.0.1:{port}")
    base = served(run)
    assert base == f"http://127.0.0.1:{port}/"
    empty = msgspec.json.decode(get(base + "api/status").content, type=model.Report)
    assert empty.totals.files == 0
    assert "no files yet" in get(base).text

    shutil.copyfile(clips["h264.mp4"].path, drop / "clip.mp4")

    report = wait_until(lambda: done_count(base, 1), "the clip done, per /api/status", procs=(run,))
    (finished,) = report.recent
    assert finished.name == "clip.mp4" and finished.outputs[0].status == "done"
    assert Path(finished.outputs[0].path or "").is_file()
    page = get(f"{base}files/{finished.id}").text
    assert "clip.mp4" in page and "web-720p" in page
    # An upload lands in DROP whole, and the watcher takes it like any dropped file.
    token = get(base + "api/session").json()["csrf_token"]
    uploaded = httpx.post(
        base + "api/upload",
        params={"name": "sent.mp4"},
        content=clips["vp9.mkv"].path.read_bytes(),
        headers={"X-CSRF-Token": token},
        timeout=30,
    )
    assert uploaded.status_code == 201, uploaded.text
    report = wait_until(lambda: done_count(base, 2), "the uploaded clip done", procs=(run,))
    assert {f.name for f in report.recent} == {"clip.mp4", "sent.mp4"}
    assert not [p for p in drop.iterdir() if p.name.startswith(".")]  # no upload left over
    health = get(base + "healthz")
    assert health.status_code == 200 and health.json()["ok"] is True, health.text
    checks = health.json()["checks"]
    assert set(checks) == {
        "journal",
        "disk_state_dir",
        "disk_out",
        "disk_drop",
        "backend",
        "workers",
    }
    assert checks["workers"]["alive"] == checks["workers"]["expected"] >= 1  # run's own
    metrics = get(base + "metrics").text
    assert 'autotranscode_files{stage="done"} 2' in metrics.splitlines()
    assert "autotranscode_queue_depth 0" in metrics.splitlines()
    assert "autotranscode_in_flight 0" in metrics.splitlines()
    assert run.stop() == 130, run  # run after Ctrl+C
    with pytest.raises(httpx.ConnectError):
        get(base + "healthz")  # stopped with the service


def test_retry_from_the_dashboard_goes_back_through_the_running_pipeline(
    cli: Cli, tmp_path: Path, broken: dict[str, Path]
) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    run = cli.start("run", "run", drop, out, "--settle", "0.3", "--web", f"127.0.0.1:{free_port()}")
    base = served(run)
    shutil.copyfile(broken["truncated.mp4"], drop / "bad.mp4")

    def failed() -> list[dict[str, Any]]:
        files: list[dict[str, Any]] = get(base + "api/files?stage=failed").json()["files"]
        return files

    (bad,) = wait_until(failed, "the truncated clip failed", procs=(run,))
    assert bad["reason"]
    page = get(f"{base}files/{bad['id']}").text
    assert f'action="/files/{bad["id"]}/retry"' in page
    refused = httpx.post(f"{base}api/files/{bad['id']}/retry", timeout=30)
    assert refused.status_code == 403  # no CSRF token
    token = get(base + "api/session").json()["csrf_token"]
    retried = httpx.post(
        f"{base}api/files/{bad['id']}/retry", headers={"X-CSRF-Token": token}, timeout=30
    )
    assert retried.status_code == 200, retried.text

    def tried_again() -> bool:
        story = get(f"{base}api/files/{bad['id']}").json()
        steps = [(t["stage"], t["detail"]) for t in story["transitions"]]
        retry_at = steps.index(("queued", "retry"))
        return story["stage"] == "failed" and any(s == "failed" for s, _ in steps[retry_at:])

    # The running pipeline takes the file back (as after `autotranscode retry`) and, its
    # content being what it was, fails it again: through the whole path once more.
    wait_until(tried_again, "the retried clip taken and failed again", procs=(run,))
    assert run.stop() == 130, run  # run after Ctrl+C


def test_web_beyond_loopback_prints_a_token_and_requires_it(cli: Cli) -> None:
    port = free_port()
    web = cli.start("web", "web", "--web", f"0.0.0.0:{port}")
    served(web)
    found = re.search(r"dashboard token: (\S+)", web.stderr)
    assert found, web
    token = found.group(1)
    url = f"http://127.0.0.1:{port}/api/status"
    assert get(url).status_code == 401
    assert get(url, headers={"Authorization": "Bearer not-it"}).status_code == 401
    assert get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert web.stop() == 0, web


def test_web_with_a_token_from_the_environment_prints_none(cli: Cli) -> None:
    port = free_port()
    cli.env["AUTOTRANSCODE_WEB_TOKEN"] = "from-env-token"
    web = cli.start("web", "web", "--web", f"0.0.0.0:{port}")
    served(web)
    assert "dashboard token" not in web.stderr
    url = f"http://127.0.0.1:{port}/api/status"
    assert get(url, headers={"Authorization": "Bearer from-env-token"}).status_code == 200
    assert web.stop() == 0, web


def test_web_serves_a_state_dir_and_its_presets_as_presets_show_prints_them(cli: Cli) -> None:
    web = cli.start("web", "web", "--web", f"127.0.0.1:{free_port()}")
    base = served(web)
    shown = cli.run("presets", "show", "web-720p", common=False)
    assert shown.returncode == 0, shown
    presets = get(base + "api/presets").json()
    (web720,) = [p for p in presets if p["id"] == "web-720p"]
    assert web720["command"] == shown.stdout.strip()
    assert get(base + "healthz").json()["ok"] is True
    with httpx.stream("GET", base + "api/events", timeout=30) as events:
        assert next(events.iter_lines()) == "retry: 2000"
        # A page left open does not hold Ctrl+C up: its stream ends with the server.
        assert web.stop() == 0, web
    assert "stopping the dashboard" in web.stderr


def test_a_busy_port_is_one_line_and_exit_2(cli: Cli) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = cli.run("web", "--web", f"127.0.0.1:{port}")
    assert result.returncode == 2, result
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: the dashboard cannot listen on http://127.0.0.1:{port}/")
