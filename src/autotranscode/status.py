"""What ``status`` says, as data: one model for the terminal views, ``status --json`` and
(next) the web pages, so they can never tell a file's story in different words.

Built from the journal alone (its files, events and ``story``), so any process can read
it while ``run`` works. A failed version of a path that a later version replaced (a
broken file since fixed) is that path's history, never counted as a failure.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec

from . import filelog, inventory
from .hours import NOTE
from .inventory import Library
from .journal import STAGES, FileRecord, FileState, Journal
from .media.presets import DEFAULT_CATALOG, Catalog
from .stages import OutputAction, OutputStatus, Stage
from .story import OutputRecord
from .text import shown

#: Bumped when a field changes meaning or goes away; new fields may come without a bump.
SCHEMA_VERSION = 1
#: How a file held outside ``--hours`` is told (its last event's detail).
HELD_PREFIX = NOTE.format("")
#: A progress snapshot older than this is not shown (the process that wrote it is gone).
PROGRESS_FRESH_SECONDS = 30.0


class Transition(msgspec.Struct, frozen=True):
    """A step of the file's history: the stage it entered, when, and why."""

    at: str
    stage: Stage
    detail: str | None = None


class Progress(msgspec.Struct, frozen=True):
    """Where an unfinished file is within its stage."""

    stage: Stage
    percent: float | None = None
    speed: float | None = None
    eta_seconds: float | None = None
    worker: str | None = None
    at: str | None = None


class Input(msgspec.Struct, frozen=True):
    size: int
    content_hash: str | None = None
    duration: float | None = None
    format: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None


class Output(msgspec.Struct, frozen=True):
    """``status``: "done" or "failed" once the file finished; "pending" until then. ``path``
    is absolute: where it is in OUT, or where it is going (its final name may yet change
    if that name is taken when it arrives)."""

    preset: str
    status: Literal["done", "failed", "pending"]
    path: str | None = None
    reason: str | None = None
    size: int | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    #: VMAF measured on samples of the output (``--quality``, ``--measure-quality``).
    vmaf: float | None = None
    #: The CRF a quality target chose for this file.
    crf: float | None = None
    #: How it was made: "encoded", or "remuxed" (the source's streams copied, ``note`` says
    #: why); None when not known.
    action: OutputAction | None = None
    note: str | None = None


class Version(msgspec.Struct, frozen=True):
    """An earlier version of the same path: history, not a current failure."""

    id: str
    stage: Stage
    reason: str | None
    at: str


class FileStatus(msgspec.Struct, frozen=True):
    id: str
    path: str
    name: str
    stage: Stage
    #: None while in flight; else the stage it ended in (done, partly done, failed, skipped).
    outcome: Stage | None
    first_seen: str
    updated: str
    elapsed_seconds: float
    input: Input
    outputs: list[Output]
    reason: str | None = None
    warning: str | None = None
    same_as: str | None = None
    job_id: str | None = None
    progress: Progress | None = None
    transitions: list[Transition] = []
    earlier_versions: list[Version] = []
    log: str | None = None
    #: Why an unfinished file waits, when it is told: "waiting for 01:00" (``--hours``).
    note: str | None = None


class Totals(msgspec.Struct, frozen=True):
    """Files as ``Journal.current`` counts them. ``bytes_in``/``bytes_out`` over the done and
    partly done files whose output sizes are known; ``bytes_saved`` = in - out (negative
    when outputs grew)."""

    files: int
    by_stage: dict[str, int]
    in_flight: int
    queued: int
    bytes_in: int
    bytes_out: int
    bytes_saved: int
    #: The done files by codec and resolution, before and after (``inventory``).
    library: Library | None = None


class Report(msgspec.Struct, frozen=True):
    schema_version: int
    generated_at: str
    state_dir: str
    totals: Totals
    #: Unfinished files, oldest first (all of them).
    in_flight: list[FileStatus]
    #: The latest finished files, newest first (``--limit``).
    recent: list[FileStatus]


class FileReport(msgspec.Struct, frozen=True):
    """``status FILE --json``: the files asked about, each with its whole story."""

    schema_version: int
    files: list[FileStatus]


def report(
    journal: Journal,
    state_dir: Path,
    limit: int = 10,
    *,
    stages: Iterable[Stage] = (),
    catalog: Catalog = DEFAULT_CATALOG,
) -> Report:
    """Everything ``status`` shows. ``stages``: only finished files in these stages;
    ``catalog``: the presets the outputs were made by (for the library's codecs)."""
    with journal.db.snapshot():
        return _report(journal, state_dir, limit, stages, catalog)


