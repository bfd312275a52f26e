"""The durable record of every input file and every step it took.

Each transition is committed before the next step starts, so after a crash the
pipeline resumes every file at its last durable step; the ``events`` table is
the audit trail that ``status`` shows.

A commit survives the process being killed at any moment. It is also fsynced, so
that it survives a power cut, where a step acts on it outside the journal (an upload
under its key, a write into OUT, deleting the source): the steps between are
repeated safely when a power cut takes back their commits, and skip the fsync.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .db import Database
from .errors import JournalError

log = logging.getLogger(__name__)


#: What to do about a damaged journal: one line, the command that mends it.
REBUILD_HINT = (
    "run `autotranscode journal rebuild --state-dir {state_dir} --out OUT` (once per output"
    " folder: --out A --out B) to set it aside and start a new one from what OUT holds"
)


class FileState(StrEnum):
    DISCOVERED = "DISCOVERED"
    UPLOADING = "UPLOADING"
    UPLOADED = "UPLOADED"
    SUBMITTED = "SUBMITTED"
    TRANSCODING = "TRANSCODING"
    COMPLETED = "COMPLETED"
    DOWNLOADING = "DOWNLOADING"
    DONE = "DONE"
    CLEANED = "CLEANED"
    FAILED = "FAILED"

    @property
    def finished(self) -> bool:
        return self in (FileState.CLEANED, FileState.FAILED)


@dataclass(frozen=True)
class FileRecord:
    id: str
    path: Path
    out_dir: Path
    presets: tuple[str, ...]
    size: int
    mtime_ns: int
    state: FileState
    job_id: str | None
    input_key: str | None
    outputs: dict[str, str]
    reason: str | None
    updated_at: float

    @property
    def name(self) -> str:
        return self.path.name


_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    out_dir TEXT NOT NULL,
    presets TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT UNIQUE,
    input_key TEXT,
    outputs TEXT NOT NULL DEFAULT '{}',
    reason TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_path ON files (path);
CREATE INDEX IF NOT EXISTS files_state ON files (state);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id TEXT NOT NULL,
    at REAL NOT NULL,
    state TEXT NOT NULL,
    detail TEXT
);
"""
_COLUMNS = (
    "id, path, out_dir, presets, size, mtime_ns, state, job_id, input_key, outputs, reason,"
    " updated_at"
)


