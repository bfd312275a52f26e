"""Converting a library in place: each output replaces its source in the source's own
folder, and the original waits in a trash folder for ``--keep-days`` before it goes.

The swap is the one moment a user's file is at stake, so it is a small journaled
sequence of its own (table ``swaps`` in ``library.db`` in the state dir, apart from the
journal), each step recorded before the next starts, and finished by whoever finds it
half done: the pipeline when it cleans up the file, or ``recover`` at start-up. At every
moment the source's path holds the original or the verified output, never neither and
never a part of one (renames within one folder are atomic)::

    1  output verified (probe, duration), given the original's owner, mode and mtime,
       on disk (fsync)
    2  INTENT recorded: source, output, final name, trash name
    3  original hard-linked into the trash (or, across filesystems, copied under a
       temp name, fsynced, renamed), the trash folder fsynced
    4  TRASHED recorded
    5  output renamed onto its final name: over the source with the same extension,
       else it already has its own name (ep1.avi -> ep1.mp4) and stays
    6  PLACED recorded
    7  original removed from its folder (another extension only), folder fsynced
    8  DONE recorded

Recovery rolls forward from the last step recorded: every step is safe to do twice. It
undoes instead (the output removed, the original left as it is) when the original
changed after the intent was recorded. The numbers are where the test hook
``KILL_AFTER_STEP_ENV`` kills the process, to prove the claim above with kill -9.

A replaced file is known by its stamp (``stamps``: the preset digest an output
carries), not by the journal, so a rescan, or a new state dir, never converts it again.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import shutil
import signal
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from . import files, outbox, outcomes, sidecars
from .db import Database
from .errors import JournalError, OutputError
from .journal import FileRecord, Journal
from .media.probe import probe, read_stamp
from .settings import Settings
from .text import shown

log = logging.getLogger(__name__)

#: In the state dir: the swaps' own journal.
LIBRARY_DB = "library.db"
#: In the state dir, unless --keep-originals: replaced originals, by the day they went.
TRASH_FOLDER = "trash"
#: Test hook, for the crash tests only: SIGKILL this process right after step N above.
KILL_AFTER_STEP_ENV = "AUTOTRANSCODE_TEST_KILL_AFTER_SWAP_STEP"
#: The trash is swept at start-up and then this often while running.
SWEEP_INTERVAL_SECONDS = 24 * 3600
#: An output whose duration is off by more than this (or 2 %) is not put in place.
DURATION_TOLERANCE_SECONDS = 1.0
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS swaps (
    file_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    output TEXT NOT NULL,
    final TEXT NOT NULL,
    trash TEXT NOT NULL,
    step TEXT NOT NULL,
    source_size INTEGER NOT NULL,
    source_mtime_ns INTEGER NOT NULL,
    output_size INTEGER NOT NULL,
    at REAL NOT NULL
);
"""


class Step(StrEnum):
    """Where a swap is: the states recorded (steps 2, 4, 6, 8), and its two other ends."""

    INTENT = "INTENT"
    TRASHED = "TRASHED"
    PLACED = "PLACED"
    DONE = "DONE"
    #: The original stays: not smaller, --replace never, not verified, or changed meanwhile.
    KEPT = "KEPT"


@dataclass(frozen=True)
class Swap:
    file_id: str
    source: Path
    output: Path
    final: Path
    trash: Path
    step: Step
    source_size: int
    source_mtime_ns: int
    output_size: int


@dataclass(frozen=True)
class Result:
    """What became of a file: the path now holding its result (the output, or the kept
    original) and, when the original was kept, why."""

    path: Path
    kept: str | None = None


