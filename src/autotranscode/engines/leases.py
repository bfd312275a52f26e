"""A worker's leases: the job messages it works on stay invisible to other workers.

Its own module so the worker reads as what it does with a job; the lease keeper is one
thread per worker, whatever the number of jobs it holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..backends import MessageQueue, Received
from ..errors import AutotranscodeError

log = logging.getLogger(__name__)


class Leases:
    """Keeps the messages a worker is working on invisible to other workers, for as long as
    it works on them: one thread per worker renews them all, rather than one per job."""

    def __init__(self, queue: MessageQueue, visibility: float, name: str) -> None:
        self.queue = queue
        self.visibility = visibility
        self.name = name
        self._held: dict[int, Received] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Leases:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._renew, name=f"autotranscode-{self.name}-leases"
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @contextmanager
    def hold(self, message: Received) -> Iterator[None]:
        """Renew ``message`` until the block ends (while the keeper runs, i.e. in ``run``)."""
        with self._lock:
            self._held[id(message)] = message
        try:
            yield
        finally:
            with self._lock:  # not during a renewal: the message may be deleted next
                del self._held[id(message)]

    def _renew(self) -> None:
        while not self._stop.wait(self.visibility / 3):
            with self._lock:
                for message in self._held.values():
                    try:
                        self.queue.extend(message, self.visibility)
                    except AutotranscodeError as exc:
                        log.warning("%s: cannot renew a job's lease: %s", self.name, exc)
