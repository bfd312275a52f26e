"""The scheduler's bookkeeping of files in flight, with steps run inline (no threads, no
timing): what ``wait`` sees, and who waits behind a file of the same content."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from autotranscode.scheduler import Scheduler


class Inline(Executor):
    """Runs each submitted call at once, on the caller's thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _scheduler() -> tuple[Scheduler, list[tuple[str, float]], threading.Event]:
    ran: list[tuple[str, float]] = []
    stop = threading.Event()
    return Scheduler(lambda fid, delay: ran.append((fid, delay)), Inline(), stop), ran, stop


def test_a_scheduled_file_runs_and_is_in_flight_until_finished() -> None:
    scheduler, ran, _ = _scheduler()
    scheduler.schedule("a")
    assert ran == [("a", 0.0)]
    assert scheduler.active("a") and scheduler.in_flight() == {"a"}
    assert not scheduler.wait(["a"], timeout=0)
    assert scheduler.finished("a") == set()
    assert scheduler.wait(["a"], timeout=0)
    assert not scheduler.active("a")


def test_files_of_the_same_content_wait_behind_the_first_one_in_flight() -> None:
    scheduler, _, _ = _scheduler()
    for fid in ("a", "b", "c"):
        scheduler.schedule(fid)
    assert scheduler.park("b", ["b", "a"]) == "a"  # never behind itself
    assert scheduler.park("c", ["b", "a"]) == "a"  # never behind one that waits itself
    assert scheduler.park("d", ["x"]) is None  # nothing in flight to wait for
    assert scheduler.finished("a") == {"b", "c"}
    assert scheduler.finished("a") == set()  # handed back once


def test_wake_ends_every_wait_and_a_stopped_scheduler_runs_nothing() -> None:
    scheduler, ran, stop = _scheduler()
    scheduler.schedule("a")
    scheduler.wake()
    assert not scheduler.wait(["a"])  # returns at once: woken, "a" not finished
    stop.set()
    scheduler.stop()
    scheduler.schedule("b")
    scheduler.schedule("c", delay=5.0)
    assert ran == [("a", 0.0)]
    assert scheduler.in_flight() == {"a", "b", "c"}  # resumed on the next start
