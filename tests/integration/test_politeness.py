"""``--nice``/``--ionice``: the ffmpeg a worker runs has the niceness and I/O class asked
for, from its start, and the process that runs the workers keeps its own; ``--hours``: a
worker starts no job outside them."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_worker import answers, send_job

from autotranscode import procs
from autotranscode.deploy import open_backend
from autotranscode.engines.hooks import WorkerHooks
from autotranscode.engines.worker import WorkerPool
from autotranscode.service import transcode_workers
from autotranscode.settings import Settings

from conftest import Clip


class Priorities(WorkerHooks):
    """ffmpeg's niceness and I/O class, read from /proc while it runs."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, procs.IoPriority | None]] = []

    def on_ffmpeg_started(self, *, pid: int, **kwargs: Any) -> None:
        self.seen.append((procs.niceness(pid), procs.io_priority(pid)))


def test_ffmpeg_runs_at_the_niceness_and_io_class_asked_for(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    s = Settings(state_dir=tmp_path / "state", nice=13, ionice="best-effort:7")
    ours = procs.niceness(os.getpid()), procs.io_priority(os.getpid())
    backend = open_backend(s)
    try:
        [worker] = transcode_workers(s, backend, 1)
        worker.hooks = hooks = Priorities()
        pool = WorkerPool([worker])
        pool.start()
        try:
            send_job(backend, clips["h264.mp4"].path, ("web-720p", "audio-aac"))
            [note] = answers(backend, 1).values()
        finally:
            pool.stop()
    finally:
        backend.close()
    assert note.state == "COMPLETED", note
    assert hooks.seen == [(13, procs.IoPriority(2, 7))] * 2
    assert (procs.niceness(os.getpid()), procs.io_priority(os.getpid())) == ours


@pytest.mark.parametrize("ionice", ["idle", None])
def test_the_idle_class_or_none_asked(
    ionice: str | None, clips: dict[str, Clip], tmp_path: Path
) -> None:
    s = Settings(state_dir=tmp_path / "state", ionice=ionice)
    backend = open_backend(s)
    try:
        [worker] = transcode_workers(s, backend, 1)
        worker.hooks = hooks = Priorities()
        pool = WorkerPool([worker])
        pool.start()
        try:
            send_job(backend, clips["h264.mp4"].path, ("audio-aac",))
            answers(backend, 1)
        finally:
            pool.stop()
    finally:
        backend.close()
    ours = procs.io_priority(os.getpid())
    expected = procs.IoPriority(3) if ionice else ours
    assert hooks.seen == [(procs.niceness(os.getpid()), expected)]


class Received(WorkerHooks):
    def __init__(self) -> None:
        self.at: list[datetime] = []

    def on_job_received(self, **kwargs: Any) -> None:
        self.at.append(datetime.now())


def test_a_worker_given_hours_starts_no_job_before_they_begin(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    """A job sent before the hours (by a client without them, or left from the last window)
    waits on the queue; the worker takes it once they begin."""
    opens = (datetime.now() + timedelta(seconds=2)).replace(microsecond=0)
    hours = f"{opens:%H:%M:%S}-{opens + timedelta(hours=1):%H:%M:%S}"
    s = Settings(state_dir=tmp_path / "state", hours=hours)
    backend = open_backend(s)
    try:
        [worker] = transcode_workers(s, backend, 1)
        worker.hooks = hooks = Received()
        send_job(backend, clips["h264.mp4"].path, ("audio-aac",))
        pool = WorkerPool([worker])
        pool.start()
        try:
            [note] = answers(backend, 1).values()
        finally:
            pool.stop()
    finally:
        backend.close()
    assert note.state == "COMPLETED", note
    [received] = hooks.at
    assert received >= opens
