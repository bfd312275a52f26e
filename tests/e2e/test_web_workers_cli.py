"""Workers seen from the dashboard of another process: ``autotranscode worker`` processes
beat through the state dir's store, ``web`` shows them; a worker killed with -9 leaves a
beat that goes stale (taken for gone), a worker stopped cleanly removes its own."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_harness import Cli, open_cli, wait_until
from test_web_cli import free_port, served

from autotranscode import keys
from autotranscode.backends.local import LocalBackend
from autotranscode.engines.heartbeat import STALE_AFTER_SECONDS, read_beats


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


def workers(base: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(base + "api/workers", timeout=30).json()["workers"]
    return found


def test_web_shows_worker_processes_and_a_killed_one_goes_stale(cli: Cli) -> None:
    a = cli.start("worker-a", "worker")
    a.wait_for_log("waiting for jobs")
    b = cli.start("worker-b", "worker")
    b.wait_for_log("waiting for jobs")
    web = cli.start("web", "web", "--web", f"127.0.0.1:{free_port()}")
    base = served(web)
    seen = wait_until(lambda: len(workers(base)) == 2 and workers(base), "two workers seen")
    assert sorted(w["pid"] for w in seen) == sorted([a.popen.pid, b.popen.pid])
    assert all(w["worker"].endswith(f":{w['pid']}/worker-1") for w in seen)
    assert all(w["file"] is None for w in seen)  # waiting for a job
    metrics = httpx.get(base + "metrics", timeout=30).text.splitlines()
    assert "autotranscode_workers 2" in metrics and "autotranscode_queue_depth 0" in metrics

    os.kill(a.popen.pid, signal.SIGKILL)
    a.popen.wait(30)
    assert b.stop() in (0, 130), b  # a clean stop: its beat removed
    backend = LocalBackend(cli.state_dir, 30.0, 3)
    try:
        store = backend.store
        left = store.keys(store.output_bucket, keys.WORKERS_PREFIX)
        (killed,) = left  # the killed one's beat stays behind ...
        assert str(a.popen.pid) in killed
        assert [w.pid for w in read_beats(store)] == [a.popen.pid]
        # ... and is taken for gone once three intervals have passed without a beat.
        assert read_beats(store, now=time.time() + STALE_AFTER_SECONDS + 1) == []
        # The next worker started on this host sweeps the dead one's beat away.
        c = cli.start("worker-c", "worker")
        wait_until(
            lambda: [w.pid for w in read_beats(store)] == [c.popen.pid], "only c's beat", procs=(c,)
        )
        assert len(store.keys(store.output_bucket, keys.WORKERS_PREFIX)) == 1
        assert c.stop() in (0, 130), c
    finally:
        backend.close()
    assert web.stop() == 0, web
