"""Progress hooks (do-nothing base, like s3transfer's subscribers) and the two displays.

The watcher and the pipeline report every sighting, state change and progress tick to
a Subscriber; the CLI picks a live display on a terminal (``RichReporter``) and plain
log lines otherwise (``LogReporter``). Both speak of a file's *stage*, the words a
person needs ("uploading", "waiting for a worker"), not of journal states, and both
show names and reasons through ``text.shown`` (and, for rich, ``rich.markup.escape``):
a file name must never colour, move or click anything on the user's terminal.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AutotranscodeError
from .journal import STAGES, FileState, Journal
from .stages import Stage
from .text import shown

if TYPE_CHECKING:  # rich is imported only when a live display is shown: ~20 ms off every start
    from rich.console import Console, RenderableType
    from rich.text import Text

log = logging.getLogger(__name__)

#: How often the live display redraws: its clocks tick and a waiting file's bar moves.
REFRESH_PER_SECOND = 4
#: Finished paths remembered against late hooks (``Reporter._ended``).
ENDED_KEPT = 1024
#: Cells of a file's bar in the live display.
BAR_WIDTH = 24
#: Cells a file name may take in the live display before it is cut with "…".
NAME_WIDTH = 40


class Subscriber:
    """Override what you need; every hook accepts and ignores extra keywords."""

    def on_seen(self, *, path: Path, **kwargs: Any) -> None:
        """The watcher found ``path``: it is taken once it holds still (still "copying in")."""

    def on_settled(self, *, path: Path, **kwargs: Any) -> None:
        """The watcher is done with ``path``: handed to the pipeline (whose hooks came
        first), found done before, or gone."""

    def on_state(
        self, *, path: Path, state: FileState, detail: str | None = None, **kwargs: Any
    ) -> None:
        """``path`` reached ``state``. ``detail``: the outputs' names (CLEANED), the reason
        (FAILED). The pipeline also passes ``size`` (input bytes) and ``outputs`` (their
        paths in OUT once placed); for a file delivered with outputs that could not be made,
        ``stage`` (``Stage.PARTLY_DONE``) and ``failed_outputs``, each (preset, reason)."""

    def on_progress(self, *, path: Path, stage: str, fraction: float, **kwargs: Any) -> None:
        """``fraction`` (0..1) of ``stage`` is done; transcoding adds ``speed`` and ``eta``."""


class Subscribers(Subscriber):
    """Several subscribers as one: each hook goes to each, in order."""

    def __init__(self, *subscribers: Subscriber | None) -> None:
        self.subscribers = [s for s in subscribers if s is not None]

    def on_seen(self, **kwargs: Any) -> None:
        for s in self.subscribers:
            s.on_seen(**kwargs)

    def on_settled(self, **kwargs: Any) -> None:
        for s in self.subscribers:
            s.on_settled(**kwargs)

    def on_state(self, **kwargs: Any) -> None:
        for s in self.subscribers:
            s.on_state(**kwargs)

    def on_progress(self, **kwargs: Any) -> None:
        for s in self.subscribers:
            s.on_progress(**kwargs)


class JournalProgress(Subscriber):
    """Writes where each file is within its stage into the journal (``story``), so that
    ``status`` in another process shows percent, speed and ETA. At most one write per file
    per ``interval`` (and at every change of stage): a snapshot, not a log."""

    def __init__(self, journal: Journal, interval: float = 1.0) -> None:
        self.journal = journal
        self.interval = interval
        self._last: dict[Path, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def on_progress(self, *, path: Path, stage: str, fraction: float, **kwargs: Any) -> None:
        try:
            now_at = Stage(stage)
        except ValueError:
            return
        now = time.monotonic()
        with self._lock:
            last = self._last.get(path)
            if last is not None and last[0] == stage and now - last[1] < self.interval:
                return
            self._last[path] = (stage, now)
        versions = self.journal.versions_of(path)
        if not versions:
            return
        worker = kwargs.get("worker")
        try:
            self.journal.story.note_progress(
                versions[-1].id,
                now_at,
                min(max(fraction, 0.0), 1.0),
                _number(kwargs.get("speed")),
                _number(kwargs.get("eta")),
                worker if isinstance(worker, str) else None,
            )
        except AutotranscodeError as exc:  # a snapshot lost is harmless; say why once in a while
            log.debug("progress of %s not recorded: %s", shown(path.name), exc)

    def on_state(self, *, path: Path, state: FileState, **kwargs: Any) -> None:
        if state.finished:
            with self._lock:
                self._last.pop(path, None)


class ByteProgress:
    """Turns a transfer's byte counts (s3transfer's callbacks) into fraction-done hooks."""

    def __init__(self, hooks: Subscriber, path: Path, stage: str, total: int) -> None:
        self.hooks, self.path, self.stage, self.total = hooks, path, stage, max(total, 1)
        self.done = 0

    def __call__(self, n: int) -> None:
        self.done += n
        self.hooks.on_progress(path=self.path, stage=self.stage, fraction=self.done / self.total)


@dataclass
class _File:
    """One file as the displays know it; ``name`` and ``detail`` are already ``shown``."""

    name: str
    since: float  # the clock at first sight: the file's clock runs from there
    stage: Stage
    fraction: float | None = None
    speed: float | None = None
    eta: float | None = None
    size: int | None = None  # input bytes
    output_size: int | None = None
    detail: str = ""
    ended: float | None = None  # done, failed or interrupted: the clock stops
    interrupted: bool = False
    #: A partly done file's outputs that could not be made: (preset, reason), ``shown``.
    failed_outputs: tuple[tuple[str, str], ...] = ()
    #: The job it is (or was last) transcoded by, for log lines.
    job_id: str | None = None
    #: Why a file waits, when it is told ("waiting for 01:00": outside ``--hours``).
    note: str = ""

    def fields(self) -> dict[str, str]:
        """What its log lines carry as fields of their own (``--log-format json``)."""
        told = {"file": self.name, "stage": self.stage.value}
        return told | ({"job_id": self.job_id} if self.job_id else {})

    def elapsed(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.since

    def saved(self) -> int:
        """Input bytes minus output bytes, for a done file whose sizes are known."""
        if self.stage is Stage.FAILED or self.size is None or self.output_size is None:
            return 0
        return self.size - self.output_size


class Reporter(Subscriber):
    """What both displays keep: every unfinished file by path, and the running totals.

    Hooks come from the watcher's, the listener's and the transfer threads; the state is
    changed under one lock, and what a display does about a change (a log line, a
    printed summary) happens after it is released: printing takes rich's own locks,
    which its refresh thread holds while it asks us for the view.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._files: dict[Path, _File] = {}
        #: Paths whose latest version finished: hooks from other threads can come late (a
        #: step's "waiting for a worker" after the listener's "done") and must not bring
        #: the file back; a new version (seen again, queued again) starts over.
        #: Kept in order, the latest ENDED_KEPT: late hooks come seconds late, not files later.
        self._ended: dict[Path, None] = {}
        self._closed = False
        self.done = 0
        #: Delivered with some outputs that could not be made.
        self.partly = 0
        self.failed = 0
        #: Input bytes minus output bytes over the done files (negative when outputs grew).
        self.saved = 0

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        """The display ends (a stop, or the files finished): what is unfinished is marked
        interrupted, its clock stopped, and later hooks (transfers winding down) ignored."""
        with self._lock:
            self._closed = True
            now = self._clock()
            cut = list(self._files.values())
            for f in cut:
                f.interrupted, f.ended = True, now
        self._interrupted(cut)

    # -- hooks -----------------------------------------------------------------------------------

    def on_seen(self, *, path: Path, **kwargs: Any) -> None:
        with self._lock:
            if self._closed or path in self._files:
                return
            self._ended.pop(path, None)
            f = self._files[path] = _File(shown(path.name), self._clock(), Stage.COPYING_IN)
        self._changed(f)

    def on_settled(self, *, path: Path, **kwargs: Any) -> None:
        with self._lock:
            f = self._files.get(path)
            if f is not None and f.stage is Stage.COPYING_IN:
                del self._files[path]  # not taken (done before, or gone): nothing to show

    def on_state(
        self, *, path: Path, state: FileState, detail: str | None = None, **kwargs: Any
    ) -> None:
        told = kwargs.get("stage")
        stage = told if isinstance(told, Stage) else STAGES[state]
        if stage is Stage.SKIPPED:  # not taken: like a file the watcher did not hand on
            with self._lock:
                self._files.pop(path, None)
            return
        size = kwargs.get("size")
        done = stage in (Stage.DONE, Stage.PARTLY_DONE)
        outputs = _total_size(kwargs.get("outputs") or ()) if done else None
        failed_outputs = tuple(
            (shown(str(preset)), shown(str(reason)))
            for preset, reason in kwargs.get("failed_outputs") or ()
        )
        with self._lock:
            if self._closed:
                return
            if stage.waiting:
                self._ended.pop(path, None)
            elif path in self._ended and path not in self._files:
                return  # late word about a version that finished
            f = self._file(path)
            if isinstance(size, int) and size > 0:
                f.size = size
            job_id = kwargs.get("job_id")
            if isinstance(job_id, str):
                f.job_id = shown(job_id)
            note = shown(detail) if detail and stage is Stage.QUEUED else ""
            moved = f.stage is not stage or f.note != note
            f.stage, f.note = stage, note
            if moved:
                f.fraction = 0.0 if stage.measured else None
                f.speed = f.eta = None
            if stage.finished:
                del self._files[path]
                self._ended[path] = None
                if len(self._ended) > ENDED_KEPT:
                    del self._ended[next(iter(self._ended))]
                f.ended, f.detail, f.output_size = self._clock(), shown(detail or ""), outputs
                f.failed_outputs = failed_outputs
                if stage is Stage.FAILED:
                    self.failed += 1
                elif stage is Stage.PARTLY_DONE:
                    self.partly += 1
                    self.saved += f.saved()
                else:
                    self.done += 1
                    self.saved += f.saved()
        if moved:
            self._changed(f)

    def on_progress(self, *, path: Path, stage: str, fraction: float, **kwargs: Any) -> None:
        try:
            now_at = Stage(stage)
        except ValueError:
            return
        with self._lock:
            if self._closed or (path in self._ended and path not in self._files):
                return
            f = self._file(path)
            moved = f.stage is not now_at
            f.stage, f.fraction = now_at, min(max(fraction, 0.0), 1.0)
            f.speed, f.eta = _number(kwargs.get("speed")), _number(kwargs.get("eta"))
        if moved:
            self._changed(f)

    def _file(self, path: Path) -> _File:
        """The file's entry, made at first sight (a resumed file is first seen mid-way); its
        stage is then the earliest, so that whatever comes is a change."""
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = _File(shown(path.name), self._clock(), Stage.COPYING_IN)
        return f

    # -- what a display does ---------------------------------------------------------------------

    def _changed(self, f: _File) -> None:
        """``f`` entered a new stage (``f.stage``); finished ones are no longer tracked."""

    def _interrupted(self, files: list[_File]) -> None:
        """The display ended with ``files`` in flight."""

    def totals(self) -> str:
        """The totals line's text, without markup."""
        with self._lock:
            in_flight = sum(1 for f in self._files.values() if not f.stage.waiting)
            queued = len(self._files) - in_flight
            done, partly, failed, saved = self.done, self.partly, self.failed, self.saved
        partly_text = f" · partly done {partly}" if partly else ""
        return (
            f"done {done}{partly_text} · failed {failed} · in flight {in_flight}"
            f" · queued {queued} · saved {size_text(saved)}"
        )


