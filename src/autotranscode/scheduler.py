"""Which files are in flight, and when each one's next step runs: now, on a transfer
thread, or (a retry) once its backoff has passed.

A retry waits on the ``RetryTimer``, never on a transfer thread: with ``transfers=1`` a
new file used to wait behind a retrying one's backoff, and a few failing files stalled
all new work. The pipeline decides what a step does; this module only runs it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor


class RetryTimer:
    """Calls ``due(fid, delay)`` once each scheduled time has come (``delay``: the backoff
    it waited, which the next retry doubles)."""

    def __init__(self, due: Callable[[str, float], None]) -> None:
        self._due = due
        self._heap: list[tuple[float, int, str, float]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def at(self, when: float, fid: str, delay: float) -> None:
        """Call ``due(fid, delay)`` at ``when`` (``time.monotonic``); nothing once stopped."""
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (when, next(self._order), fid, delay))
            if self._thread is None:  # started by the first retry: most runs never need it
                self._thread = threading.Thread(target=self._run, name="autotranscode-retries")
                self._thread.start()
            self._cond.notify()

    def stop(self) -> None:
        """Drop what waits (it resumes on the next start) and end the thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                if self._stopped:
                    return  # what was waiting resumes on the next start
                _, _, fid, delay = heapq.heappop(self._heap)
            self._due(fid, delay)


class Scheduler:
    """Runs ``run(fid, delay)`` for each scheduled file on ``executor`` (``delay``: the
    backoff that preceded this try); keeps the set of files in flight, which ``wait``
    blocks on, and the files parked behind another one of the same content."""

    def __init__(
        self, run: Callable[[str, float], None], executor: Executor, stop: threading.Event
    ) -> None:
        self._run = run
        self._executor = executor
        self._stop = stop
        self._timer = RetryTimer(self._due)
        self._active: set[str] = set()
        self._cond = threading.Condition()
        self._woken = False
        #: What each wait() waits for: a finished file wakes them only when one is complete.
        self._awaited: list[set[str]] = []
        #: Files waiting for a file of the same content (in flight here) to finish first.
        self._parked: dict[str, set[str]] = {}

    def schedule(self, fid: str, delay: float = 0.0) -> None:
        """Run the file's next step now, or (a retry) once ``delay`` has passed; in flight
        from now on, even once stopped (it resumes on the next start)."""
        with self._cond:
            self._active.add(fid)
        if self._stop.is_set():
            return
        if delay > 0:
            self._timer.at(time.monotonic() + delay, fid, delay)
        else:
            self._executor.submit(self._run, fid, 0.0)

    def _due(self, fid: str, delay: float) -> None:
        """The timer's callback: a retry is due (``delay``: the backoff it waited)."""
        if not self._stop.is_set():
            # RuntimeError: shut down meanwhile; the file resumes on the next start.
            with contextlib.suppress(RuntimeError):
                self._executor.submit(self._run, fid, delay)

    def active(self, fid: str) -> bool:
        with self._cond:
            return fid in self._active

    def in_flight(self) -> set[str]:
        with self._cond:
            return set(self._active)

    def park(self, fid: str, behind: Iterable[str]) -> str | None:
        """Park ``fid`` behind the first of ``behind`` in flight (not ``fid``, nor one parked
        itself: two copies taken at once never wait for each other); that one's id, or None
        if there is none. ``finished`` hands the parked files back."""
        with self._cond:
            parked = set().union(*self._parked.values())
            for other in behind:
                if other in self._active and other not in parked and other != fid:
                    self._parked.setdefault(other, set()).add(fid)
                    return other
        return None

    def finished(self, fid: str) -> set[str]:
        """``fid`` is out of flight: wake the waits it completes; the files parked behind it."""
        with self._cond:
            self._active.discard(fid)
            parked = self._parked.pop(fid, set())
            if any(not (wanted & self._active) for wanted in self._awaited):
                self._cond.notify_all()
        return parked

    def wait(self, fids: Iterable[str], timeout: float | None = None) -> bool:
        """Block until none of ``fids`` is in flight, or ``wake()``; whether they are done."""
        wanted = set(fids)
        with self._cond:
            self._awaited.append(wanted)
            try:
                self._cond.wait_for(lambda: self._woken or not (wanted & self._active), timeout)
            finally:
                self._awaited.remove(wanted)
            return not (wanted & self._active)

    def wake(self) -> None:
        """End every ``wait()`` now, finished or not (safe from a signal handler: the
        condition's lock is reentrant, and the main thread is the only one a handler can
        interrupt)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def stop(self) -> None:
        """No retry fires any more (the stop event is set already)."""
        self._timer.stop()