def size_text(n: int) -> str:
    """Bytes as a person reads them: ``3.1 MB``."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover (the loop returns at GB)


def kept_before(state_dir: Path) -> set[tuple[str, int]]:
    """The sources a swap kept (path, size), read without writing (for ``--dry-run``):
    nothing if the state dir has no library yet."""
    db = state_dir / LIBRARY_DB
    if not db.is_file():
        return set()
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            query = "SELECT source, source_size FROM swaps WHERE step = ?"
            rows = conn.execute(query, (Step.KEPT.value,))
            return {(str(path), int(size)) for path, size in rows}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.warning("cannot read %s: %s", db, exc)
        return set()


def converted(path: Path, digests: tuple[str, ...]) -> bool:
    """Whether ``path`` is an output of one of these presets (its stamp says so): a file
    replaced before, by this run or another, whatever the journal knows."""
    stamp = read_stamp(path)
    return stamp is not None and stamp.preset in digests


class Library:
    """The swaps of one state dir, its trash, and the sweep that empties it."""

    def __init__(self, state_dir: Path, settings: Settings) -> None:
        self.db = Database(state_dir / LIBRARY_DB, SCHEMA, JournalError)
        self.trash = Path(os.path.abspath(settings.keep_originals or state_dir / TRASH_FOLDER))
        self.mode = settings.replace
        self.sidecars = settings.sidecars
        self.keep_days = settings.keep_days
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # -- start-up and shutdown -------------------------------------------------------------

    def start(self, schedule: Callable[[str], None], sweep_daily: bool = False) -> None:
        """Sweep the trash, finish each half-done swap, then hand each such file to
        ``schedule`` (its journal record catches up); ``sweep_daily``: keep sweeping."""
        self.sweep()
        for fid in self.recover():
            schedule(fid)
        if sweep_daily:
            self._sweeper = threading.Thread(
                target=self._sweep_daily, name="autotranscode-trash", daemon=True
            )
            self._sweeper.start()

    def close(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join()
        self.db.close()

    def recover(self) -> list[str]:
        """Finish (or undo) every swap a crash left half done; their file ids."""
        rows = self.db.query("SELECT * FROM swaps WHERE step NOT IN (?, ?)", (Step.DONE, Step.KEPT))
        done = []
        for row in rows:
            swap = _swap(row)
            log.info("%s: finishing its in-place swap (%s)", shown(swap.source.name), swap.step)
            self._roll_forward(swap)
            done.append(swap.file_id)
        return done

    # -- the pipeline's questions ------------------------------------------------------------

    def done(
        self, journal: Journal, path: Path, digests: tuple[str, ...], preset_ids: tuple[str, ...]
    ) -> str | None:
        """The id of ``path``'s record as SKIPPED if it is a replaced file (its stamp says
        so): never transcoded again, whatever the journal knows; None: take it."""
        if not converted(path, digests):
            return None
        why = "converted in place before (its stamp says so)"
        fid, new = outcomes.skipped(journal, path, path.parent, preset_ids, why)
        if new:
            log.info("%s: %s; not taken", shown(path.name), why)
        return fid

    def in_place(self, record: FileRecord, journal: Journal) -> FileRecord:
        """The swap for a delivered file: the record with its output where the swap left it
        (or at the kept original, with a warning on the file saying why), for the pipeline
        to record as it finishes the file."""
        result = self.replace(record)
        if result.kept:
            warning = f"the original was kept: {result.kept}"
            log.warning("%s: delivered, but %s", shown(record.name), warning)
            journal.warn(record.id, warning)
        return dataclasses.replace(record, outputs=dict.fromkeys(record.outputs, str(result.path)))

    # -- the swap ----------------------------------------------------------------------------

    def replace(self, record: FileRecord) -> Result:
        """Put ``record``'s one output in its source's place (or keep the original, and say
        why); whatever step an earlier attempt reached, from there. OutputError (retried:
        the swap resumes where it stopped) if the folder or the trash refuses a step."""
        try:
            return self._replace(record)
        except OSError as exc:
            raise OutputError(
                f"cannot swap {shown(record.name)} for its output: {exc.strerror or exc}; "
                "the original stays until the next try"
            ) from exc

    def _replace(self, record: FileRecord) -> Result:
        row = self.db.query("SELECT * FROM swaps WHERE file_id = ?", (record.id,))
        if row:
            swap = _swap(row[0])
            if swap.step == Step.KEPT:
                return Result(swap.source, kept="kept before")
            return Result(self._roll_forward(swap))
        output = Path(next(iter(record.outputs.values())))
        source = record.path
        why = self._keep_why(record, source, output)
        if why is not None:
            self._keep(record, source, output, why)
            return Result(source, kept=why)
        st = source.stat()
        _give_attributes(output, st)
        outbox.sync([output])
        _hook(1)
        same = output.suffix.lower() == source.suffix.lower()
        swap = Swap(
            record.id,
            source,
            output,
            source if same else output,
            self._trash_name(source),
            Step.INTENT,
            st.st_size,
            st.st_mtime_ns,
            output.stat().st_size,
        )
        self._record(swap, insert=True)
        _hook(2)
        return Result(self._roll_forward(swap))

    def _keep_why(self, record: FileRecord, source: Path, output: Path) -> str | None:
        """Why the original stays (None: it is replaced)."""
        try:
            st = source.stat()
            out_size = output.stat().st_size
        except OSError as exc:
            return f"the original or its output cannot be read ({exc.strerror or exc})"
        if (st.st_size, st.st_mtime_ns) != (record.size, record.mtime_ns):
            return "the original changed since it was transcoded"
        mismatch = _duration_mismatch(source, output)
        if mismatch:
            return mismatch
        saved = st.st_size - out_size
        if self.mode == "never":
            change = f"save {size_text(saved)}" if saved > 0 else f"grow by {size_text(-saved)}"
            return f"replacing it would {change} (--replace never: nothing replaced)"
        if self.mode == "smaller" and saved <= 0:
            return (
                f"the output ({size_text(out_size)}) is not smaller than the original "
                f"({size_text(st.st_size)}); --replace always would replace it anyway"
            )
        return None

    def _keep(self, record: FileRecord, source: Path, output: Path, why: str) -> None:
        """The original stays as it is; the output made for it goes (it is ours, and
        placed only to be swapped in; not one that an earlier swap put in place, which a file
        done before by the same content, a restored original, gets as its output)."""
        replaced = self.db.query(
            "SELECT 1 FROM swaps WHERE final = ? AND step = ?", (str(output), Step.DONE.value)
        )
        if output != source and not replaced:
            outbox.remove(output)
        self._record(
            Swap(record.id, source, output, source, source, Step.KEPT, record.size, 0, 0),
            insert=True,
        )
        log.info("%s: kept: %s", shown(source.name), why)

    def _roll_forward(self, swap: Swap) -> Path:
        """The steps after ``swap.step``, each recorded; where the result is."""
        if swap.step == Step.INTENT:
            if self._changed(swap):
                return self._undo(swap)
            self._to_trash(swap)
            _hook(3)
            swap = self._record(swap, Step.TRASHED)
            _hook(4)
        if swap.step == Step.TRASHED:
            if swap.output != swap.final and swap.output.exists():
                os.replace(swap.output, swap.final)
                outbox.sync([swap.final])
            _hook(5)
            swap = self._record(swap, Step.PLACED)
            _hook(6)
        if swap.step == Step.PLACED:
            if swap.final != swap.source and swap.trash.exists():
                swap.source.unlink(missing_ok=True)
                self._rename_sidecars(swap)
                _fsync_folder(swap.source.parent)
            _hook(7)
            swap = self._record(swap, Step.DONE)
            _hook(8)
            log.info(
                "%s: replaced by %s; the original is in %s",
                shown(swap.source.name),
                shown(swap.final.name),
                shown(str(swap.trash)),
            )
        return swap.final

    def _rename_sidecars(self, swap: Swap) -> None:
        """Sidecars go by the stem: renamed only when the output's differs from the source's
        (``ep1 (1).mp4``, as ``ep1.mp4`` was another file), and never over a file."""
        if swap.final.stem == swap.source.stem:
            return
        for sidecar in sidecars.find(swap.source, self.sidecars):
            target = swap.final.with_name(swap.final.stem + sidecar.name[len(swap.source.stem) :])
            if not target.exists():
                os.rename(sidecar, target)

    def _changed(self, swap: Swap) -> bool:
        """The original was written to after the intent: it is not what was transcoded."""
        try:
            st = swap.source.stat()
        except FileNotFoundError:
            return False  # gone: the output takes its place, nothing to keep
        return (st.st_size, st.st_mtime_ns) != (swap.source_size, swap.source_mtime_ns)

    def _undo(self, swap: Swap) -> Path:
        log.warning("%s changed during its swap; the original stays", shown(swap.source.name))
        if swap.output != swap.source:
            outbox.remove(swap.output)
        self._record(swap, Step.KEPT)
        return swap.source

    def _to_trash(self, swap: Swap) -> None:
        """The original, whole, in the trash: a hard link (instant, no space), or a copy
        renamed into place there once it is complete."""
        if swap.trash.exists() or not swap.source.exists():
            return  # linked before a crash (a copy is only ever there whole)
        swap.trash.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(swap.source, swap.trash)
        except OSError:
            tmp = swap.trash.with_name(f".{swap.trash.name}{outbox.PART_SUFFIX}")
            files.snapshot(swap.source, tmp)
            shutil.copystat(swap.source, tmp)
            outbox.sync([tmp])
            os.rename(tmp, swap.trash)
        _fsync_folder(swap.trash.parent)

    def _trash_name(self, source: Path) -> Path:
        """trash/DAY/the/source's/absolute/path: it says where the original was, and the
        day decides when it is swept."""
        day = datetime.date.today().isoformat()
        relative = Path(os.path.abspath(source)).relative_to("/")
        return outbox.free_name(self.trash / day / relative)

    def _record(self, swap: Swap, step: Step | None = None, insert: bool = False) -> Swap:
        if insert:
            with self.db.transaction(durable=True) as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO swaps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        swap.file_id,
                        str(swap.source),
                        str(swap.output),
                        str(swap.final),
                        str(swap.trash),
                        swap.step.value,
                        swap.source_size,
                        swap.source_mtime_ns,
                        swap.output_size,
                        time.time(),
                    ),
                )
            return swap
        assert step is not None
        with self.db.transaction(durable=True) as conn:
            conn.execute(
                "UPDATE swaps SET step = ?, at = ? WHERE file_id = ?",
                (step.value, time.time(), swap.file_id),
            )
        return dataclasses.replace(swap, step=step)

    # -- the trash ---------------------------------------------------------------------------

    def sweep(self, today: datetime.date | None = None) -> int:
        """Delete the trash's days older than --keep-days; how many went."""
        today = today or datetime.date.today()
        try:
            days = [e for e in os.scandir(self.trash) if e.is_dir() and _DAY.fullmatch(e.name)]
        except FileNotFoundError:
            return 0
        gone = 0
        for entry in days:
            try:
                day = datetime.date.fromisoformat(entry.name)
            except ValueError:
                continue
            if (today - day).days > self.keep_days:
                shutil.rmtree(entry.path, ignore_errors=True)
                log.info("trash: originals replaced on %s deleted (--keep-days)", entry.name)
                gone += 1
        return gone

    def _sweep_daily(self) -> None:
        while not self._stop.wait(SWEEP_INTERVAL_SECONDS):
            self.sweep()


