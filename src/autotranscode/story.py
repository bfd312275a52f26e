"""What ``status`` tells of a file beyond its journal state: how each output ended, where
an unfinished file is within its stage, and the source's probe facts.

Kept in the journal's database (tables of their own, beside ``files`` and ``events``) and
written outside its transitions: none of it decides what a restart does, so none of it
is fsynced or checked against ``TRANSITIONS``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from .db import Database
from .stages import OUTPUT_ACTIONS, OutputAction, OutputStatus, Stage

SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    file_id TEXT NOT NULL,
    preset TEXT NOT NULL,
    status TEXT NOT NULL,
    path TEXT,
    reason TEXT,
    size INTEGER,
    duration REAL,
    width INTEGER,
    height INTEGER,
    at REAL NOT NULL,
    action TEXT,
    note TEXT,
    PRIMARY KEY (file_id, preset)
);
CREATE TABLE IF NOT EXISTS progress (
    file_id TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    fraction REAL,
    speed REAL,
    eta REAL,
    worker TEXT,
    at REAL NOT NULL
);
"""
#: Columns of ``outputs`` added since it was made: name -> type. An older journal gets them
#: when it is opened (``Database.add_columns``), so upgrading keeps what it recorded.
ADDED_OUTPUT_COLUMNS: dict[str, str] = {
    "vmaf": "REAL",
    "crf": "REAL",
    "action": "TEXT",
    "note": "TEXT",
}
_OUTPUT_COLUMNS = (
    "preset, status, path, reason, size, duration, width, height, vmaf, crf, action, note"
)
_SLOTS = ", ".join("?" * (_OUTPUT_COLUMNS.count(",") + 3))


#: A record that counts now: any but one that a later version of its path made history
#: (a failed or skipped one: a broken file since fixed; a partly done one: retried for the
#: outputs it lacked). Done earlier versions count: each delivered its outputs.
CURRENT = (
    "(NOT (state IN ('FAILED', 'SKIPPED') OR (state = 'CLEANED' AND EXISTS (SELECT 1 FROM"
    " outputs AS o WHERE o.file_id = files.id AND o.status = 'failed'))) OR NOT EXISTS"
    " (SELECT 1 FROM files AS g WHERE g.path = files.path AND g.rowid > files.rowid))"
)


@dataclass(frozen=True)
class Delivered:
    """The done and partly done files in sum (``Story.delivered``)."""

    partly_done: int
    #: Over the files whose outputs' sizes are recorded.
    bytes_in: int
    bytes_out: int
    #: Files delivered without outputs recorded (a journal from before they were): their
    #: input size and their ``outputs`` (key -> path in OUT), for the caller to measure.
    unrecorded: list[tuple[int, str]]


@dataclass(frozen=True)
class OutputRecord:
    """One output of a file as delivered (or not): what ``status`` and the dashboard show."""

    preset: str
    status: OutputStatus
    #: In OUT, absolute; None for an output that failed.
    path: str | None = None
    reason: str | None = None
    size: int | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    #: Sampled VMAF against the source (``--quality``, ``--measure-quality``).
    vmaf: float | None = None
    #: The CRF a quality target chose.
    crf: float | None = None
    #: How a made output was made ("encoded", "remuxed"); None when not said (an older
    #: worker, a file placed by ``journal rebuild``).
    action: OutputAction | None = None
    #: Why it was remuxed.
    note: str | None = None


