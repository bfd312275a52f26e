"""When transcoding may start: ``--hours 01:00-07:00`` (local time; several windows
comma-separated; a window may cross midnight).

Files are found and recorded at any hour; outside the hours a file is held before its
snapshot is taken and its job sent (queued, "waiting for 01:00"), and the workers given
the hours start no job (one sent inside the hours and not yet started waits on the job
queue for the next window). A job running when the hours end runs to its end.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .stages import FileState

#: A held file looks again at least this often: a clock changed (by hand, or summer time)
#: is caught up with within this long.
RECHECK_SECONDS = 300.0
#: The note a held file carries, in ``status`` and on the dashboard.
NOTE = "waiting for {}"
#: The states a file is held in: not yet taken, or taken and not yet sent (a resume).
HELD = (FileState.DISCOVERED, FileState.UPLOADED)

_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DAY = 24 * 3600


@dataclass(frozen=True)
class Window:
    """From ``start`` to ``end``, in seconds after midnight; ``end`` < ``start``: across
    midnight."""

    start: int
    end: int

    def holds(self, second: int) -> bool:
        if self.start < self.end:
            return self.start <= second < self.end
        return second >= self.start or second < self.end


class Hours:
    """The windows in which transcoding starts (``parse`` makes one from the option)."""

    def __init__(self, windows: tuple[Window, ...]) -> None:
        self.windows = windows

    @classmethod
    def parse(cls, text: str) -> Hours:
        """``01:00-07:00`` or ``22:00-02:00,12:00-13:30`` (seconds allowed: ``01:00:30``);
        ValueError says what is wrong, in a line."""
        windows = []
        for part in text.split(","):
            start, sep, end = part.strip().partition("-")
            if not sep:
                raise ValueError(f"{part.strip()!r} is no window: give START-END, e.g. 01:00-07:00")
            window = Window(_second(start) % _DAY, _second(end))  # an end of 24:00 is 86400
            if window.start == window.end:
                raise ValueError(f"{part.strip()!r} starts when it ends: give a window of time")
            windows.append(window)
        return cls(tuple(windows))

    def open_at(self, now: datetime) -> bool:
        second = _seconds_of(now)
        return any(w.holds(second) for w in self.windows)

    def next_opening(self, now: datetime) -> datetime:
        """When the next window opens (``now`` itself while one is open)."""
        if self.open_at(now):
            return now
        second = _seconds_of(now)
        ahead = min((w.start - second) % _DAY for w in self.windows)
        return now.replace(microsecond=0) + timedelta(seconds=ahead)

    def wait(self, now: datetime) -> float:
        """Seconds until the next window opens (0 while one is open), at most
        ``RECHECK_SECONDS``: a clock changed meanwhile is caught up with."""
        return min((self.next_opening(now) - now).total_seconds(), RECHECK_SECONDS)


def _second(text: str) -> int:
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"{text.strip()!r} is no time of day: give HH:MM, e.g. 01:00")
    h, m, s = int(match[1]), int(match[2]), int(match[3] or 0)
    if h > 24 or m > 59 or s > 59 or (h == 24 and (m or s)):
        raise ValueError(f"{text.strip()!r} is no time of day: from 00:00 to 24:00")
    return h * 3600 + m * 60 + s


def _seconds_of(now: datetime) -> int:
    return now.hour * 3600 + now.minute * 60 + now.second


def shown(at: datetime) -> str:
    """``01:00``, or ``01:00:30`` when the window starts off the minute."""
    return at.strftime("%H:%M:%S" if at.second else "%H:%M")


class Gate:
    """Holds files outside the hours; each held file is noted once ("waiting for 01:00",
    an event in the journal that ``status`` shows) and looked at again when they begin."""

    def __init__(self, hours: Hours | None, clock: Callable[[], datetime] = datetime.now) -> None:
        self.hours = hours
        self.clock = clock
        self._noted: set[str] = set()

    def hold(self, fid: str, state: FileState) -> tuple[float, str | None] | None:
        """None: go on. Held: how long until the file is looked at again, and the note to
        record (None: recorded already)."""
        if self.hours is None or state not in HELD:
            return None
        now = self.clock()
        wait = self.hours.wait(now)
        if not wait:
            self._noted.discard(fid)
            return None
        note = None
        if fid not in self._noted:
            self._noted.add(fid)
            note = NOTE.format(shown(self.hours.next_opening(now)))
        return wait, note