class Journal:
    """SQLite in WAL mode; one connection per thread, every change its own transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = Database(
            path,
            _SCHEMA,
            lambda msg: JournalError(f"journal: {msg}"),
            synchronous="NORMAL",
            check=True,
            damaged_hint=REBUILD_HINT.format(state_dir=shlex.quote(str(path.parent))),
        )

    # -- intent ----------------------------------------------------------------------------------

    def record(
        self,
        fid: str,
        path: Path,
        out_dir: Path,
        presets: tuple[str, ...],
        size: int,
        mtime_ns: int,
    ) -> tuple[FileRecord, bool]:
        """The record for this file version and destination, and whether it is new."""
        now = time.time()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO files (id, path, out_dir, presets, size, mtime_ns, state,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fid,
                    _db_path(path),
                    str(out_dir),
                    ",".join(presets),
                    size,
                    mtime_ns,
                    FileState.DISCOVERED,
                    now,
                    now,
                ),
            )
            created = cur.rowcount == 1
            if created:
                conn.execute(
                    "INSERT INTO events (file_id, at, state) VALUES (?, ?, ?)",
                    (fid, now, FileState.DISCOVERED),
                )
        if created:  # what was just written, without reading it back
            return FileRecord(
                id=fid,
                path=path,
                out_dir=out_dir,
                presets=presets,
                size=size,
                mtime_ns=mtime_ns,
                state=FileState.DISCOVERED,
                job_id=None,
                input_key=None,
                outputs={},
                reason=None,
                updated_at=now,
            ), True
        record = self.get(fid)
        assert record is not None
        return record, False

    def advance(
        self,
        fid: str,
        state: FileState,
        *,
        job_id: str | None = None,
        input_key: str | None = None,
        outputs: dict[str, str] | None = None,
        detail: str | None = None,
        expect: FileState | None = None,
        durable: bool = False,
    ) -> bool:
        """Move a file to ``state``, with whatever facts that step established.

        With ``expect``, only if the file is still in that state (another thread may have
        moved it on meanwhile); returns whether it moved. ``durable`` before a step that
        acts outside the journal on this state (see the module docstring).
        """
        sets = ["state = ?", "updated_at = ?", "reason = NULL"]
        now = time.time()
        params: list[object] = [state, now]
        for column, value in (("job_id", job_id), ("input_key", input_key)):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if outputs is not None:
            sets.append("outputs = ?")
            params.append(json.dumps(outputs, ensure_ascii=False))
        where = "id = ?"
        params.append(fid)
        if expect is not None:
            where += " AND state = ?"
            params.append(expect)
        with self.db.transaction(durable) as conn:
            cur = conn.execute(f"UPDATE files SET {', '.join(sets)} WHERE {where}", params)
            if cur.rowcount != 1:
                return False
            conn.execute(
                "INSERT INTO events (file_id, at, state, detail) VALUES (?, ?, ?, ?)",
                (fid, now, state, detail),
            )
        return True

    def fail(self, fid: str, reason: str) -> None:
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE files SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (FileState.FAILED, reason, now, fid),
            )
            conn.execute(
                "INSERT INTO events (file_id, at, state, detail) VALUES (?, ?, ?, ?)",
                (fid, now, FileState.FAILED, reason),
            )

    def reset(self, fid: str, path: Path, size: int, mtime_ns: int) -> None:
        """Start a failed file over from the beginning, as a new job, from where it is now."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE files SET state = ?, reason = NULL, job_id = NULL, input_key = NULL,"
                " outputs = '{}', updated_at = ?, path = ?, size = ?, mtime_ns = ? WHERE id = ?",
                (FileState.DISCOVERED, now, _db_path(path), size, mtime_ns, fid),
            )
            conn.execute(
                "INSERT INTO events (file_id, at, state, detail) VALUES (?, ?, ?, 'retry')",
                (fid, now, FileState.DISCOVERED),
            )

    def get(self, fid: str) -> FileRecord | None:
        rows = self._select("WHERE id = ?", (fid,))
        return rows[0] if rows else None

    def by_job(self, job_id: str) -> FileRecord | None:
        rows = self._select("WHERE job_id = ?", (job_id,))
        return rows[0] if rows else None

    def unfinished(self) -> list[FileRecord]:
        """Files a crash or stop left between steps: what a restart must resume."""
        return self._select(
            "WHERE state NOT IN (?, ?) ORDER BY created_at",
            (FileState.CLEANED, FileState.FAILED),
        )

    def recent(self, limit: int = 20, state: FileState | None = None) -> list[FileRecord]:
        if state is None:
            return self._select("ORDER BY updated_at DESC LIMIT ?", (limit,))
        return self._select("WHERE state = ? ORDER BY updated_at DESC LIMIT ?", (state, limit))

    def counts(self) -> dict[FileState, int]:
        rows = self.db.query("SELECT state, COUNT(*) FROM files GROUP BY state")
        return {FileState(s): int(n) for s, n in rows}

    def _select(self, where: str, params: tuple[object, ...]) -> list[FileRecord]:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM files {where}", params)
        return [
            FileRecord(
                id=r[0],
                path=Path(os.fsdecode(r[1])) if isinstance(r[1], bytes) else Path(r[1]),
                out_dir=Path(r[2]),
                presets=tuple(r[3].split(",")),
                size=r[4],
                mtime_ns=r[5],
                state=FileState(r[6]),
                job_id=r[7],
                input_key=r[8],
                outputs=json.loads(r[9]),
                reason=r[10],
                updated_at=r[11],
            )
            for r in rows
        ]

    def close(self) -> None:
        self.db.close()


def _db_path(path: Path) -> str | bytes:
    """The path as SQLite can hold it: text, or (a name that is not UTF-8) its bytes."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text