class LogReporter(Reporter):
    """One log line per stage change of a file (never per percent): for pipes and services."""

    def _changed(self, f: _File) -> None:
        extra = f.fields()
        if f.stage is Stage.COPYING_IN:
            # Every file in the folder is seen at start-up, most of them done before: at
            # INFO a restart would log the whole folder. "queued" says a file was taken.
            log.debug("%s: %s", f.name, f.stage, extra=extra)
        elif f.stage is Stage.FAILED:
            took = clock_text(f.elapsed(0))
            log.error("%s: failed: %s (after %s)", f.name, f.detail, took, extra=extra)
        elif f.stage is Stage.DONE:
            took = clock_text(f.elapsed(0))
            sizes = _sizes(f, "->")
            log.info("%s: done -> %s (%s, in %s)", f.name, f.detail, sizes, took, extra=extra)
        elif f.stage is Stage.PARTLY_DONE:
            took = clock_text(f.elapsed(0))
            log.warning(
                "%s: partly done -> %s; %s (%s, in %s)",
                f.name,
                f.detail,
                _not_made(f),
                _sizes(f, "->"),
                took,
                extra=extra,
            )
        else:
            told = f"{f.stage} ({f.note})" if f.note else f.stage
            log.info("%s: %s", f.name, told, extra=extra)

    def _interrupted(self, files: list[_File]) -> None:
        for f in files:
            log.info("%s: interrupted while %s", f.name, _stage_text(f), extra=f.fields())


