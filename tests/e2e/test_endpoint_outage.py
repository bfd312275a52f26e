"""The endpoint goes away mid-batch for 30 seconds, then comes back: the batch still finishes.

The test runs its own moto server, not the session's: it stops that one (listening
socket closed and every open connection cut, so nothing is served, not even on a
kept-alive connection) and starts a new one on the same port. moto keeps its backends
in process-global state, so buckets, queues and in-flight messages survive the restart,
as they would on a real endpoint that was unreachable for a while.

``transcode`` runs as a subprocess on six clips; the outage starts as soon as the first
file is CLEANED, so the rest are caught at whatever step they had reached: uploading,
waiting for the worker, transcoding, downloading or cleaning up. botocore's retries
alone may or may not span 30 s (standard mode backs off randomly, and its retry quota
drains); the pipeline's and the worker's own retry loops must cover every step.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cli_harness import Cli, names, wait_until
from moto.moto_server import threaded_moto_server
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import MotoRequestHandler

from conftest import Clip, check_output

OUTAGE_SECONDS = 30.0
#: The six clips web-720p takes (tone.m4a has no video).
VIDEOS = (
    "h264.mp4",
    "no audio.mp4",
    "mjpeg.avi",
    "vp9.mkv",
    "prores 10bit.mov",
    "Früh stück — 東京 clip.mp4",
)
#: Leases of job messages (the minimum): a job cut off by the outage comes back soon.
VISIBILITY = 10
#: From the end of the outage to the end of the batch: backoffs (≤ 30 s), a lease, transcodes.
RECOVERY_DEADLINE = 120.0


class _TrackedHandler(MotoRequestHandler):
    """moto's request handler, remembering its connection so an outage can cut it."""

    live: ClassVar[set[socket.socket]] = set()
    lock = threading.Lock()

    def setup(self) -> None:
        super().setup()
        with self.lock:
            self.live.add(self.connection)

    def finish(self) -> None:
        with self.lock:
            self.live.discard(self.connection)
        super().finish()


class Endpoint:
    """A moto server that can go away and come back on the same port."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # ThreadedMotoServer looks its handler class up when it starts serving.
        monkeypatch.setattr(threaded_moto_server, "MotoRequestHandler", _TrackedHandler)
        self.port = 0
        self.server: ThreadedMotoServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self.port = server.get_host_and_port()[1]
        self.server = server

    def stop(self) -> None:
        """Stop answering: new connections are refused and open ones are cut."""
        server, self.server = self.server, None
        if server is None:
            return
        server.stop()
        wsgi = server._server  # stop() leaves the listening socket open: close it too
        if wsgi is not None:
            wsgi.server_close()
        with _TrackedHandler.lock:
            live = list(_TrackedHandler.live)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def refused(self) -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            try:
                s.connect(("127.0.0.1", self.port))
            except ConnectionRefusedError:
                return True
            return False


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    ep = Endpoint(monkeypatch)
    try:
        yield ep
    finally:
        ep.stop()


def cleaned(journal: Path) -> int:
    """Files CLEANED so far, read from the journal without taking any lock."""
    if not journal.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        try:
            ((n,),) = conn.execute("SELECT COUNT(*) FROM files WHERE state = 'CLEANED'")
        finally:
            conn.close()
    except sqlite3.Error:
        return 0  # not created yet, or mid-checkpoint: look again
    return int(n)


def states(journal: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return dict(conn.execute("SELECT path, state FROM files").fetchall())
    finally:
        conn.close()


def test_a_30_second_outage_mid_batch_is_ridden_out(
    endpoint: Endpoint,
    tmp_path: Path,
    clips: dict[str, Clip],
    deployment_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint.url,
    }
    for key, value in env.items():  # for the leftover check, made from this process
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    cli = Cli("aws", tmp_path, endpoint=endpoint.url, deployment=deployment_name, aws_env=env)
    config = tmp_path / "config.toml"
    config.write_text(f"visibility_timeout = {VISIBILITY}\n")
    out = tmp_path / "out"
    journal = cli.state_dir / "journal.db"
    inputs = [clips[n] for n in VIDEOS]

    proc = cli.start(
        "transcode", "transcode", *(c.path for c in inputs), "-o", out, "--config", config
    )
    try:
        wait_until(lambda: cleaned(journal) >= 1, "the first file to be CLEANED", procs=(proc,))
        endpoint.stop()
        assert endpoint.refused()
        at_outage = states(journal)
        time.sleep(OUTAGE_SECONDS)
        assert proc.popen.poll() is None, f"transcode gave up during the outage\n{proc}"
        endpoint.start()

        try:
            code = proc.popen.wait(RECOVERY_DEADLINE)
        except Exception:
            proc.kill()
            pytest.fail(f"transcode did not finish after the endpoint came back\n{proc}")
    finally:
        cli.close()

    report = f"states when the endpoint went away: {at_outage}\n{proc}"
    assert code == 0, report
    assert "Traceback" not in proc.stderr, report
    assert f"{len(inputs)} done, 0 failed" in proc.stdout, report
    expected = sorted(Path(c.path.name).stem + ".mp4" for c in inputs)
    assert names(out) == expected, report
    for clip in inputs:
        check_output(out / (clip.path.stem + ".mp4"), clip)
    cli.assert_no_leftovers(timeout=30)