class Story:
    def __init__(self, db: Database) -> None:
        """``db``: the journal's, made with ``SCHEMA`` among its own tables."""
        self.db = db
        db.add_columns("outputs", ADDED_OUTPUT_COLUMNS)

    @staticmethod
    def forget(conn: sqlite3.Connection, fid: str) -> None:
        """A file started over (``retry``): what its earlier attempt left is history."""
        conn.execute("DELETE FROM outputs WHERE file_id = ?", (fid,))
        conn.execute("DELETE FROM progress WHERE file_id = ?", (fid,))

    def describe(self, fid: str, media: dict[str, object]) -> None:
        """The source's probe facts, for ``status`` (a step of its own: no state change)."""
        self.db.execute(
            "UPDATE files SET media = ? WHERE id = ?", (json.dumps(media, ensure_ascii=False), fid)
        )

    def record_output(self, fid: str, output: OutputRecord) -> None:
        """How one output of the file ended (again: the newest word counts)."""
        self.db.execute(
            f"INSERT OR REPLACE INTO outputs (file_id, {_OUTPUT_COLUMNS}, at) VALUES ({_SLOTS})",
            (
                fid,
                output.preset,
                output.status,
                output.path,
                output.reason,
                output.size,
                output.duration,
                output.width,
                output.height,
                output.vmaf,
                output.crf,
                output.action,
                output.note,
                time.time(),
            ),
        )

    def outputs_of(self, fid: str) -> list[OutputRecord]:
        """The outputs recorded for a file, in the order they were recorded."""
        rows = self.db.query(
            f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE file_id = ? ORDER BY rowid",
            (fid,),
        )
        return [_output(r) for r in rows]

    def outputs_by_file(self) -> dict[str, list[OutputRecord]]:
        """Every recorded output, by file id: one query for a whole report."""
        rows = self.db.query(f"SELECT file_id, {_OUTPUT_COLUMNS} FROM outputs ORDER BY rowid")
        found: dict[str, list[OutputRecord]] = {}
        for r in rows:
            found.setdefault(r[0], []).append(_output(r[1:]))
        return found

    def delivered(self) -> Delivered:
        """Sums over the current CLEANED files in SQL: a report of ten thousand files must
        not build ten thousand records to add up their sizes."""
        per_file = (
            "SELECT f.size, f.outputs AS targets, COUNT(o.file_id) AS recorded,"
            " COALESCE(SUM(o.status = 'failed'), 0) AS failed,"
            " COALESCE(SUM(o.status = 'done' AND o.size IS NULL), 0) AS unsized,"
            " COALESCE(SUM(CASE WHEN o.status = 'done' THEN o.size END), 0) AS out"
            " FROM files AS f LEFT JOIN outputs AS o ON o.file_id = f.id"
            f" WHERE f.state = 'CLEANED' AND {CURRENT.replace('files.', 'f.')} GROUP BY f.id"
        )
        [(partly, bytes_in, bytes_out)] = self.db.query(
            "SELECT COALESCE(SUM(failed > 0), 0),"
            " COALESCE(SUM(CASE WHEN recorded > 0 AND unsized = 0 THEN size END), 0),"
            " COALESCE(SUM(CASE WHEN recorded > 0 AND unsized = 0 THEN out END), 0)"
            f" FROM ({per_file})"
        )
        unrecorded = self.db.query(
            "SELECT f.size, f.outputs FROM files AS f WHERE f.state = 'CLEANED'"
            f" AND {CURRENT.replace('files.', 'f.')}"
            " AND NOT EXISTS (SELECT 1 FROM outputs AS o WHERE o.file_id = f.id)"
        )
        return Delivered(
            int(partly), int(bytes_in), int(bytes_out), [(int(a), str(b)) for a, b in unrecorded]
        )

    def note_progress(
        self,
        fid: str,
        stage: Stage,
        fraction: float | None = None,
        speed: float | None = None,
        eta: float | None = None,
        worker: str | None = None,
    ) -> None:
        """Where an unfinished file is within its stage, for ``status`` in another process.
        Not a transition and not fsynced: it is a snapshot, and losing the last one is
        harmless (the journal state says the stage)."""
        self.db.execute(
            "INSERT OR REPLACE INTO progress (file_id, stage, fraction, speed, eta, worker, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (fid, stage, fraction, speed, eta, worker, time.time()),
        )

    def progress_of(self, fid: str) -> dict[str, object] | None:
        """The last ``note_progress`` of a file: stage, fraction, speed, eta, worker, at."""
        rows = self.db.query(
            "SELECT stage, fraction, speed, eta, worker, at FROM progress WHERE file_id = ?",
            (fid,),
        )
        if not rows:
            return None
        keys = ("stage", "fraction", "speed", "eta", "worker", "at")
        return dict(zip(keys, rows[0], strict=True))


def _output(r: tuple[object, ...]) -> OutputRecord:
    """An ``outputs`` row from its preset column on."""
    preset, status, path, reason, size, duration, width, height, vmaf, crf, action, note = r
    return OutputRecord(
        preset=str(preset),
        status=OutputStatus(str(status)),
        path=path if isinstance(path, str) else None,
        reason=reason if isinstance(reason, str) else None,
        size=size if isinstance(size, int) else None,
        duration=float(duration) if isinstance(duration, int | float) else None,
        width=width if isinstance(width, int) else None,
        height=height if isinstance(height, int) else None,
        vmaf=float(vmaf) if isinstance(vmaf, int | float) else None,
        crf=float(crf) if isinstance(crf, int | float) else None,
        action=next((a for a in OUTPUT_ACTIONS if a == action), None),
        note=note if isinstance(note, str) else None,
    )
