"""The running system of one client: backend, journal, in-process workers and pipeline.

Every caller that transcodes (the ``run``/``transcode``/``retry`` commands, the tests,
the benchmarks, next the web app) needs the same parts started in the same order and
stopped in the reverse one, also when starting fails half-way, and needs one client
per state dir: two would take each other's notifications. Wiring them in each caller
made copies that drifted; this module is the one place.

    with Service(settings, out, hooks) as service:
        service.pipeline.start()
        service.pipeline.add(path)

The pipeline is built but not started: the caller starts it (resuming a previous run's
files or not) once whatever shows its progress is up. Stopping it is the service's.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from .backends import Backend
from .deploy import open_backend
from .engines import open_engine
from .engines.workdirs import workdir_for
from .engines.worker import Worker, WorkerPool
from .errors import ConfigError
from .hours import Hours
from .journal import Journal
from .media.transcoder import find_ffmpeg
from .notify import Notifier, NotifyConfig
from .pipeline import Pipeline
from .procs import IoPriority, crash_record, yield_cpu_to_ffmpeg
from .progress import JournalProgress, Subscriber, Subscribers
from .settings import Settings

#: In the state dir: held (flock) by the one client using it.
LOCK_FILE = "client.lock"
JOURNAL_FILE = "journal.db"

T = TypeVar("T")


class StateDirBusy(ConfigError):
    """Another client (``run``, ``transcode``, ``retry``...) holds the state dir's lock.

    A ConfigError like any other for the user (give this one its own ``--state-dir``);
    its own class for ``retry``, which then hands its files to the running client.
    """


def usable_state_dir(state_dir: Path) -> Path:
    """The state dir, made if need be and written to once: a folder we cannot use (no
    permission, read-only, under /proc, a file in the way) is a setting to fix, said in one
    line before anything else starts, not a traceback from whichever part touches it first."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=state_dir):
            pass
    except OSError as exc:
        raise ConfigError(
            f"state dir {state_dir} cannot be used ({exc.strerror or exc}); give a writable "
            "folder with --state-dir or AUTOTRANSCODE_STATE_DIR"
        ) from exc
    return state_dir


@contextlib.contextmanager
def client_lock(state_dir: Path) -> Iterator[None]:
    """One client per state dir: two would take each other's notifications. StateDirBusy
    at once (no waiting) while another holds it; the lock goes with the process."""
    usable_state_dir(state_dir)
    try:
        fh = (state_dir / LOCK_FILE).open("a+")
    except OSError as exc:
        raise ConfigError(
            f"state dir {state_dir}: cannot open {LOCK_FILE} ({exc.strerror or exc})"
        ) from exc
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StateDirBusy(
                f"another autotranscode run/transcode is using {state_dir}; "
                "wait for it, or give this one its own --state-dir"
            ) from exc
        yield


def transcode_workers(s: Settings, backend: Backend, count: int) -> list[Worker]:
    """``count`` ffmpeg workers on ``backend``'s job queue, each with its own scratch folder."""
    ffmpeg = find_ffmpeg(s.ffmpeg)
    return [
        Worker(
            backend,
            ffmpeg,
            workdir_for(s.state_dir / "work", f"worker-{i + 1}"),
            visibility=s.visibility_timeout,
            max_attempts=s.max_attempts,
            name=f"worker-{i + 1}",
            catalog=s.catalog,
            nice=s.nice,
            ionice=IoPriority.parse(s.ionice) if s.ionice else None,
            hours=Hours.parse(s.hours) if s.hours else None,
            threads=s.threads,
        )
        for i in range(count)
    ]


class Service:
    """A client's parts, started on enter in order (lock, backend, journal, workers,
    pipeline built) and stopped on exit in reverse, whatever happened in between.

    A failure while entering stops what had started and releases the lock before it
    propagates. ``backend``, ``journal`` and ``pipeline`` are there between enter and exit.
    """

    def __init__(
        self,
        settings: Settings,
        out: Path,
        hooks: Subscriber | None = None,
        notify: NotifyConfig | None = None,
    ) -> None:
        self.settings = settings
        self.out = out
        self.hooks = hooks
        self.notify = notify
        self._stack: contextlib.ExitStack | None = None
        self._backend: Backend | None = None
        self._journal: Journal | None = None
        self._pipeline: Pipeline | None = None

    @property
    def backend(self) -> Backend:
        return _started(self._backend)

    @property
    def journal(self) -> Journal:
        return _started(self._journal)

    @property
    def pipeline(self) -> Pipeline:
        return _started(self._pipeline)

    def __enter__(self) -> Service:
        if self._stack is not None:
            raise RuntimeError("this service is already running")
        with contextlib.ExitStack() as stack:
            self._start(stack)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def _start(self, stack: contextlib.ExitStack) -> None:
        """Each part, once started, registers its stop: ``stack`` runs them in reverse."""
        s = self.settings
        stack.enter_context(client_lock(s.state_dir))
        stack.callback(self._forget)
        in_process = s.workers if s.engine == "workers" else 0
        if in_process:
            stack.enter_context(crash_record(s.state_dir))
        self._backend = backend = open_backend(s)
        stack.callback(backend.close)
        self._journal = journal = Journal(s.state_dir / JOURNAL_FILE)
        stack.callback(journal.close)
        pool = WorkerPool(transcode_workers(s, backend, in_process) if in_process else [])
        notifier = None
        if self.notify is not None:
            # Stopped after the pipeline (callbacks run in reverse): its last files told.
            notifier = Notifier(journal, s.state_dir, s.name, self.notify)
            stack.callback(notifier.close)
        hooks = Subscribers(self.hooks, JournalProgress(journal), notifier)
        pipe = Pipeline(backend, journal, self.out, s, engine=open_engine(s, backend), hooks=hooks)
        stack.callback(pool.stop)
        stack.callback(pipe.stop)
        # Workers and the listener wind down together, not one after the other.
        stack.callback(pool.signal_stop)
        self._pipeline = pipe
        pool.start()
        # ffmpeg runs from the worker threads just started; what this thread starts from
        # now on (listener, transfers, watcher) and its own work come second to it.
        yield_cpu_to_ffmpeg()

    def _forget(self) -> None:
        """Just before the lock goes: stopped parts are no longer handed out."""
        self._backend = self._journal = self._pipeline = None


def _started(part: T | None) -> T:
    if part is None:
        raise RuntimeError("the service is not running: use it inside `with Service(...)`")
    return part


@contextlib.contextmanager
def serving(s: Settings) -> Iterator[WorkerPool]:
    """The transcoding service alone (``autotranscode worker``): workers on a deployment
    that already exists, until the caller's block ends. No client lock: any number of
    worker processes may share a state dir's queues."""
    usable_state_dir(s.state_dir)  # its work folder, and the local backend's store
    backend = open_backend(s, create=False)  # workers use a deployment; `setup` creates it
    try:
        pool = WorkerPool(transcode_workers(s, backend, max(s.workers, 1)))
        with crash_record(s.state_dir):
            pool.start()
            try:
                yield pool
            finally:
                pool.stop()
    finally:
        backend.close()
