"""Workers' heartbeats, the job queue and the Queue page's moves, on the real backends:
workers that beat through the store, a pipeline whose jobs wait on the queue (no worker in
its process), and the dashboard's API acting on them as a user's buttons would."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from autotranscode import keys
from autotranscode.backends import Backend
from autotranscode.engines.heartbeat import (
    MAX_FIELD,
    STALE_AFTER_SECONDS,
    Heartbeat,
    read_beats,
)
from autotranscode.engines.hooks import WorkerHooks
from autotranscode.engines.worker import Worker, WorkerPool
from autotranscode.journal import FileState, Journal
from autotranscode.media.transcoder import find_ffmpeg
from autotranscode.messages import Job
from autotranscode.pipeline import Pipeline
from autotranscode.service import Service
from autotranscode.settings import Settings
from autotranscode.waiting import CANCELLED
from autotranscode.web.app import create_app

from conftest import Clip, backend_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WAIT = 60.0
LOCAL = "http://127.0.0.1:8765"


def wait_for(what: Callable[[], Any], why: str) -> Any:
    deadline = time.monotonic() + WAIT
    while not (got := what()):
        assert time.monotonic() < deadline, f"timed out waiting for {why}"
        time.sleep(0.05)
    return got


@pytest.fixture(params=["local", "aws"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return backend_settings(request, tmp_path, request.param)


class Holding(WorkerHooks):
    """Holds each job at its start until ``go`` is set: a worker caught mid-job."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.go = threading.Event()

    def on_job_received(self, *, job: Job, receive_count: int, **kwargs: Any) -> None:
        self.started.set()
        self.go.wait(WAIT)


@contextmanager
def client_without_workers(s: Settings, out: Path) -> Iterator[tuple[Pipeline, Backend, Journal]]:
    """A client whose jobs wait on the job queue: no worker in its process."""
    s = msgspec.structs.replace(s, workers=0)
    with Service(s, out) as service:
        service.pipeline.start()
        yield service.pipeline, service.backend, service.journal


def submitted(pipe: Pipeline, journal: Journal, path: Path) -> str:
    fid = pipe.add(path)
    wait_for(lambda: journal.get(fid).state == FileState.SUBMITTED, f"{path.name} submitted")  # type: ignore[union-attr]
    return fid


# -- heartbeats ---------------------------------------------------------------------------------