def _report(
    journal: Journal, state_dir: Path, limit: int, stages: Iterable[Stage], catalog: Catalog
) -> Report:
    current = _Current(journal, state_dir)
    wanted = set(stages)
    finished_states = (FileState.CLEANED, FileState.FAILED, FileState.SKIPPED)
    if wanted:
        states = tuple(s for s in finished_states if _could_be(s, wanted))
        recent: list[FileStatus] = []
        for r in journal.current(states=states):  # statuses built for the ones listed only
            if len(recent) == limit:
                break
            if _stage(r, current.outputs(r)) in wanted:
                recent.append(current.status(r))
    else:
        recent = current.files(finished_states, limit)
    unfinished = sorted(journal.unfinished(), key=lambda r: r.created_at)
    return Report(
        schema_version=SCHEMA_VERSION,
        generated_at=_iso(time.time()),
        state_dir=_text(str(state_dir.absolute())),
        totals=totals(journal, catalog),
        in_flight=[current.status(r, history=False) for r in unfinished],
        recent=recent,
    )


def _could_be(state: FileState, wanted: set[Stage]) -> bool:
    if state is FileState.CLEANED:
        return bool(wanted & {Stage.DONE, Stage.PARTLY_DONE})
    return STAGES[state] in wanted


def totals(journal: Journal, catalog: Catalog = DEFAULT_CATALOG) -> Totals:
    counts = journal.counts()
    by_stage: dict[str, int] = {}
    in_flight = queued = 0
    for state, n in counts.items():
        stage = STAGES[state]
        if not stage.finished:
            if stage.waiting:
                queued += n
            else:
                in_flight += n
    delivered = journal.story.delivered()
    partly = delivered.partly_done
    bytes_in, bytes_out = delivered.bytes_in, delivered.bytes_out
    for size, targets in delivered.unrecorded:
        out = _bytes_in_out(json.loads(targets).values())
        if out is not None:
            bytes_in += size
            bytes_out += out
    for state, n in counts.items():
        stage = STAGES[state]
        if state is FileState.CLEANED:
            if n - partly:
                by_stage[Stage.DONE] = n - partly
            if partly:
                by_stage[Stage.PARTLY_DONE] = partly
        else:
            by_stage[stage] = by_stage.get(stage, 0) + n
    ordered = {s.value: by_stage[s] for s in Stage if s in by_stage}
    return Totals(
        files=sum(counts.values()),
        by_stage=ordered,
        in_flight=in_flight,
        queued=queued,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        bytes_saved=bytes_in - bytes_out,
        library=inventory.library(journal.db, catalog),
    )


def _bytes_in_out(targets: Iterable[str]) -> int | None:
    """The outputs' bytes as found in OUT (a journal from before outputs were recorded);
    None when one is missing."""
    total = 0
    for target in targets:
        size = _size_of(Path(target))
        if size is None:
            return None
        total += size
    return total


def _size_of(path: Path) -> int | None:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size if path.is_absolute() else None
    except OSError:
        return None


def find(journal: Journal, query: str) -> list[FileRecord]:
    """The files ``status FILE`` may mean: a path (as given, or resolved), a file name,
    or the start of a file id; latest versions only."""
    candidates = {str(Path(query)), str(Path(query).absolute()), os.path.realpath(query)}
    found: dict[str, FileRecord] = {}
    for c in candidates:
        versions = journal.versions_of(Path(c))
        if versions:
            found[versions[-1].id] = versions[-1]
    if found:
        return list(found.values())
    named = [r for r in journal.current() if r.name == query or r.id.startswith(query)]
    return named


def file_status(journal: Journal, state_dir: Path, record: FileRecord) -> FileStatus:
    """One file's whole story: transitions, facts, outputs, earlier versions, its log."""
    return _Current(journal, state_dir).status(record, history=True)


