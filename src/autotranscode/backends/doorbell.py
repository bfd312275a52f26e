"""How a local backend's waiting receivers learn that there is work, without polling.

Within one backend, a send rings its queue's ``Bell`` (``Bells`` holds one per queue);
across the processes and backends sharing a state dir, it rings their ``Doorbells``
(FIFOs in ``<state>/doorbells``), which ring all the bells of the backend they belong to.
Every ``LocalBackend`` owns its bells and its doorbell: two backends on different state
dirs never wake each other, and two on one state dir in one process wake each other
through their doorbells, as two processes do.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class Bell:
    """Where one queue's receivers wait: a send to that queue wakes them and no others (one
    condition for all queues woke every worker for each notification)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        #: Bumped by every ring, so a receiver can tell it missed none while it looked.
        self.rings = 0

    def ring(self) -> None:
        with self.cond:
            self.rings += 1
            self.cond.notify_all()


class Bells:
    """One backend's bells, one per queue name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bells: dict[str, Bell] = {}

    def of(self, queue: str) -> Bell:
        with self._lock:
            return self._bells.setdefault(queue, Bell())

    def ring_all(self) -> None:
        """Wake every receiver of this backend, whatever its queue (another process sent
        something, and its doorbell does not say to which queue)."""
        with self._lock:
            bells = list(self._bells.values())
        for bell in bells:
            bell.ring()


class Doorbells:
    """Wakes receivers in other processes sharing the state dir (``run`` and ``worker``).

    Each backend that receives keeps a FIFO under ``<state>/doorbells``, named after its
    process, and a thread blocked reading it that calls ``on_ring``; a sender writes a
    byte into every other FIFO after its commit. Receivers so sleep until there is work
    instead of polling SQLite twenty times a second (~2 % of a core for an idle ``run``).
    """

    def __init__(self, folder: Path, on_ring: Callable[[], None]) -> None:
        self.folder = folder
        self._on_ring = on_ring
        self._own = f"{os.getpid()}-"
        self._lock = threading.Lock()
        self._fd = -1
        self._path: Path | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._usable = True

    def listen(self) -> bool:
        """Make sure ours exists (made at the first receive); False where FIFOs cannot be made."""
        with self._lock:
            if self._thread is None and self._usable and not self._closing:
                hidden = self.folder / f".{self._own}{uuid.uuid4().hex}"
                path = hidden.with_name(hidden.name[1:])
                fd = -1
                try:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    os.mkfifo(hidden)
                    fd = os.open(hidden, os.O_RDWR)  # RDWR: opens at once, never reads EOF
                    os.rename(hidden, path)  # visible to senders only once it is read
                except (OSError, AttributeError) as exc:  # AttributeError: no os.mkfifo
                    log.debug("no doorbell in %s (%s); receivers poll instead", self.folder, exc)
                    if fd >= 0:
                        os.close(fd)
                    with contextlib.suppress(OSError):
                        hidden.unlink()
                    self._usable = False
                    return False
                self._fd, self._path = fd, path
                self._thread = threading.Thread(
                    target=self._answer, name="autotranscode-doorbell", daemon=True
                )
                self._thread.start()
            return self._usable

    def _answer(self) -> None:
        while True:
            try:
                os.read(self._fd, 512)
            except OSError:
                return
            if self._closing:
                return
            self._on_ring()

    def ring(self) -> None:
        """Wake the receivers of every other backend on this state dir, in this process or
        another (the sender has woken its own); a FIFO nobody reads is a dead process's."""
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return
        own = self._path.name if self._path is not None else None
        for entry in entries:
            if entry.name.startswith(".") or entry.name == own:
                continue
            try:
                fd = os.open(entry.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                continue
            try:
                os.write(fd, b"\0")
            except OSError:
                pass  # full (EAGAIN): it has been rung already
            finally:
                os.close(fd)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if self._thread is None:
                return
            with contextlib.suppress(OSError):
                os.write(self._fd, b"\0")
            self._thread.join()
            os.close(self._fd)
            if self._path is not None:
                with contextlib.suppress(OSError):
                    self._path.unlink()
            self._thread = None
