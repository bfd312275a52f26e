"""Turn a folder into a stream of complete files.

Three sources feed one set of candidates: filesystem events (inotify through
watchdog, or polling for network shares), a scan at start-up, and a periodic
rescan that catches whatever events missed. A candidate is handed on only once
it is complete: its size and mtime have held still for the settle period, and,
where inotify can tell, no writer has it open (a modify with no close after it).

A writer that appends in bursts (open, append, close, pause, again) looks complete
after each burst. So the hold adapts: once a file is seen to grow again after a
pause, it must stay still for several times the longest such pause (capped), and
only the whole file is taken, not each piece.

Only regular files are taken. A FIFO, socket, device, folder or dangling link with
a media name is reported once to ``on_skipped`` and never opened: opening a FIFO
blocks until a writer comes, which would stop this watcher for good.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .media.probe import ignored, not_regular
from .progress import Subscriber
from .settings import DEFAULT_RESCAN_SECONDS

log = logging.getLogger(__name__)

#: How often candidates are looked at again.
CHECK_INTERVAL_SECONDS = 0.1
#: A full rescan of the folder this often catches events that never came (``--rescan``).
RESCAN_INTERVAL_SECONDS = DEFAULT_RESCAN_SECONDS
#: A file still open for writing is taken anyway after this long without change (a writer died).
OPEN_WRITER_TIMEOUT_SECONDS = 60.0
#: A file that grew again after a pause is held this many times its longest pause...
HOLD_FACTOR = 4.0
#: ...but never longer than this; a longer pause is an edit, not an append.
MAX_HOLD_SECONDS = 60.0


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    quiet_since: float
    writing: bool = False


@dataclass
class _Rhythm:
    """How a path has been written lately: kept after it is taken, so that a file that
    grows again (appended in bursts) is held longer from then on."""

    last_write: float
    longest_pause: float = 0.0

    def wrote(self, now: float) -> None:
        pause = now - self.last_write
        if pause <= MAX_HOLD_SECONDS:
            self.longest_pause = max(self.longest_pause, pause)
        self.last_write = now


class Watcher:
    def __init__(
        self,
        folder: Path,
        on_ready: Callable[[Path], object],
        *,
        matches: Callable[[str], bool],
        settle: float,
        rescan: float = RESCAN_INTERVAL_SECONDS,
        poll: bool = False,
        recursive: bool = False,
        exclude: tuple[Path, ...] = (),
        skip_folders: tuple[str, ...] = (),
        on_skipped: Callable[[Path, str], object] | None = None,
        hooks: Subscriber | None = None,
    ) -> None:
        """``exclude``: folders whose files are never taken (OUT, the state dir). One that
        holds ``folder`` itself (DROP inside OUT) excludes nothing: outputs land beside
        DROP, not in it. ``skip_folders``: names of subfolders never looked into, at any depth
        (``done``, where sources are moved to). ``on_skipped(path, what)``: a media name that
        is no regular file."""
        self.folder = folder
        self.on_ready = on_ready
        self.on_skipped = on_skipped
        self.matches = matches
        self.settle = settle
        self.rescan_every = rescan
        self.poll = poll
        self.recursive = recursive
        self.skip_folders = frozenset(skip_folders)
        here = folder.resolve()
        self.exclude = tuple(
            e for e in (p.resolve() for p in exclude) if not here.is_relative_to(e)
        )
        #: Told of each file seen while it settles (a display shows it "copying in").
        self.hooks = hooks or Subscriber()
        self._candidates: dict[Path, _Candidate] = {}
        #: Size and mtime of each file taken, by path as text (a rescan of a large tree
        #: makes no Path of a file it knows: on 3.11 that was most of its time).
        self._taken: dict[str, tuple[int, int]] = {}
        self._skipped: dict[Path, str] = {}
        self._rhythm: dict[Path, _Rhythm] = {}
        self._next_prune = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: Set by a new candidate (or a stop): ends the check loop's sleep while it has none.
        self._wake = threading.Event()
        #: How many times the check loop has looked at the settling files: each look is a
        #: wake-up, and an idle watcher should make none.
        self.looks = 0
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._closes_known = False

    def start(self) -> None:
        self._observer = self._start_observer()
        self.rescan()
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
        if any(part.startswith(".") or part in self.skip_folders for part in inside):
            return False
        resolved = path.resolve()
        return not any(resolved.is_relative_to(e) for e in self.exclude)

    def hold(self, path: Path) -> float:
        """How long ``path`` must stay still before it is taken: the settle time, or longer
        for a file seen to grow again after a pause (a writer appending in bursts)."""
        rhythm = self._rhythm.get(path)
        longest = rhythm.longest_pause if rhythm is not None else 0.0
        return max(self.settle, min(MAX_HOLD_SECONDS, HOLD_FACTOR * longest))

    def _touch(self, path: Path, *, modified: bool = False, closed: bool = False) -> None:
        if not self.wanted(path):
            return
        try:
            kind = not_regular(path)  # stat and lstat only: never an open
            st = path.stat() if kind is None else None
        except OSError:
            with self._lock:
                if self._candidates.pop(path, None) is not None:
                    self.hooks.on_settled(path=path)
            return
        if st is None:
            self._skip(path, kind or "not a regular file")
            return
        now = time.monotonic()
        with self._lock:
            self._skipped.pop(path, None)
            if modified:
                self._wrote(path, now)
            if self._taken.get(str(path)) == (st.st_size, st.st_mtime_ns) and not modified:
                return
            cand = self._candidates.get(path)
            if cand is None:
                cand = _Candidate(st.st_size, st.st_mtime_ns, now)
                self._candidates[path] = cand
                self._wake.set()
                self.hooks.on_seen(path=path)
            if modified:
                cand.quiet_since = now  # the last write seen, whatever the file's times say
                cand.writing = self._closes_known
            if closed:
                cand.writing = False

    def _wrote(self, path: Path, now: float) -> None:
        """Note a write (an event, or a change a check saw); the caller holds the lock."""
        rhythm = self._rhythm.get(path)
        if rhythm is None:
            self._rhythm[path] = _Rhythm(now)
        else:
            rhythm.wrote(now)

    def _skip(self, path: Path, kind: str) -> None:
        """Report a media name that is no regular file, once (until it changes kind)."""
        with self._lock:
            self._candidates.pop(path, None)
            if self._skipped.get(path) == kind:
                return
            self._skipped[path] = kind
        log.debug("%s: not taken: %s", path.name, kind)
        if self.on_skipped is not None:
            try:
                self.on_skipped(path, kind)
            except Exception:
                log.exception("%s: could not be recorded as skipped", path.name)

    def _check_loop(self) -> None:
        """Every CHECK_INTERVAL while files are settling; with none, asleep until one comes
        (or the next rescan): an idle ``run`` should cost no CPU."""
        next_scan = time.monotonic() + self.rescan_every
        while True:
            self._wake.clear()
            if self._stop.is_set():  # a stop while this loop was busy: its wake just cleared
                return
            with self._lock:
                settling = bool(self._candidates)
            if settling:
                self._stop.wait(CHECK_INTERVAL_SECONDS)
            else:
                self._wake.wait(max(0.0, next_scan - time.monotonic()))
            if self._stop.is_set():
                return
            self.looks += 1
            for path in self._ready():
                try:
                    self.on_ready(path)
                except Exception:
                    log.exception("%s: could not be queued", path.name)
                self.hooks.on_settled(path=path)
            if time.monotonic() >= next_scan:
                next_scan = time.monotonic() + self.rescan_every
                self.rescan()

    def rescan(self) -> None:
        """Look at every file in the folder (the tree): a new or changed one becomes a
        candidate. Stat data only: no file is opened or read.

        A file taken before and unchanged since (the bulk of a library) costs one stat:
        what ``_touch`` checks besides (the name, where the path resolves to) cannot have
        changed while its size and mtime did not. 20,000 such files: about 0.2 s
        (``bench/rescan.py``), where each through ``_touch`` took 1.2 s.
        """
        taken = self._taken
        for name in self._scan():
            known = taken.get(name)  # a hint read without the lock: _touch decides
            if known is None or not _unchanged(name, known):
                self._touch(Path(name))

    def _ready(self) -> list[Path]:
        now, wall = time.monotonic(), time.time()
        ready = []
        replaced = []
        with self._lock:
            self._prune(now)
            for path, cand in list(self._candidates.items()):
                try:
                    st = path.stat()
                except OSError:
                    del self._candidates[path]
                    self.hooks.on_settled(path=path)
                    continue
                if not stat.S_ISREG(st.st_mode):  # replaced by a FIFO or the like meanwhile
                    del self._candidates[path]
                    replaced.append(path)
                    self.hooks.on_settled(path=path)
                    continue
                if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                    cand.size, cand.mtime_ns, cand.quiet_since = st.st_size, st.st_mtime_ns, now
                    self._wrote(path, now)
                    continue
                quiet = now - cand.quiet_since
                if cand.writing and quiet < OPEN_WRITER_TIMEOUT_SECONDS:
                    continue
                hold = self.hold(path)
                age = wall - st.st_mtime_ns / 1e9
                if quiet >= hold or (quiet >= CHECK_INTERVAL_SECONDS and age >= hold):
                    del self._candidates[path]
                    self._taken[str(path)] = (st.st_size, st.st_mtime_ns)
                    ready.append(path)
        for path in replaced:
            self._touch(path)
        return ready

    def _prune(self, now: float) -> None:
        """Forget the rhythm of paths not written for a while (a minute's drops at most)."""
        if now < self._next_prune:
            return
        self._next_prune = now + 1.0
        for path in [p for p, r in self._rhythm.items() if now - r.last_write > MAX_HOLD_SECONDS]:
            if path not in self._candidates:
                del self._rhythm[path]

    def _scan(self) -> Iterator[str]:
        try:
            walker = os.walk(self.folder) if self.recursive else [(str(self.folder), [], None)]
            for root, dirs, files in walker:
                dirs[:] = [d for d in dirs if not d.startswith(".") and d not in self.skip_folders]
                # Not recursive: every name, folders too (a folder named like media is
                # reported as skipped); recursive: what os.walk does not descend into.
                names = files if files is not None else os.listdir(root)
                for name in sorted(names):
                    yield os.path.join(root, name)  # as str(Path(root) / name) is
        except OSError as exc:
            log.warning("cannot scan %s: %s", self.folder, exc)


def _unchanged(name: str, known: tuple[int, int]) -> bool:
    """Whether ``name`` is a regular file still of this size and mtime."""
    try:
        st = os.stat(name)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) == known


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
        if event.is_directory and not self.watcher.recursive:  # one named like media: skipped
            self.watcher._touch(Path(os.fsdecode(event.src_path)))
        elif not event.is_directory:
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