def test_a_worker_beats_while_it_runs_names_its_job_and_is_gone_after_a_clean_stop(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    out = tmp_path / "out"
    hold = Holding()
    with client_without_workers(settings, out) as (pipe, backend, journal):
        store = backend.store
        worker = Worker(
            backend,
            find_ffmpeg(None),
            tmp_path / "work" / "w1",
            visibility=settings.visibility_timeout,
            max_attempts=settings.max_attempts,
            name="worker-1",
            hooks=hold,
        )
        pool = WorkerPool([worker])
        pool.start()
        try:
            (beat,) = wait_for(lambda: read_beats(store), "the worker's first beat")
            assert beat.worker == worker.identity and beat.worker.endswith("/worker-1")
            assert beat.host in beat.worker and str(beat.pid) in beat.worker
            assert beat.job_id is None and beat.file is None
            assert store.keys(store.output_bucket, keys.WORKERS_PREFIX) == [
                keys.worker_key(worker.identity)
            ]
            fid = pipe.add(shutil.copy(clips["h264.mp4"].path, tmp_path / "clip one.mp4"))
            assert hold.started.wait(WAIT)
            (busy,) = wait_for(
                lambda: [b for b in read_beats(store) if b.job_id], "a beat naming the job"
            )
            assert busy.job_id == journal.get(fid).job_id  # type: ignore[union-attr]
            assert busy.file == "clip one.mp4" and busy.job_since is not None
            # A beat is a worker alive for three intervals; then it is taken for gone.
            later = time.time() + STALE_AFTER_SECONDS + 1
            assert read_beats(store, now=later) == []
            hold.go.set()
            assert pipe.wait([fid], timeout=WAIT)
        finally:
            hold.go.set()
            pool.stop()
        assert read_beats(store) == []
        assert store.keys(store.output_bucket, keys.WORKERS_PREFIX) == []


def test_forged_or_broken_beats_are_left_out_or_cut(tmp_path: Path) -> None:
    from autotranscode.backends.local import LocalBackend

    backend = LocalBackend(tmp_path / "state", 30.0, 3)
    try:
        store = backend.store
        now = time.time()
        for name, body in {
            "notjson": b"{{{",
            "wrongtype": b'{"worker": 5, "host": "h", "pid": 1, "since": 0, "at": 0}',
            "nan": b'{"worker": "w", "host": "h", "pid": 1, "since": NaN, "at": 1}',
            **{  # fresh beats with a pid that is none: never handed to os.kill
                name: msgspec.json.encode(
                    {"worker": name, "host": "h", "pid": pid, "since": now, "at": now}
                )
                for name, pid in (("group", -1), ("zero", 0), ("huge", 2**40))
            },
            "future": msgspec.json.encode(
                {"worker": "f", "host": "h", "pid": 3, "since": now, "at": now + 10**6}
            ),
            "long": msgspec.json.encode(
                {
                    "worker": "w" * 5000,
                    "host": "h\x1b[31m",
                    "pid": 7,
                    "since": now,
                    "at": now,
                    "file": "<b>x</b>" * 1000,
                }
            ),
        }.items():
            part = tmp_path / f"{name}.json"
            part.write_bytes(body)
            store.put(part, store.output_bucket, f"{keys.WORKERS_PREFIX}{name}.json")
        (beat,) = read_beats(store)
        assert len(beat.worker) == MAX_FIELD and beat.pid == 7
        assert beat.file is not None and len(beat.file) == MAX_FIELD
        assert beat.host == "h\x1b[31m"  # kept as told: shown through text.shown by the pages
    finally:
        backend.close()


def test_a_beat_that_cannot_be_written_does_not_stop_the_worker(tmp_path: Path) -> None:
    from autotranscode.backends.local import LocalBackend

    backend = LocalBackend(tmp_path / "state", 30.0, 3)
    try:
        blocked = tmp_path / "state" / "store" / "output" / "workers"
        blocked.parent.mkdir(parents=True)
        blocked.write_text("a file where the folder should be")
        with Heartbeat(backend.store, "host:1/w", tmp_path / "work", interval=0.05) as beat:
            beat.working("r1", "j1", "inputs/x/clip.mp4")
            beat.done("r1")
        assert blocked.read_text() == "a file where the folder should be"
    finally:
        backend.close()


# -- the queue ------------------------------------------------------------------------------------


def test_the_queue_lists_waiting_files_in_the_order_workers_take_them_and_moves_one_first(
    tmp_path: Path, clips: dict[str, Clip], request: pytest.FixtureRequest
) -> None:
    s = backend_settings(request, tmp_path, "local")
    out = tmp_path / "out"
    with client_without_workers(s, out) as (pipe, backend, journal):
        sources = {"a.mp4": "h264.mp4", "b.mkv": "vp9.mkv", "c.avi": "mjpeg.avi"}
        names = list(sources)
        fids = [  # of other content each: a copy of a file would wait for it, not be sent
            submitted(pipe, journal, shutil.copy(clips[c].path, tmp_path / n))
            for n, c in sources.items()
        ]
        app = create_app(s.state_dir, s, backend=backend)
        with TestClient(app, base_url=LOCAL, follow_redirects=False) as c:
            view = c.get("/api/queue").json()
            assert view["reorderable"] is True and view["depth"] == 3
            assert [w["file"]["name"] for w in view["files"]] == names
            assert [w["position"] for w in view["files"]] == [1, 2, 3]
            page = c.get("/queue").text
            assert page.index("a.mp4") < page.index("b.mkv") < page.index("c.avi")
            assert f'action="/queue/{fids[2]}/front"' in page

            # No CSRF token: refused, and nothing moved.
            assert c.post(f"/api/queue/{fids[2]}/front").status_code == 403
            assert c.post(f"/queue/{fids[2]}/cancel", data={}).status_code == 403
            assert [w["file"]["id"] for w in c.get("/api/queue").json()["files"]] == fids
            token = c.get("/api/session").json()["csrf_token"]
            csrf = {"X-CSRF-Token": token}
            assert c.post("/api/queue/nope/front", headers=csrf).status_code == 404
            assert c.post(f"/api/queue/{fids[0]}/explode", headers=csrf).status_code == 404

            moved = c.post(f"/queue/{fids[2]}/front", data={"csrf": token})
            assert moved.status_code == 303 and moved.headers["location"] == "/queue"
            order = [w["file"]["id"] for w in c.get("/api/queue").json()["files"]]
            assert order == [fids[2], fids[0], fids[1]]
            # ... and a worker takes it first.
            (taken,) = backend.jobs.receive(wait=5)
            assert job_id_of(taken.body) == journal.get(fids[2]).job_id  # type: ignore[union-attr]
            backend.jobs.hand_back(taken)
            # A job a worker holds cannot be moved: it is not waiting any more.
            (held,) = backend.jobs.receive(wait=5)
            refused = c.post(f"/api/queue/{fids[2]}/front", headers=csrf)
            assert refused.status_code == 409 and "taken" in refused.json()["error"]
            view = c.get("/api/queue").json()["files"]
            assert view[0]["taken"] is True and view[0]["movable"] is False
            backend.jobs.hand_back(held)
        pipe.stop()


def job_id_of(body: str) -> str:
    from autotranscode.messages import parse_job

    return parse_job(body).job_id


def test_cancel_ends_a_waiting_file_cancelled_and_cleans_up_its_objects_and_message(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    out = tmp_path / "out"
    with client_without_workers(settings, out) as (pipe, backend, journal):
        keep = submitted(pipe, journal, shutil.copy(clips["h264.mp4"].path, tmp_path / "k.mp4"))
        drop = submitted(pipe, journal, shutil.copy(clips["vp9.mkv"].path, tmp_path / "d.mkv"))
        store = backend.store
        assert store.keys(store.input_bucket, f"{keys.INPUT_PREFIX}{drop}/")
        app = create_app(settings.state_dir, settings, backend=backend)
        with TestClient(app, base_url=LOCAL, follow_redirects=False) as c:
            assert c.post(f"/api/queue/{drop}/cancel").status_code == 403  # no CSRF
            assert journal.get(drop).state == FileState.SUBMITTED  # type: ignore[union-attr]
            csrf = {"X-CSRF-Token": c.get("/api/session").json()["csrf_token"]}
            done = c.post(f"/api/queue/{drop}/cancel", headers=csrf)
            assert done.status_code == 200, done.text
            f = c.get(f"/api/files/{drop}").json()
            assert f["stage"] == "failed" and f["reason"] == CANCELLED
            assert [o["status"] for o in f["outputs"]] == ["failed"]
            assert [(o["reason"], o["path"]) for o in f["outputs"]] == [(CANCELLED, None)]
            assert [w["file"]["id"] for w in c.get("/api/queue").json()["files"]] == [keep]
            again = c.post(f"/api/queue/{drop}/cancel", headers=csrf)
            assert again.status_code == 409 and "finished" in again.json()["error"]
            assert c.post("/api/queue/nope/cancel", headers=csrf).status_code == 404
        assert store.keys(store.input_bucket, f"{keys.INPUT_PREFIX}{drop}/") == []
        if settings.backend == "local":  # SQS cannot delete a message it has not received
            assert backend.jobs.holds(journal.get(drop).job_id or "") is False  # type: ignore[union-attr]
        # The running pipeline lets go of it (at its next look for files to pick up).
        wait_for(lambda: drop not in pipe.in_flight(), "the pipeline letting go of it")
        assert keep in pipe.in_flight()
        pipe.stop()


def test_cancel_of_a_file_a_worker_took_ends_it_and_the_workers_answer_is_cleaned_up(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """The worker's ffmpeg is not stopped (there is no channel to it), but the file is
    cancelled at once, nothing reaches OUT, and what the worker stores is deleted when its
    answer comes."""
    out = tmp_path / "out"
    hold = Holding()
    with client_without_workers(settings, out) as (pipe, backend, journal):
        fid = submitted(pipe, journal, shutil.copy(clips["h264.mp4"].path, tmp_path / "t.mp4"))
        worker = Worker(
            backend,
            find_ffmpeg(None),
            tmp_path / "work" / "w1",
            visibility=settings.visibility_timeout,
            max_attempts=settings.max_attempts,
            name="worker-1",
            hooks=hold,
        )
        pool = WorkerPool([worker])
        pool.start()
        try:
            assert hold.started.wait(WAIT)  # the worker holds the job (its input in hand)
            app = create_app(settings.state_dir, settings, backend=backend)
            with TestClient(app, base_url=LOCAL, follow_redirects=False) as c:
                (waiting,) = c.get("/api/queue").json()["files"]
                assert waiting["file"]["id"] == fid
                csrf = {"X-CSRF-Token": c.get("/api/session").json()["csrf_token"]}
                assert c.post(f"/api/queue/{fid}/cancel", headers=csrf).status_code == 200
            hold.go.set()
            record = journal.get(fid)
            assert record is not None and record.reason == CANCELLED
            store = backend.store
            wait_for(
                lambda: (
                    not store.keys(store.output_bucket, keys.OUTPUT_PREFIX)
                    and backend.jobs.count() == 0
                    and backend.notifications.count() == 0
                ),
                "the worker's answer handled and its objects deleted",
            )
            assert journal.get(fid).state == FileState.FAILED  # type: ignore[union-attr]
            assert list(out.iterdir()) == []
        finally:
            hold.go.set()
            pool.stop()
        pipe.stop()


def test_overview_metrics_and_health_show_workers_and_queue_depth(
    tmp_path: Path, clips: dict[str, Clip], request: pytest.FixtureRequest
) -> None:
    s = backend_settings(request, tmp_path, "local")
    with client_without_workers(s, tmp_path / "out") as (pipe, backend, journal):
        submitted(pipe, journal, shutil.copy(clips["h264.mp4"].path, tmp_path / "q.mp4"))
        app = create_app(s.state_dir, s, backend=backend, expected_workers=1)
        with TestClient(app, base_url=LOCAL, follow_redirects=False) as c:
            assert "no workers alive" in c.get("/").text
            metrics = c.get("/metrics").text.splitlines()
            assert "autotranscode_queue_depth 1" in metrics
            assert "autotranscode_workers 0" in metrics
            health = c.get("/healthz")
            assert health.status_code == 503
            assert health.json()["checks"]["workers"] == {"ok": False, "alive": 0, "expected": 1}
            assert health.json()["checks"]["backend"]["ok"] is True
        with (
            Heartbeat(backend.store, "box<b>\x1b:42/worker-1", tmp_path / "work"),
            TestClient(
                create_app(s.state_dir, s, backend=backend, expected_workers=1), base_url=LOCAL
            ) as c,
        ):
            assert c.get("/healthz").status_code == 200
            page = c.get("/").text
            workers = c.get("/api/workers").json()
            assert [w["worker"] for w in workers["workers"]] == ["box<b>\x1b:42/worker-1"]
            assert workers["queue_depth"] == 1
            assert "autotranscode_workers 1" in c.get("/metrics").text.splitlines()
        assert "box&lt;b&gt;\\x1b:42/worker-1" in page and "\x1b" not in page
        pipe.stop()


def test_a_progress_notice_names_its_worker_bounded_as_any_message_field(
    tmp_path: Path, clips: dict[str, Clip], request: pytest.FixtureRequest
) -> None:
    """A worker's identity travels in its PROGRESSING notices (``userMetadata.worker``) to
    ``status --json``'s ``progress.worker`` and the Overview; a forged one is cut short and
    shown as text."""
    from autotranscode import status
    from autotranscode.messages import OutputStatus, State, notification, parse_job

    s = backend_settings(request, tmp_path, "local")
    with client_without_workers(s, tmp_path / "out") as (pipe, backend, journal):
        fid = submitted(pipe, journal, shutil.copy(clips["h264.mp4"].path, tmp_path / "p.mp4"))
        (message,) = backend.jobs.receive(wait=5)
        job = parse_job(message.body)
        forged = "<b>evil</b>\x1b[31m" + "w" * 5000
        note = notification(
            State.PROGRESSING,
            job_id=job.job_id,
            pipeline_id=job.pipeline_id,
            input=job.input,
            user_metadata={**job.user_metadata, "worker": forged, "speed": "1.5"},
            outputs=[
                OutputStatus(key=o.key, preset_id=o.preset_id, status="Progressing", percent=40.0)
                for o in job.outputs
            ],
        )
        backend.topic.publish(note.to_json())

        def progress() -> status.Progress | None:
            f = status.file_status(journal, s.state_dir, journal.get(fid))  # type: ignore[arg-type]
            return f.progress if f.progress and f.progress.worker else None

        seen = wait_for(progress, "the progress noted with its worker")
        assert seen.percent == 40.0 and seen.worker == forged[:MAX_FIELD]
        app = create_app(s.state_dir, s, backend=backend)
        with TestClient(app, base_url=LOCAL) as c:
            page = c.get("/").text
        assert "&lt;b&gt;evil&lt;/b&gt;\\x1b[31m" in page and "\x1b" not in page
        assert "<b>evil" not in page
        backend.jobs.hand_back(message)
        pipe.stop()
