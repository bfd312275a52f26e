"""Processes and threads on this machine: who is alive, and who goes first for the CPU."""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import logging
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Under the state dir: each process that runs workers keeps its crash record here.
CRASHES_FOLDER = "crashes"
#: Crash records of dead processes that no queue claimed (they held no job) go after this.
STALE_CRASH_RECORD_SECONDS = 3600.0
#: Niceness of the client's threads (transfers, bookkeeping); ffmpeg keeps its own.
BACKGROUND_NICENESS = 10


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (a recycled id reads as alive: the safe side)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def yield_cpu_to_ffmpeg() -> None:
    """Lower this thread's CPU priority (and that of threads it starts later), so ffmpeg
    (run by worker threads, left as they are) comes first and bookkeeping fills the time
    transcoding leaves idle.

    Probing and journaling a burst of new files used to slow the transcodes running beside
    them. Linux sets niceness per thread; elsewhere it would be the whole process: skipped.
    """
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        if os.getpriority(os.PRIO_PROCESS, tid) < BACKGROUND_NICENESS:
            os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICENESS)


@contextlib.contextmanager
def crash_record(state_dir: Path) -> Iterator[None]:
    """``<state_dir>/crashes/<pid>.log``: faulthandler's report if this process crashes.

    A kill -9 (a second Ctrl+C, a reboot, ``kill``) leaves it empty and is no fault of the
    jobs this process held: the local queues hand those back without counting an attempt.
    A segfault or abort writes the report first; its jobs then count the attempt, with a
    reason naming the crash, so a job that kills its worker ends in the dead-letter queue.
    A clean exit removes the record.
    """
    folder = state_dir / CRASHES_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_records(folder)
        record = (folder / f"{os.getpid()}.log").open("w")
    except OSError:
        yield  # a state dir we cannot write fails elsewhere, with its own message
        return
    faulthandler.enable(record, all_threads=True)
    try:
        yield
    finally:
        faulthandler.disable()
        record.close()
        with contextlib.suppress(OSError):
            os.unlink(record.name)


def _remove_stale_records(folder: Path) -> None:
    """Empty records of dead processes (killed, nothing to say), and old unclaimed ones."""
    now = time.time()
    for entry in folder.glob("*.log"):
        pid = entry.stem
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            st = entry.stat()
            if st.st_size == 0 or now - st.st_mtime > STALE_CRASH_RECORD_SECONDS:
                entry.unlink()


#: ``ioprio_set`` and ``ioprio_get`` by machine (Linux): x86-64, arm64 and riscv64 (the
#: generic table), 32-bit x86 and ARM.
_IOPRIO_SYSCALLS = {
    "x86_64": (251, 252),
    "aarch64": (30, 31),
    "arm64": (30, 31),
    "riscv64": (30, 31),
    "i686": (289, 290),
    "armv7l": (314, 315),
}
_IOPRIO_CLASSES = {"best-effort": 2, "idle": 3}
_IOPRIO_CLASS_SHIFT = 13
_IOPRIO_WHO_PROCESS = 1


@dataclass(frozen=True)
class IoPriority:
    """An I/O scheduling class (``best-effort`` with a level 0-7, 7 the lowest; or ``idle``:
    disk time only when nobody else wants it), as ``ionice -c`` takes it. Not realtime: it
    needs privileges and would put ffmpeg before everything else."""

    klass: int
    level: int = 0

    @classmethod
    def parse(cls, text: str) -> IoPriority:
        """``idle``, ``best-effort``, ``best-effort:7`` (or the numbers: ``3``, ``2:7``)."""
        name, _, level = text.strip().lower().partition(":")
        klass = _IOPRIO_CLASSES.get(name) or (int(name) if name in ("2", "3") else None)
        if klass is None:
            raise ValueError(
                f"{text!r}: give idle or best-effort[:LEVEL] (LEVEL 0-7, 7 the lowest)"
            )
        if klass == _IOPRIO_CLASSES["idle"]:
            if level:
                raise ValueError(f"{text!r}: the idle class has no level")
            return cls(klass)
        if level and not (level.isdigit() and int(level) <= 7):
            raise ValueError(f"{text!r}: the level is a number from 0 to 7 (7 the lowest)")
        return cls(klass, int(level or 4))

    @property
    def value(self) -> int:
        return self.klass << _IOPRIO_CLASS_SHIFT | self.level


def lower_priority(nice: int | None, io: IoPriority | None) -> None:
    """Give this thread niceness ``nice`` and I/O class ``io``, and so every process it
    starts from now on (ffmpeg), from its first instruction.

    Linux keeps both per thread and a child takes its parent thread's at birth: so nothing
    runs in the child between fork and exec (a preexec_fn is not safe beside threads), no
    ffmpeg thread escapes (setting a running ffmpeg would race with the threads it starts),
    and no ``nice``/``ionice`` binary is needed. Meant for threads that exist to run
    ffmpeg (a worker's job threads), as a thread initializer: it logs, never raises.
    """
    if not sys.platform.startswith("linux"):
        if nice is not None or io is not None:
            log.warning("--nice and --ionice work on Linux only; ignored")
        return
    tid = threading.get_native_id()
    if nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:  # lower than it is: only a privileged process may
            log.warning(
                "cannot set niceness %d (%s); ffmpeg keeps %d",
                nice,
                exc.strerror,
                os.getpriority(os.PRIO_PROCESS, tid),
            )
    if io is not None:
        calls = _ioprio_calls()
        if calls is None:
            log.warning(
                "--ionice is not supported on this machine (%s); ignored", platform.machine()
            )
        elif calls[0](_IOPRIO_WHO_PROCESS, tid, io.value) != 0:
            log.warning("cannot set the I/O class (%s); ignored", os.strerror(_errno()))


def io_priority(pid: int) -> IoPriority | None:
    """The I/O class of a process (or thread); None where it cannot be read."""
    calls = _ioprio_calls()
    if calls is None:
        return None
    value = calls[1](_IOPRIO_WHO_PROCESS, pid)
    if value < 0:
        return None
    return IoPriority(value >> _IOPRIO_CLASS_SHIFT, value & ((1 << _IOPRIO_CLASS_SHIFT) - 1))


def niceness(pid: int) -> int:
    """A process's (or thread's) niceness, as /proc tells it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[16])  # field 19 of stat, counted after the command name


@functools.cache
def _ioprio_calls() -> tuple[Callable[..., int], Callable[..., int]] | None:
    numbers = _IOPRIO_SYSCALLS.get(platform.machine())
    if numbers is None or not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    set_number, get_number = numbers
    return (
        functools.partial(syscall, set_number),
        functools.partial(syscall, get_number),
    )


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()