class RichReporter(Reporter):
    """A live display: one line per file in flight with its stage, bar and clock, then the
    totals; a finished file becomes one line printed above it, so the live part stays as
    small as what is in flight."""

    def __init__(self, console: Console | None = None, clock: Callable[[], float] = time.monotonic):
        super().__init__(clock)
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(stderr=True)
        self._ascii = not self.console.encoding.lower().startswith("utf")
        self._live = Live(
            console=self.console,
            get_renderable=self.__rich__,
            refresh_per_second=REFRESH_PER_SECOND,
            transient=False,
        )

    def __enter__(self) -> RichReporter:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._live.stop()  # draws the last view: the interrupted lines and the totals stay

    def _changed(self, f: _File) -> None:
        if f.stage.finished:
            self.console.print(self._summary(f))  # above the live part, while it is live

    def __rich__(self) -> RenderableType:
        """The live part: the files in flight (as many as fit) and the totals line."""
        from rich.console import Group
        from rich.table import Column, Table

        now = self._clock()
        with self._lock:
            files = list(self._files.values())
        room = max(self.console.height - 3, 1)
        table = Table.grid(
            Column(no_wrap=True, overflow="ellipsis", max_width=NAME_WIDTH),
            Column(no_wrap=True, width=BAR_WIDTH),
            Column(no_wrap=True, justify="right"),
            Column(no_wrap=True, overflow="ellipsis"),
            padding=(0, 1),
        )
        for f in files[:room]:
            table.add_row(
                _markup(f"[bold]{_safe(f.name)}[/]"),
                _markup(self._bar(f, now)),
                clock_text(f.elapsed(now)),
                _markup(("[yellow]interrupted[/] · " if f.interrupted else "") + _stage_text(f)),
            )
        parts: list[RenderableType] = [table] if files else []
        if len(files) > room:
            parts.append(_markup(f"[dim]… and {len(files) - room} more[/]"))
        parts.append(_markup(f"[bold]{self.totals()}[/]"))
        return Group(*parts)

    def _bar(self, f: _File, now: float) -> str:
        """Filled by the stage's fraction; while waiting, a short piece sweeps along an empty
        track (it moves, it is not done); otherwise an empty track."""
        full, empty = ("#", "-") if self._ascii else ("━", "─")
        if f.stage.measured and f.fraction is not None:
            n = round(f.fraction * BAR_WIDTH)
            return f"[bar.complete]{full * n}[/][bar.back]{empty * (BAR_WIDTH - n)}[/]"
        if f.stage is Stage.WAITING and not f.interrupted:
            piece = 4
            at = int(now * REFRESH_PER_SECOND) % (BAR_WIDTH - piece + 1)
            return (
                f"[bar.back]{empty * at}[/][bar.pulse]{full * piece}[/]"
                f"[bar.back]{empty * (BAR_WIDTH - piece - at)}[/]"
            )
        return f"[bar.back]{empty * BAR_WIDTH}[/]"

    def _summary(self, f: _File) -> Text:
        """A finished file's one line."""
        took = clock_text(f.elapsed(0))
        if f.stage is Stage.DONE:
            return _markup(
                f"[green]✓[/] [bold]{_safe(f.name)}[/] → {_safe(f.detail)} · {_sizes(f)} · {took}"
            )
        if f.stage is Stage.PARTLY_DONE:
            return _markup(
                f"[yellow]◐ [bold]{_safe(f.name)}[/] partly done[/] → {_safe(f.detail)}"
                f" · [yellow]{_safe(_not_made(f))}[/] · {_sizes(f)} · {took}"
            )
        return _markup(f"[red]✗ [bold]{_safe(f.name)}[/] failed: {_safe(f.detail)}[/] · {took}")


