"""The dashboard's data, apart from HTTP: history pages, presets with their commands,
health, Prometheus metrics, workers, the queue, throughput, retry, cancel and upload.
Everything about a file comes from the ``status`` model, so the pages, the API and
``status --json`` never disagree."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event, Lock

import anyio
import msgspec

from .. import outcomes, status, waiting
from ..backends import Backend
from ..engines.heartbeat import Beat, read_beats
from ..errors import AutotranscodeError
from ..journal import FileState, Journal
from ..media.presets import Catalog
from ..media.probe import MediaInfo, ignored
from ..media.transcoder import command
from ..settings import Settings
from ..sources import reset_failed
from ..stages import FINISHED, STAGES, Stage

#: Files on one page of History.
PAGE_SIZE = 50
#: Free space under which ``/healthz`` says not ready (state dir, OUT, DROP).
MIN_FREE_BYTES = 200 * 1000 * 1000
#: The largest upload accepted unless ``create_app`` is told otherwise.
DEFAULT_UPLOAD_LIMIT = 20 * 1000**3
#: An upload in progress, in DROP: hidden (the watcher never takes it), renamed when whole.
UPLOAD_PREFIX = ".autotranscode-upload-"
#: Workers and queue depth are read again at most this often (a listing of the store and a
#: queue attribute: cheap, but not for every tick of every open page).
SIDE_SECONDS = 5.0
#: Throughput is measured over the files finished this recently.
THROUGHPUT_WINDOW_SECONDS = 3600.0
#: ... and computed again at most this often while nothing finishes.
THROUGHPUT_SECONDS = 30.0


class Side(msgspec.Struct, frozen=True):
    """What the dashboard reads from the backend rather than the journal: the workers alive
    (their heartbeats) and the job queue's depth; None where unknown, ``problem`` says why."""

    workers: list[Beat] | None
    queue_depth: int | None
    problem: str | None = None


class Throughput(msgspec.Struct, frozen=True):
    """Over the files done in the last ``window_seconds`` (at most an hour, from the first of
    them taken): files per hour, and source seconds transcoded per wall-clock second."""

    window_seconds: float
    files: int
    files_per_hour: float
    realtime_factor: float


class WorkersView(msgspec.Struct, frozen=True):
    """``/api/workers``: the workers alive, the job queue's depth (None: unknown, and
    ``problem`` says why) and the throughput."""

    workers: list[Beat] | None
    queue_depth: int | None
    problem: str | None
    throughput: Throughput


class PresetInfo(msgspec.Struct, frozen=True):
    """A preset and the exact ffmpeg command it runs (``presets show``)."""

    id: str
    extension: str
    folder: bool
    description: str
    custom: bool
    command: str


class HistoryPage(msgspec.Struct, frozen=True):
    """One page of History: ``/api/files`` and the History page."""

    schema_version: int
    total: int
    offset: int
    limit: int
    files: list[status.FileStatus]


