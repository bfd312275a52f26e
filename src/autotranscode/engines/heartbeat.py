"""Workers' heartbeats: which workers are alive, where they run, what each is working on.

Each worker keeps one small JSON object in the deployment's output bucket
(``keys.worker_key``), written through the backend's store: when it starts, when a job
starts or ends, and every ``HEARTBEAT_SECONDS``; a clean stop deletes it. Readers (the
dashboard, ``/metrics``, ``/healthz``) list the prefix and take a beat older than
``STALE_AFTER_SECONDS`` (three intervals) for a worker that is gone: killed with -9, its
machine lost. No entry is ever deleted by a reader: a worker that comes back writes again.

Why the store: both backends have one that every worker writes and every client reads
(S3 here, a folder under the state dir there), so a heartbeat needs no new resource, no
new right beyond its own prefix, and one object per worker never contends with another.
What a beat says is read as untrusted (anyone who can write the bucket can write one):
typed, each text bounded, and shown through ``text.shown`` by whoever displays it.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from types import TracebackType

import msgspec

from .. import keys
from ..backends import ObjectStore
from ..errors import AutotranscodeError
from ..procs import pid_alive

log = logging.getLogger(__name__)

#: A worker writes its beat at least this often (and at each job's start and end).
HEARTBEAT_SECONDS = 15.0
#: A beat older than this (three intervals missed) is a worker that is gone.
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS
#: The longest text a beat may carry in a field; longer ones are cut.
MAX_FIELD = 200
#: At most this many beats are read (a bucket full of forged ones must not stall a page).
MAX_WORKERS = 500


class Beat(msgspec.Struct, frozen=True):
    """One worker as its last heartbeat tells it (times are UNIX seconds, the writer's clock)."""

    worker: str
    host: str
    pid: int
    #: When the worker started.
    since: float
    #: When this beat was written.
    at: float
    #: The job it works on (the latest started, when two overlap), its input file's name,
    #: and when that job started; None while it waits for a job.
    job_id: str | None = None
    file: str | None = None
    job_since: float | None = None


def worker_identity(name: str) -> str:
    """``host:pid/name``: unique among the workers of a deployment, and says where to look."""
    return f"{socket.gethostname()}:{os.getpid()}/{name}"


class Heartbeat:
    """A worker's beat, kept written while the ``with`` block runs and deleted at its end."""

    def __init__(
        self,
        store: ObjectStore,
        identity: str,
        workdir: Path,
        interval: float = HEARTBEAT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.identity = identity
        self.key = keys.worker_key(identity)
        self.workdir = workdir
        self.interval = interval
        self._clock = clock
        self._since = clock()
        #: What the worker works on, by message receipt: (job id, file, since), in order.
        self._jobs: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self._stop.clear()
        self._since = self._clock()
        self._sweep()
        self.beat()
        self._thread = threading.Thread(
            target=self._run, name=f"autotranscode-{self.identity.rpartition('/')[2]}-beat"
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._jobs.clear()
        try:
            self.store.delete(self.store.output_bucket, self.key)
        except AutotranscodeError as exc:
            log.warning("%s: heartbeat not removed (%s); it goes stale", self.identity, exc)

    def working(self, receipt: str, job_id: str, input_key: str) -> None:
        """A job (the message of ``receipt``) has started: said at once while the beat runs."""
        with self._lock:
            self._jobs[receipt] = (job_id, PurePosixPath(input_key).name, self._clock())
        if self._thread is not None:
            self.beat()

    def done(self, receipt: str) -> None:
        with self._lock:
            ended = self._jobs.pop(receipt, None)
        if ended is not None and self._thread is not None:
            self.beat()

    def now(self) -> Beat:
        host = self.identity.partition(":")[0]
        with self._lock:
            latest = list(self._jobs.values())[-1:]
        job_id, file, job_since = latest[0] if latest else (None, None, None)
        return Beat(
            worker=self.identity,
            host=host,
            pid=os.getpid(),
            since=self._since,
            at=self._clock(),
            job_id=job_id,
            file=file,
            job_since=job_since,
        )

    def beat(self) -> None:
        """Write the beat now. A failure is logged, never raised: a worker that cannot say it
        is alive (the store is down) still works, and its beat goes stale meanwhile."""
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            tmp = self.workdir / f".beat-{uuid.uuid4().hex[:8]}.json"
            tmp.write_bytes(msgspec.json.encode(self.now()))
            try:
                self.store.put(tmp, self.store.output_bucket, self.key)
            finally:
                tmp.unlink(missing_ok=True)
        except (AutotranscodeError, OSError) as exc:
            log.debug("%s: heartbeat not written: %s", self.identity, exc)

    def _sweep(self) -> None:
        """Delete the beats that processes of this host killed with -9 left: stale ones would
        only pile up (one per crash). Where the store cannot be listed (a worker on S3 has
        no right to), nothing is swept: lifecycle rules and readers' staleness do it."""
        host, me = self.identity.partition(":")[0], os.getpid()
        try:
            dead = [
                b
                for b in read_beats(self.store, stale_after=float("inf"))
                if b.host == host and b.pid != me and not pid_alive(b.pid)
            ]
            for b in dead:
                self.store.delete(self.store.output_bucket, keys.worker_key(b.worker))
        except AutotranscodeError as exc:
            log.debug("%s: old heartbeats not swept: %s", self.identity, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()


def read_beats(
    store: ObjectStore, now: float | None = None, stale_after: float = STALE_AFTER_SECONDS
) -> list[Beat]:
    """The workers alive: beats newer than ``stale_after``, by identity. Unreadable or
    malformed beats are left out; StorageError when the store cannot be listed."""
    now = time.time() if now is None else now
    found = []
    names = store.keys(store.output_bucket, keys.WORKERS_PREFIX)[:MAX_WORKERS]
    with tempfile.TemporaryDirectory(prefix="autotranscode-beats-") as tmp:
        for i, key in enumerate(names):
            dest = Path(tmp) / f"{i}.json"
            try:
                store.download(store.output_bucket, key, dest)
                beat = _checked(msgspec.json.decode(dest.read_bytes()[:65536], type=Beat))
            except (AutotranscodeError, OSError, msgspec.DecodeError, ValueError) as exc:
                log.debug("heartbeat %s not read: %s", key, exc)
                continue
            if abs(now - beat.at) <= stale_after:  # a beat from the future is forged too
                found.append(beat)
    return sorted(found, key=lambda b: b.worker)


def _checked(beat: Beat) -> Beat:
    """Each text cut to MAX_FIELD; times that are numbers (not NaN); a pid that is one."""
    for t in (beat.since, beat.at, beat.job_since or 0.0):
        if t != t:
            raise ValueError("a time that is not a number")
    if not 0 < beat.pid < 2**31:  # never handed to os.kill as a group or out of range
        raise ValueError(f"pid {beat.pid} is no process id")
    return msgspec.structs.replace(
        beat,
        worker=beat.worker[:MAX_FIELD],
        host=beat.host[:MAX_FIELD],
        job_id=beat.job_id[:MAX_FIELD] if beat.job_id else None,
        file=beat.file[:MAX_FIELD] if beat.file else None,
    )
