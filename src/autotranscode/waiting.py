"""What waits, in the order it will be taken, and a user's two moves on it: cancel a file,
or move its job to the front.

Written for the dashboard (and any other process beside ``run``): it acts through the
journal and the backend's queues and store, as ``retry`` does, and a running pipeline
sees the result at its next look (``Pipeline.pick_up`` lets go of a file cancelled here).

The order: first the files whose job is on the job queue (workers take them in the queue's
order, which the local backend can tell and change; SQS keeps no order, so there they are
listed by when they were sent), then the files not yet sent, oldest first.

A cancel ends the file FAILED with the reason ``CANCELLED`` (so Retry brings it back), its
stored input and outputs deleted, and its job message withdrawn where the queue allows
(local). A file a worker has taken already is cancelled too: its transcode runs to its end
(there is no channel to stop another machine's ffmpeg), and its outputs are deleted when
its answer comes (the listener deletes a finished file's late outputs); on SQS, a job
still waiting is answered "the input is gone" by the first worker that takes it, at once.
Files being uploaded or downloaded are refused: the pipeline is acting on them right now.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from . import keys, outcomes, status
from .backends import Backend
from .errors import AutotranscodeError
from .filelog import FileLogs
from .journal import FileState, Journal

log = logging.getLogger(__name__)

#: The reason a cancelled file ends with.
CANCELLED = "cancelled"
#: The states a file waits in (for a transfer thread, or for a worker).
WAITING = (FileState.DISCOVERED, FileState.UPLOADED, FileState.SUBMITTED)
#: The states a cancel is accepted in: waiting, or being transcoded by a worker.
CANCELLABLE = (*WAITING, FileState.TRANSCODING)


class Waiting(msgspec.Struct, frozen=True):
    """One file that waits: its place (1: next), whether a worker holds its job already
    (taken, not yet started), whether it can be moved to the front, and its status."""

    position: int
    taken: bool
    movable: bool
    file: status.FileStatus


class QueueView(msgspec.Struct, frozen=True):
    """``/api/queue``: what waits, in order; ``reorderable``: whether the job queue can be
    reordered (the local backend's can, SQS cannot); ``depth``: messages on the job queue
    (None: unknown, no backend at hand or it cannot be reached)."""

    schema_version: int
    depth: int | None
    reorderable: bool
    files: list[Waiting]


class Refused(Exception):
    """A cancel or a move that cannot be done (the message says why, to the user)."""


def queue(journal: Journal, state_dir: Path, backend: Backend | None) -> QueueView:
    records = [r for r in journal.unfinished() if r.state in WAITING]
    order: list[str] | None = None
    depth: int | None = None
    if backend is not None:
        try:
            order = backend.jobs.waiting()
            depth = backend.jobs.count()
        except AutotranscodeError as exc:
            log.warning("the job queue cannot be read: %s", exc)
    place = {job_id: i for i, job_id in enumerate(order or [])}
    sent = [r for r in records if r.state is FileState.SUBMITTED]
    # Sent, in the queue's order (taken ones first: a worker is about to start them); then
    # the rest by when they came.
    sent.sort(key=lambda r: (place.get(r.job_id or "", -1), r.updated_at))
    rest = sorted(
        (r for r in records if r.state is not FileState.SUBMITTED), key=lambda r: r.created_at
    )
    files = []
    for n, r in enumerate([*sent, *rest], start=1):
        taken = order is not None and r.state is FileState.SUBMITTED and r.job_id not in place
        movable = order is not None and r.job_id in place
        files.append(Waiting(n, taken, movable, status.file_status(journal, state_dir, r)))
    return QueueView(status.SCHEMA_VERSION, depth, order is not None, files)


def cancel(journal: Journal, state_dir: Path, backend: Backend | None, fid: str) -> None:
    """Cancel file ``fid`` (see the module docstring). KeyError: no such file; Refused: it
    is finished, or being uploaded or downloaded."""
    record = journal.get(fid)
    if record is None:
        raise KeyError(fid)
    if record.state not in CANCELLABLE:
        what = "finished" if record.state.finished else "being uploaded or downloaded"
        raise Refused(f"only waiting or transcoding files are cancelled; this one is {what}")
    if not journal.cancel(fid, record.state, CANCELLED):
        raise Refused("the file moved on meanwhile; look again")
    outcomes.failed_all(journal, record, CANCELLED)
    if backend is not None:
        store = backend.store
        try:
            if record.job_id:
                backend.jobs.withdraw(record.job_id)
            store.delete_prefix(store.input_bucket, f"{keys.INPUT_PREFIX}{fid}/")
            if record.job_id:
                store.delete_prefix(store.output_bucket, f"{keys.OUTPUT_PREFIX}{record.job_id}/")
        except AutotranscodeError as exc:  # cancelled all the same; `cleanup` finds the rest
            log.warning("%s: cancelled, but objects are left: %s", record.name, exc)
    FileLogs(state_dir, journal).write(fid)
    log.info("%s: cancelled", record.name)


def to_front(journal: Journal, backend: Backend | None, fid: str) -> None:
    """Make file ``fid``'s job the next one a worker takes. KeyError: no such file; Refused:
    it is not on the job queue, a worker has it, or the queue cannot be reordered."""
    record = journal.get(fid)
    if record is None:
        raise KeyError(fid)
    if record.state is not FileState.SUBMITTED or not record.job_id:
        raise Refused("only a file waiting for a worker (its job on the queue) is moved")
    moved = backend.jobs.to_front(record.job_id) if backend is not None else None
    if moved is None:
        raise Refused("this job queue keeps no order that can be changed (SQS)")
    if not moved:
        raise Refused("a worker has taken its job already")