@dataclass
class Dashboard:
    """What the app serves from: one state dir's journal, and where files come and go."""

    state_dir: Path
    settings: Settings
    journal: Journal
    drop: Path | None = None
    out: Path | None = None
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    #: Where the workers' heartbeats and the job queue are (None: not known to this process).
    backend: Backend | None = None
    #: Why there is no backend, for ``/healthz``.
    backend_problem: str | None = None
    #: Workers in this process (``run``): fewer alive makes ``/healthz`` not ready.
    expected_workers: int = 0
    #: Set when the server stops: live streams end instead of holding the stop up.
    stopping: Event = field(default_factory=Event)
    _lock: Lock = field(default_factory=Lock)
    _totals: tuple[object, status.Totals] | None = None
    _side: tuple[float, Side] | None = None
    _throughput: tuple[float, object, Throughput] | None = None

    def history(
        self,
        text: str = "",
        stage: Stage | None = None,
        offset: int = 0,
        limit: int = PAGE_SIZE,
        finished: bool = False,
    ) -> HistoryPage:
        """A page of files, newest first; ``finished``: only those that ended."""
        states: tuple[FileState, ...] = tuple(FINISHED) if finished else ()
        failed_output: bool | None = None
        if stage is not None:
            states = tuple(s for s, st in STAGES.items() if st is stage)
            if stage in (Stage.DONE, Stage.PARTLY_DONE):
                states = (FileState.CLEANED,)
                failed_output = stage is Stage.PARTLY_DONE
        records, total = self.journal.page(text, states, limit, offset, failed_output)
        files = [status.file_status(self.journal, self.state_dir, r) for r in records]
        return HistoryPage(status.SCHEMA_VERSION, total, offset, limit, files)

    def totals(self) -> status.Totals:
        """``status.totals``, computed again only when the files' counts by state or their
        recorded outputs change.

        It sums over every done file (tens of ms at 10,000 files, for each update of each
        open page), while what a live page mostly sees change is progress, which changes
        neither; a file finishing changes a count, and its outputs the bytes in and out."""
        outputs = tuple(self.journal.db.query("SELECT COUNT(*), MAX(at) FROM outputs")[0])
        counts = (self.journal.counts(), outputs)
        with self._lock:
            if self._totals is not None and self._totals[0] == counts:
                return self._totals[1]
        totals = status.totals(self.journal, self.settings.catalog)
        with self._lock:
            self._totals = (counts, totals)
        return totals

    def in_flight(self) -> list[status.FileStatus]:
        """The unfinished files, oldest first, as ``status`` lists them."""
        unfinished = sorted(self.journal.unfinished(), key=lambda r: r.created_at)
        return [status.file_status(self.journal, self.state_dir, r) for r in unfinished]

    def recent(self, limit: int) -> list[status.FileStatus]:
        return self.history(limit=limit, finished=True).files

    def live(self) -> bytes:
        """What the live stream sends: totals, the files in flight, workers, queue depth
        and throughput, as JSON."""
        side = self.side()
        with self.journal.db.snapshot():
            totals, in_flight = self.totals(), self.in_flight()
        return msgspec.json.encode(
            {
                "totals": totals,
                "in_flight": in_flight,
                "workers": side.workers,
                "queue_depth": side.queue_depth,
                "throughput": self.throughput(),
            }
        )

    def live_version(self) -> tuple[int, Side]:
        """What the live stream compares to know whether to send: the journal's version and
        the workers and queue depth (read every ``SIDE_SECONDS``)."""
        return self.data_version(), self.side()

    def side(self) -> Side:
        """Workers and queue depth, read again once ``SIDE_SECONDS`` have passed."""
        now = time.monotonic()
        with self._lock:
            if self._side is not None and now - self._side[0] < SIDE_SECONDS:
                return self._side[1]
        side = self._read_side()
        with self._lock:
            self._side = (now, side)
        return side

    def _read_side(self) -> Side:
        if self.backend is None:
            return Side(None, None, self.backend_problem or "no backend in this process")
        try:
            beats = read_beats(self.backend.store)
            depth = self.backend.jobs.count()
        except AutotranscodeError as exc:
            return Side(None, None, str(exc))
        return Side(beats, depth)

    def throughput(self) -> Throughput:
        """Files done and source seconds transcoded (not copies of another file's output)
        per hour and per second, since the first of the last hour's done files was seen."""
        now = time.time()
        key = self.journal.counts()
        with self._lock:
            cached = self._throughput
            if cached is not None and cached[1] == key and now - cached[0] < THROUGHPUT_SECONDS:
                return cached[2]
        (n, first, seconds), *_ = self.journal.db.query(
            "SELECT COUNT(*), MIN(created_at), TOTAL(CASE WHEN same_as IS NULL THEN"
            " json_extract(media, '$.duration') END) FROM files"
            " WHERE state = ? AND updated_at >= ?",
            (FileState.CLEANED, now - THROUGHPUT_WINDOW_SECONDS),
        )
        window = min(max(now - float(first or now), 1.0), THROUGHPUT_WINDOW_SECONDS)
        result = Throughput(
            round(window, 1),
            int(n),
            round(int(n) * 3600 / window, 2) if n else 0.0,
            round(float(seconds or 0.0) / window, 3),
        )
        with self._lock:
            self._throughput = (now, key, result)
        return result

    def queue(self) -> waiting.QueueView:
        return waiting.queue(self.journal, self.state_dir, self.backend)

    def cancel(self, fid: str) -> None:
        """``waiting.cancel``: KeyError for an unknown file, ``waiting.Refused`` with why."""
        waiting.cancel(self.journal, self.state_dir, self.backend, fid)

    def to_front(self, fid: str) -> None:
        waiting.to_front(self.journal, self.backend, fid)

    def data_version(self) -> int:
        """Changes whenever another connection (the pipeline's) commits to the journal:
        one cheap statement tells the live stream whether there is anything new to send."""
        return int(self.journal.db.query("PRAGMA data_version")[0][0])

    def file(self, fid: str) -> status.FileStatus | None:
        record = self.journal.get(fid)
        return None if record is None else status.file_status(self.journal, self.state_dir, record)

    def output_file(self, fid: str, preset: str) -> Path | None:
        """The file a done output of ``fid`` is in OUT, to download: only a known output,
        only a regular file, only inside the folder the file's outputs go to."""
        record = self.journal.get(fid)
        f = self.file(fid)
        if record is None or f is None:
            return None
        for o in f.outputs:
            if o.preset != preset or o.status != "done" or not o.path:
                continue
            path = Path(o.path)
            try:
                real, home = path.resolve(strict=True), record.out_dir.resolve(strict=True)
            except OSError:
                return None
            if real.is_file() and real.is_relative_to(home):
                return real
        return None

    def retry(self, fid: str) -> str:
        """Try a file again as ``autotranscode retry`` does while a run is active (the running
        pipeline picks it up within seconds; without one, the next run does): a failed file
        put back at the start, a partly done one recorded anew for the outputs it lacks.
        Returns the id of the record to follow; KeyError for a file the journal lacks,
        RetryRefused for one there is nothing to retry of."""
        self.journal.supersede_failed()  # a later version of a path is the one to retry
        record = self.journal.get(fid)
        if record is None:
            raise KeyError(fid)
        if record.state is FileState.FAILED:
            reset_failed(self.journal, record)
            return record.id
        stage = outcomes.stage_of(self.journal, record)
        if stage is Stage.PARTLY_DONE:
            if record.id not in {
                r.id for r in outcomes.partly_done(self.journal, {str(record.path)})
            }:
                raise RetryRefused("a later version of this file was taken since")
            return outcomes.redo(self.journal, self.settings.catalog, record).id
        raise RetryRefused(f"only failed or partly done files are retried; this one is {stage}")

    def presets(self) -> list[PresetInfo]:
        return presets_of(self.settings.catalog)

    def health(self) -> dict[str, object]:
        checks: dict[str, dict[str, object]] = {"journal": _journal_check(self.journal)}
        folders = {"state_dir": self.state_dir, "out": self.out, "drop": self.drop}
        for name, folder in folders.items():
            if folder is not None:
                checks[f"disk_{name}"] = _disk_check(folder)
        if self.backend is not None or self.backend_problem is not None:
            side = self._read_side()  # fresh: a health check must not answer from a cache
            checks["backend"] = {"ok": side.problem is None, "detail": side.problem or "reachable"}
            alive = len(side.workers or [])
            checks["workers"] = {
                "ok": side.workers is not None and alive >= self.expected_workers,
                "alive": alive,
                "expected": self.expected_workers,
            }
        return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}

    def metrics(self) -> str:
        side = self.side()
        return metrics_text(self.totals(), side.queue_depth, side.workers, self.throughput())


