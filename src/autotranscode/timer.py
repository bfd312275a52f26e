"""The delay before a retry: one thread and a heap for every file that waits to try again.

A retry waits here, never on a transfer thread: with ``transfers=1`` a new file used to
wait behind a retrying one's backoff, and a few failing files stalled all new work.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


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
