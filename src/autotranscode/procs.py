"""Processes and threads on this machine: who is alive, and who goes first for the CPU."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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
