"""A user's cancel at the very instant the pipeline acts on the same file: the take of a
waiting file, a worker's first progress, its answer. The pipeline read the file before the
cancel landed; whatever it does next, the file stays cancelled, no traceback, nothing left.

The interleaving is made deterministic by handing the pipeline's steps the record as it
read it before the cancel (what a thread that lost the race holds)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from autotranscode import keys, waiting
from autotranscode.backends import Backend
from autotranscode.journal import FileRecord, FileState, Journal
from autotranscode.messages import Notification, OutputStatus, State, notification
from autotranscode.pipeline import Pipeline
from autotranscode.service import Service
from autotranscode.settings import Settings
from autotranscode.stages import OutputStatus as OutcomeStatus

from conftest import Clip, backend_settings

Parts = tuple[Pipeline, Backend, Journal, Settings]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Parts]:
    """A client on the local backend whose jobs wait on the job queue (no worker)."""
    s = backend_settings(None, tmp_path, "local")  # type: ignore[arg-type]
    s = msgspec.structs.replace(s, workers=0)
    with Service(s, tmp_path / "out") as service:
        service.pipeline.start()
        yield service.pipeline, service.backend, service.journal, s
        service.pipeline.stop()


def wait_for(what: Callable[[], Any], why: str) -> Any:
    deadline = time.monotonic() + 60
    while not (got := what()):
        assert time.monotonic() < deadline, f"timed out waiting for {why}"
        time.sleep(0.05)
    return got


def cancelled(journal: Journal, fid: str) -> FileRecord:
    record = journal.get(fid)
    assert record is not None
    assert record.state is FileState.FAILED and record.reason == waiting.CANCELLED
    return record


def answer(pipe: Pipeline, record: FileRecord, state: State, **fields: Any) -> Notification:
    assert record.job_id and record.input_key
    status = fields.pop("status", "Complete")
    outputs = [
        OutputStatus(key=key, preset_id=preset, status=status, size=9)
        for preset, key in zip(record.presets, record.outputs, strict=True)
    ]
    return notification(
        state,
        job_id=record.job_id,
        pipeline_id=pipe.pipeline_id,
        input={"bucket": pipe.backend.store.input_bucket, "key": record.input_key},
        user_metadata={"fileId": record.id},
        outputs=outputs,
        **fields,
    )


def test_a_cancel_just_before_the_take_leaves_the_file_cancelled_and_nothing_stored(
    client: Parts, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    pipe, backend, journal, s = client
    path = Path(shutil.copy(clips["h264.mp4"].path, tmp_path / "t.mp4"))
    st = path.stat()
    record, _ = journal.record("f1", path, pipe.out_dir, ("web-720p",), st.st_size, st.st_mtime_ns)
    waiting.cancel(journal, s.state_dir, backend, record.id)

    pipe._upload(record)  # the take, by a thread that read the file before the cancel

    assert cancelled(journal, record.id).content_hash is None
    store = backend.store
    assert store.keys(store.input_bucket, keys.INPUT_PREFIX) == []
    assert backend.jobs.count() == 0


def test_a_workers_progress_and_answer_after_a_cancel_leave_it_cancelled_and_clean(
    client: Parts, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    pipe, backend, journal, s = client
    fid = pipe.add(Path(shutil.copy(clips["h264.mp4"].path, tmp_path / "t.mp4")))
    stale = wait_for(
        lambda: (r := journal.get(fid)) is not None and r.state is FileState.SUBMITTED and r,
        "the file submitted",
    )
    waiting.cancel(journal, s.state_dir, backend, fid)
    store = backend.store
    made = tmp_path / "made.mp4"
    made.write_bytes(b"an output a worker stored as the cancel landed")
    (key,) = stale.outputs
    store.put(made, store.output_bucket, key)
    listener = pipe._listener

    listener._on_progress(stale, answer(pipe, stale, State.PROGRESSING, status="Progressing"))
    listener._on_completed(stale, answer(pipe, stale, State.COMPLETED))
    listener._on_error(stale, answer(pipe, stale, State.ERROR, reason="boom", status="Error"))

    record = cancelled(journal, fid)
    assert [o.status for o in journal.story.outputs_of(fid)] == [OutcomeStatus.FAILED]
    assert [o.reason for o in journal.story.outputs_of(fid)] == [waiting.CANCELLED]
    assert store.keys(store.output_bucket, f"{keys.OUTPUT_PREFIX}{record.job_id}/") == []
    assert list(pipe.out_dir.iterdir()) == []