class _Current:
    """Builds ``FileStatus`` values, reading what they need once per report."""

    def __init__(self, journal: Journal, state_dir: Path) -> None:
        self.journal = journal
        self.state_dir = state_dir
        self.now = time.time()

    def files(self, states: tuple[FileState, ...], limit: int = -1) -> list[FileStatus]:
        return [self.status(r) for r in self.journal.current(limit, states)]

    def outputs(self, r: FileRecord) -> list[Output]:
        return self._outputs(r, self.journal.story.outputs_of(r.id))

    def status(self, r: FileRecord, history: bool = False) -> FileStatus:
        outputs = self.outputs(r)
        stage = _stage(r, outputs)
        events = self.journal.events_of(r.id)
        ended = r.updated_at if stage.finished else self.now
        log = filelog.log_path(self.state_dir, r.id)
        return FileStatus(
            id=r.id,
            path=_text(str(r.path)),
            name=_text(r.name),
            stage=stage,
            outcome=stage if stage.finished else None,
            first_seen=_iso(r.created_at or (events[0][0] if events else r.updated_at)),
            updated=_iso(r.updated_at),
            elapsed_seconds=round(max(ended - (r.created_at or r.updated_at), 0.0), 3),
            input=_input(r),
            outputs=outputs,
            reason=r.reason,
            warning=r.warning,
            same_as=_text(r.same_as) if r.same_as else None,
            job_id=r.job_id,
            progress=None if stage.finished else self._progress(r, stage),
            transitions=[
                Transition(at=_iso(at), stage=STAGES[state], detail=detail)
                for at, state, detail in events
            ],
            earlier_versions=self._earlier(r) if history else [],
            log=_text(str(log)) if log.is_file() else None,
            note=_note(events) if not stage.finished else None,
        )

    def _outputs(self, r: FileRecord, recorded: list[OutputRecord]) -> list[Output]:
        by_preset = {o.preset: o for o in recorded}
        targets = list(r.outputs.values())
        result = []
        for i, preset in enumerate(r.presets):
            o = by_preset.get(preset)
            made = o is not None and o.status is OutputStatus.DONE
            if o is not None and not (made and o.path is None and not r.state.finished):
                # (an output made but not yet in OUT is still pending, below)
                result.append(
                    Output(
                        preset=preset,
                        status="done" if made else "failed",
                        path=_text(o.path) if o.path else None,
                        reason=o.reason,
                        size=o.size,
                        duration=o.duration,
                        width=o.width,
                        height=o.height,
                        vmaf=o.vmaf,
                        crf=o.crf,
                        action=o.action,
                        note=o.note,
                    )
                )
                continue
            target = Path(targets[i]) if i < len(targets) else None
            if target is not None and not target.is_absolute():
                target = r.out_dir / target.name
            if r.state is FileState.CLEANED:
                status: Literal["done", "failed", "pending"] = "done"
            elif r.state in (FileState.FAILED, FileState.SKIPPED):
                status = "failed"
            else:
                status = "pending"
            size = _size_of(target) if target is not None and status == "done" else None
            result.append(
                Output(
                    preset=preset,
                    status=status,
                    path=_text(str(target)) if target is not None else None,
                    reason=r.reason if status == "failed" else None,
                    size=size,
                )
            )
        return result

    def _progress(self, r: FileRecord, stage: Stage) -> Progress:
        snap = self.journal.story.progress_of(r.id)
        if (
            snap is None
            or snap["stage"] != stage
            or self.now - _num(snap["at"]) > PROGRESS_FRESH_SECONDS
        ):
            return Progress(stage=stage)
        fraction = snap["fraction"]
        return Progress(
            stage=stage,
            percent=round(_num(fraction) * 100, 1) if fraction is not None else None,
            speed=_opt(snap["speed"]),
            eta_seconds=_opt(snap["eta"]),
            worker=_text(str(snap["worker"])) if snap["worker"] else None,
            at=_iso(_num(snap["at"])),
        )

    def _earlier(self, r: FileRecord) -> list[Version]:
        return [
            Version(id=v.id, stage=STAGES[v.state], reason=v.reason, at=_iso(v.updated_at))
            for v in self.journal.versions_of(r.path)
            if v.id != r.id
        ]


def _note(events: list[tuple[float, FileState, str | None]]) -> str | None:
    """The hold a file is in, if its last step is one (``hours.Gate``)."""
    detail = events[-1][2] if events else None
    return detail if detail and detail.startswith(HELD_PREFIX) else None


def _stage(r: FileRecord, outputs: list[Output]) -> Stage:
    if r.state is FileState.CLEANED and any(o.status == "failed" for o in outputs):
        return Stage.PARTLY_DONE
    return STAGES[r.state]


def _input(r: FileRecord) -> Input:
    m = r.media or {}
    return Input(
        size=r.size,
        content_hash=r.content_hash,
        duration=_opt(m.get("duration")),
        format=_str(m.get("format")),
        video_codec=_str(m.get("video_codec")),
        audio_codec=_str(m.get("audio_codec")),
        width=_int(m.get("width")),
        height=_int(m.get("height")),
    )


def _iso(at: float) -> str:
    """UTC, to the millisecond, as RFC 3339: what every JSON reader parses."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: str) -> str:
    """A path as JSON can carry it: bytes that are not UTF-8 as \\xNN (control characters
    stay: JSON escapes them itself)."""
    return os.fsencode(value).decode("utf-8", "backslashreplace")


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _opt(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def log_tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a file's log (read from its last 64 KiB only), each
    through ``text.shown``: a log holds whatever ffmpeg and file names put in it."""
    try:
        with path.open("rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - 64 * 1024, 0))
            data = f.read()
    except OSError:
        return []
    return [shown(line) for line in data.decode("utf-8", "backslashreplace").splitlines()[-lines:]]


def to_json(value: msgspec.Struct) -> bytes:
    return msgspec.json.format(msgspec.json.encode(value), indent=2)


def json_schema() -> dict[str, object]:
    """The JSON Schema of ``status --json`` (the README shows it; the web API serves it)."""
    return msgspec.json.schema(Report)
