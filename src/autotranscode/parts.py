"""A chunked file's progress as the client sees it: the sum of its parts' (``engines.parts``).

Each part of a chunked job (its chunks and the rest) reports PROGRESSING with the file's job
id and ``userMetadata`` naming the part (``part=c0007``), how many there are (``parts``) and
its worker; the file's fraction is the mean of its parts' (a part not heard of yet counts
0, a stored part 1), and its worker line (``status``, the dashboard) says how many parts are
done, which run where, and how many wait: "9 parts: 4 done, c0004 on host:12/w0, 4 waiting".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .messages import MAX_CHUNKS

#: Parts named in a worker line at most (the rest are counted).
SHOWN_RUNNING = 3


@dataclass
class _File:
    count: int
    #: Each part heard of: its fraction done and the worker doing it.
    parts: dict[str, tuple[float, str]] = field(default_factory=dict)


class PartsProgress:
    """What the listener has heard of each chunked file's parts, in memory: progress is shown,
    never recorded, so a restart starts it again from the parts' next notices."""

    def __init__(self) -> None:
        self._files: dict[str, _File] = {}

    def heard(
        self, fid: str, part: str, parts: str | None, fraction: float, worker: str | None
    ) -> tuple[float, str]:
        """The file's fraction and its worker line, once ``part`` is at ``fraction``."""
        try:
            count = min(max(int(parts or 1), 1), MAX_CHUNKS + 1)
        except ValueError:
            count = 1
        file = self._files.setdefault(fid, _File(count))
        file.count = max(file.count, count)
        if part == "join":  # every part is done: the join's own progress is the file's
            return fraction, f"{file.count} parts done; joining on {worker or '?'}"
        if len(file.parts) < file.count or part in file.parts:  # bounded by what it said
            file.parts[part[:16]] = (min(max(fraction, 0.0), 1.0), worker or "?")
        done = sum(1 for f, _ in file.parts.values() if f >= 1.0)
        total = sum(f for f, _ in file.parts.values()) / file.count
        running = [f"{p} on {w}" for p, (f, w) in sorted(file.parts.items()) if f < 1.0]
        waiting = file.count - len(file.parts)
        line = f"{file.count} parts: {done} done"
        if running:
            more = len(running) - SHOWN_RUNNING
            line += ", " + ", ".join(running[:SHOWN_RUNNING])
            line += f" and {more} more running" if more > 0 else ""
        if waiting:
            line += f", {waiting} waiting"
        return total, line

    def forget(self, fid: str) -> None:
        self._files.pop(fid, None)