def _swap(row: tuple[object, ...]) -> Swap:
    fid, source, output, final, trash, step, size, mtime_ns, out_size, _at = row
    return Swap(
        str(fid),
        Path(str(source)),
        Path(str(output)),
        Path(str(final)),
        Path(str(trash)),
        Step(str(step)),
        int(str(size)),
        int(str(mtime_ns)),
        int(str(out_size)),
    )


def _duration_mismatch(source: Path, output: Path) -> str | None:
    """Why the output is not the whole of the source, by their durations; None if it is."""
    try:
        want, got = probe(source).duration, probe(output).duration
    except Exception as exc:  # a probe's failure is a reason to keep the original
        return f"the output could not be verified ({exc})"
    if want is None:
        return None  # nothing to compare with (the worker checked what it could)
    if got is None or abs(got - want) > max(DURATION_TOLERANCE_SECONDS, want * 0.02):
        return f"the output lasts {got or 0:.1f} s, the original {want:.1f} s"
    return None


def _give_attributes(output: Path, st: os.stat_result) -> None:
    """The original's owner (when we may set it: as root), mode and times, so the media
    server, and whoever shares the library, see the file as they saw the original."""
    try:
        if os.geteuid() == 0:
            os.chown(output, st.st_uid, st.st_gid)
        os.chmod(output, stat.S_IMODE(st.st_mode))
        os.utime(output, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError as exc:  # a share that keeps its own owners and modes: not worth a failure
        log.warning("%s: owner, mode or mtime not kept: %s", shown(output.name), exc)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hook(step: int) -> None:
    """The crash tests' hook (``KILL_AFTER_STEP_ENV``); nothing unless that is set."""
    if os.environ.get(KILL_AFTER_STEP_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGKILL)
