"""Processes and threads on this machine: who is alive, and who goes first for the CPU."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

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