#: The source ``presets show`` describes a command for: 1080p with audio.
EXAMPLE_SOURCE = MediaInfo(60.0, "mov", "prores", 1920, 1080, "pcm_s16le")


def presets_of(catalog: Catalog) -> list[PresetInfo]:
    custom = {p.id for p in catalog.custom}
    found = []
    for p in catalog.all():
        out = Path(f"OUTPUT{p.extension}")
        cmd = command("ffmpeg", p, EXAMPLE_SOURCE, Path("INPUT"), out)
        found.append(
            PresetInfo(p.id, p.extension, p.folder, p.description, p.id in custom, shlex.join(cmd))
        )
    return found


def _journal_check(journal: Journal) -> dict[str, object]:
    try:
        journal.counts()
        with tempfile.TemporaryFile(dir=journal.path.parent):
            pass
        writable = os.access(journal.path, os.W_OK)
    except Exception as exc:  # any failure to read is the answer, not an error of ours
        return {"ok": False, "detail": str(exc)}
    return {"ok": writable, "detail": "readable and writable" if writable else "read-only"}


def _disk_check(folder: Path) -> dict[str, object]:
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return {"ok": False, "path": str(folder), "detail": exc.strerror or str(exc)}
    return {"ok": free >= MIN_FREE_BYTES, "path": str(folder), "free_bytes": free}


