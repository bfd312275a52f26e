"""Turn a folder into a stream of complete files.

Three sources feed one set of candidates: filesystem events (inotify through
watchdog, or polling for network shares), a scan at start-up, and a periodic
rescan that catches whatever events missed. A candidate is handed on only once
it is complete: its size and mtime have held still for the settle period, and,
where inotify can tell, no writer has it open (a modify with no close after it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .media import ignored
from .progress import Subscriber

log = logging.getLogger(__name__)

#: How often candidates are looked at again.
CHECK_INTERVAL_SECONDS = 0.1
#: A full rescan of the folder this often catches events that never came.
RESCAN_INTERVAL_SECONDS = 30.0
#: A file still open for writing is taken anyway after this long without change (a writer died).
OPEN_WRITER_TIMEOUT_SECONDS = 60.0


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    quiet_since: float
    writing: bool = False


class Watcher:
    def __init__(
        self,
        folder: Path,
        on_ready: Callable[[Path], object],
        *,
        matches: Callable[[str], bool],
        settle: float,
        poll: bool = False,
        recursive: bool = False,
        exclude: tuple[Path, ...] = (),
        hooks: Subscriber | None = None,
    ) -> None:
        self.folder = folder
        self.on_ready = on_ready
        self.matches = matches
        self.settle = settle
        self.poll = poll
        self.recursive = recursive
        self.exclude = tuple(p.resolve() for p in exclude)
        #: Told of each file seen while it settles (a display shows it "copying in").
        self.hooks = hooks or Subscriber()
        self._candidates: dict[Path, _Candidate] = {}
        self._taken: dict[Path, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: Set by a new candidate (or a stop): ends the check loop's sleep while it has none.
        self._wake = threading.Event()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._closes_known = False

    def start(self) -> None:
        self._observer = self._start_observer()
        for path in self._scan():
            self._touch(path)
        self._thread = threading.Thread(target=self._check_loop, name="autotranscode-watcher")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
        if self._thread is not None:
            self._thread.join()

    def _start_observer(self) -> BaseObserver:
        handler = _Handler(self)
        if not self.poll:
            try:
                observer: BaseObserver = Observer()
                observer.schedule(handler, str(self.folder), recursive=self.recursive)
                observer.start()
                self._closes_known = _reports_close(observer)
                return observer
            except OSError as exc:  # e.g. inotify watch limit reached, or a FUSE mount
                log.warning("native file events unavailable (%s); polling instead", exc)
        observer = PollingObserver(timeout=1.0)
        observer.schedule(handler, str(self.folder), recursive=self.recursive)
        observer.start()
        return observer

    # -- candidates ------------------------------------------------------------------------------

    def wanted(self, path: Path) -> bool:
        if ignored(path.name) or not self.matches(path.name):
            return False
        try:
            inside = path.relative_to(self.folder).parts[:-1]
        except ValueError:
            inside = ()
        if any(part.startswith(".") for part in inside):  # as _scan skips hidden folders
            return False
        resolved = path.resolve()
        return not any(resolved.is_relative_to(e) for e in self.exclude)

    def _touch(self, path: Path, *, modified: bool = False, closed: bool = False) -> None:
        if not self.wanted(path):
            return
        try:
            st = path.stat()
        except OSError:
            with self._lock:
                if self._candidates.pop(path, None) is not None:
                    self.hooks.on_settled(path=path)
            return
        with self._lock:
            if self._taken.get(path) == (st.st_size, st.st_mtime_ns) and not modified:
                return
            cand = self._candidates.get(path)
            if cand is None:
                cand = _Candidate(st.st_size, st.st_mtime_ns, time.monotonic())
                self._candidates[path] = cand
                self._wake.set()
                self.hooks.on_seen(path=path)
            if modified and self._closes_known:
                cand.writing = True
                cand.quiet_since = time.monotonic()
            if closed:
                cand.writing = False

    def _check_loop(self) -> None:
        """Every CHECK_INTERVAL while files are settling; with none, asleep until one comes
        (or the next rescan): an idle ``run`` should cost no CPU."""
        next_scan = time.monotonic() + RESCAN_INTERVAL_SECONDS
        while True:
            self._wake.clear()
            with self._lock:
                settling = bool(self._candidates)
            if settling:
                self._stop.wait(CHECK_INTERVAL_SECONDS)
            else:
                self._wake.wait(max(0.0, next_scan - time.monotonic()))
            if self._stop.is_set():
                return
            for path in self._ready():
                try:
                    self.on_ready(path)
                except Exception:
                    log.exception("%s: could not be queued", path.name)
                self.hooks.on_settled(path=path)
            if time.monotonic() >= next_scan:
                next_scan = time.monotonic() + RESCAN_INTERVAL_SECONDS
                for path in self._scan():
                    self._touch(path)

    def _ready(self) -> list[Path]:
        now, wall = time.monotonic(), time.time()
        ready = []
        with self._lock:
            for path, cand in list(self._candidates.items()):
                try:
                    st = path.stat()
                except OSError:
                    del self._candidates[path]
                    self.hooks.on_settled(path=path)
                    continue
                if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                    cand.size, cand.mtime_ns, cand.quiet_since = st.st_size, st.st_mtime_ns, now
                    continue
                quiet = now - cand.quiet_since
                if cand.writing and quiet < OPEN_WRITER_TIMEOUT_SECONDS:
                    continue
                age = wall - st.st_mtime_ns / 1e9
                if quiet >= self.settle or (quiet >= CHECK_INTERVAL_SECONDS and age >= self.settle):
                    del self._candidates[path]
                    self._taken[path] = (st.st_size, st.st_mtime_ns)
                    ready.append(path)
        return ready

    def _scan(self) -> Iterator[Path]:
        try:
            walker = os.walk(self.folder) if self.recursive else [(str(self.folder), [], None)]
            for root, dirs, files in walker:
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                names = files if files is not None else os.listdir(root)
                for name in sorted(names):
                    path = Path(root) / name
                    if path.is_file():
                        yield path
        except OSError as exc:
            log.warning("cannot scan %s: %s", self.folder, exc)


def _reports_close(observer: BaseObserver) -> bool:
    """Only inotify says when a writer closes a file; elsewhere an open writer is invisible."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:
        return False
    return isinstance(observer, InotifyObserver)


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            path = Path(os.fsdecode(event.src_path))
            # A writer creates an empty file, and its writes send modify events; a file moved
            # or linked in arrives whole and no close-after-write ever follows.
            self.watcher._touch(path, modified=_is_empty(path))

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher._touch(Path(os.fsdecode(event.src_path)), modified=True)

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher._touch(Path(os.fsdecode(event.dest_path)))

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher._touch(Path(os.fsdecode(event.src_path)), closed=True)