def _stage_text(f: _File) -> str:
    """The stage as a person reads it: with its percent, and speed and ETA when transcoding."""
    text = f"{f.stage} ({f.note})" if f.note else str(f.stage)
    if f.stage.measured and f.fraction is not None:
        text += f" {f.fraction * 100:.0f} %"
    if f.stage is Stage.TRANSCODING:
        if f.speed:
            text += f" · {f.speed:.2g}×"
        if f.eta is not None:
            text += f" · ETA {clock_text(f.eta)}"
    return text


def _not_made(f: _File) -> str:
    """A partly done file's outputs that could not be made, each with its reason."""
    return "not made: " + "; ".join(f"{p} ({reason})" for p, reason in f.failed_outputs)


def _sizes(f: _File, arrow: str = "→") -> str:
    """Input and output sizes of a done file."""
    if f.size is None or f.output_size is None:
        return "sizes unknown"
    return f"{size_text(f.size)} {arrow} {size_text(f.output_size)}"


def size_text(n: int) -> str:
    """Bytes in decimal units, as ``ls -h --si`` and rich show them: 1.2 MB; negative too."""
    sign, n = ("-" if n < 0 else ""), abs(n)
    if n < 1000:
        return f"{sign}{n} bytes"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            return f"{sign}{value:.1f} {unit}"
    raise AssertionError("unreachable")


def clock_text(seconds: float) -> str:
    """H:MM:SS, like rich's elapsed column."""
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _total_size(paths: Iterable[str | Path]) -> int | None:
    """Bytes of the outputs in OUT (a folder output: all its files); None if one is missing."""
    total = 0
    try:
        for p in map(Path, paths):
            if p.is_dir():
                total += sum(c.stat().st_size for c in p.rglob("*") if c.is_file())
            else:
                total += os.stat(p).st_size
    except OSError:
        return None
    return total


def _number(value: object) -> float | None:
    """The worker's speed and ETA travel as text; anything unreadable is not shown."""
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _safe(text: str) -> str:
    """Text that is already ``shown``, made literal inside rich markup."""
    from rich.markup import escape

    return escape(text)


def _markup(markup: str) -> Text:
    """Our markup around escaped names; emoji codes (":smile:" in a name) stay as typed."""
    from rich.text import Text

    return Text.from_markup(markup, emoji=False)