def metrics_text(
    t: status.Totals,
    queue_depth: int | None = None,
    workers: list[Beat] | None = None,
    throughput: Throughput | None = None,
) -> str:
    """The Prometheus text format (version 0.0.4). Queue depth and workers only when known:
    a gauge that is missing says "unknown", a 0 would say "none"."""
    lines = [
        "# HELP autotranscode_files Files in the journal by stage.",
        "# TYPE autotranscode_files gauge",
    ]
    for stage in Stage:
        lines.append(f'autotranscode_files{{stage="{stage.value}"}} {t.by_stage.get(stage, 0)}')
    for name, value, what in (
        ("in_flight", t.in_flight, "Files being worked on (not waiting)."),
        ("queued", t.queued, "Files waiting for a step."),
        ("bytes_in", t.bytes_in, "Input bytes of the files done."),
        ("bytes_out", t.bytes_out, "Output bytes of the files done."),
        ("bytes_saved", t.bytes_saved, "Input minus output bytes of the files done."),
        ("queue_depth", queue_depth, "Messages on the job queue (waiting or being worked on)."),
        ("workers", None if workers is None else len(workers), "Workers alive (heartbeats)."),
        (
            "workers_busy",
            None if workers is None else sum(1 for w in workers if w.job_id),
            "Workers working on a job.",
        ),
        (
            "files_per_hour",
            throughput and throughput.files_per_hour,
            "Files done per hour, over the last hour's.",
        ),
        (
            "realtime_factor",
            throughput and throughput.realtime_factor,
            "Source seconds transcoded per wall-clock second, over the last hour.",
        ),
    ):
        if value is None:
            continue
        lines += [
            f"# HELP autotranscode_{name} {what}",
            f"# TYPE autotranscode_{name} gauge",
            f"autotranscode_{name} {value}",
        ]
    return "\n".join(lines) + "\n"


class RetryRefused(Exception):
    """A file there is nothing to retry of (done, in flight, or replaced since)."""


# -- upload ---------------------------------------------------------------------------------------


class UploadError(Exception):
    """An upload refused: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def safe_name(name: str) -> str:
    """The name an upload gets in DROP, or UploadError: one plain name, no folder, no way
    out of DROP, nothing the watcher would not take."""
    if not name or _UNSAFE.search(name) or name in (".", "..") or ".." in name:
        raise UploadError(400, "the name must be a plain file name (no '/', '\\' or '..')")
    if ignored(name) or len(name.encode()) > 200:
        raise UploadError(400, "the name must not start with '.' or '~', nor be a temporary name")
    return name


async def receive_upload(
    drop: Path, name: str, chunks: AsyncIterator[bytes], limit: int, declared: int | None
) -> Path:
    """Stream ``chunks`` into a hidden temporary file in DROP, then rename it to ``name``
    (never over an existing file): the watcher sees the file only whole. Nothing is left
    behind when the upload fails."""
    name = safe_name(name)
    if declared is not None and declared > limit:
        raise UploadError(413, f"the file is larger than the upload limit ({limit} bytes)")
    tmp = drop / f"{UPLOAD_PREFIX}{secrets.token_hex(8)}"
    size = 0
    try:
        with tmp.open("xb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadError(
                        413, f"the file is larger than the upload limit ({limit} bytes)"
                    )
                await anyio.to_thread.run_sync(f.write, chunk)
        final = drop / name
        try:
            os.link(tmp, final)  # fails if the name is taken: never over a file in DROP
        except FileExistsError as exc:
            raise UploadError(409, "a file of that name is in the drop folder already") from exc
        except OSError:  # no hard links here (FAT, some shares): a rename, checked first
            if final.exists():
                raise UploadError(
                    409, "a file of that name is in the drop folder already"
                ) from None
            tmp.rename(final)
        return final
    finally:
        tmp.unlink(missing_ok=True)
