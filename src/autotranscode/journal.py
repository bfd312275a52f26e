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
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .db import Database
from .errors import JournalError
from .stages import FINISHED
from .stages import STAGES as STAGES  # re-exported: the journal's states and their moves
from .stages import TRANSITIONS as TRANSITIONS
from .stages import FileState as FileState
from .story import CURRENT, Story
from .story import SCHEMA as STORY_SCHEMA

log = logging.getLogger(__name__)


#: What to do about a damaged journal: one line, the command that mends it.
REBUILD_HINT = (
    "run `autotranscode journal rebuild --state-dir {state_dir} --out OUT` (once per output"
    " folder: --out A --out B) to set it aside and start a new one from what OUT holds"
)


class TransitionError(RuntimeError):
    """A state change ``TRANSITIONS`` does not allow: a bug in the caller, never a fault of
    the file or the machine.

    Not an ``AutotranscodeError``: those are conditions a user can act on, shown as one
    line and retried when retryable; a transition the flow never makes must stop the step
    with a traceback instead, before it writes a history no restart could resume from.
    ``expect=`` covers the transitions that race with another thread (it returns False).
    """


#: The reason a failed version of a path gets once a later version of that path is recorded.
SUPERSEDED = "superseded by a later version of the file"


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
    #: BLAKE3 of the content taken (None until the snapshot is taken).
    content_hash: str | None = None
    #: The source's device, inode and ctime when it was taken (with size and mtime_ns, the
    #: version of the file this record is about; a rename keeps dev and ino).
    dev: int = 0
    ino: int = 0
    ctime_ns: int = 0
    #: ``presets.digest`` of each preset, in the order of ``presets``.
    digests: tuple[str, ...] = ()
    #: Done without a transcode of its own: the name of the file whose output it got.
    same_as: str | None = None
    #: ``--force``: transcoded even if the same content was done before.
    forced: bool = False
    #: Something that went wrong after delivery (``--on-success`` could not move the source).
    warning: str | None = None
    #: When the file was first recorded (its clock in ``status`` runs from there).
    created_at: float = 0.0
    #: The source's probe facts (``describe``): duration, codecs, picture size.
    media: dict[str, object] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def same_version(self, st: os.stat_result) -> bool:
        """Whether ``st`` is the file as this record knows it (nothing written since)."""
        return (self.size, self.mtime_ns, self.ctime_ns, self.dev, self.ino) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_dev,
            st.st_ino,
        )


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
#: Columns added since the first release: name -> type and default. A journal made by an
#: older version gets them at open (``ALTER TABLE``), so upgrading keeps its history.
_ADDED_COLUMNS: dict[str, str] = {
    "content_hash": "TEXT",
    "dev": "INTEGER NOT NULL DEFAULT 0",
    "ino": "INTEGER NOT NULL DEFAULT 0",
    "ctime_ns": "INTEGER NOT NULL DEFAULT 0",
    "digests": "TEXT NOT NULL DEFAULT ''",
    "same_as": "TEXT",
    "forced": "INTEGER NOT NULL DEFAULT 0",
    "warning": "TEXT",
    "media": "TEXT",
}
#: Made once the columns they cover exist.
_ADDED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS files_content ON files (content_hash)",
    "CREATE INDEX IF NOT EXISTS files_inode ON files (ino, dev)",
    "CREATE INDEX IF NOT EXISTS events_file ON events (file_id, seq)",
    # Newest first (``current``, the dashboard's History): a page reads its rows, not a sort
    # of every file.
    "CREATE INDEX IF NOT EXISTS files_updated ON files (updated_at)",
)
#: The detail of the event that records a job submitted again (``Listener.resubmit``).
RESUBMIT = "resubmitted"

_COLUMNS = (
    "id, path, out_dir, presets, size, mtime_ns, state, job_id, input_key, outputs, reason,"
    " updated_at, content_hash, dev, ino, ctime_ns, digests, same_as, forced,"
    " warning, created_at, media"
)


class Journal:
    """SQLite in WAL mode (see ``db``): the process's threads take turns at one connection,
    every change is its own transaction, and every state change is one ``TRANSITIONS``
    allows (checked inside that transaction)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = Database(
            path,
            _SCHEMA + STORY_SCHEMA,
            lambda msg: JournalError(f"journal: {msg}"),
            synchronous="NORMAL",
            check=True,
            damaged_hint=REBUILD_HINT.format(state_dir=shlex.quote(str(path.parent))),
        )
        self.db.add_columns("files", _ADDED_COLUMNS, _ADDED_INDEXES)
        #: What ``status`` tells beyond the states: outputs, progress, probe facts.
        self.story = Story(self.db)

    # -- intent ----------------------------------------------------------------------------------

    def record(
        self,
        fid: str,
        path: Path,
        out_dir: Path,
        presets: tuple[str, ...],
        size: int,
        mtime_ns: int,
        *,
        ctime_ns: int = 0,
        dev: int = 0,
        ino: int = 0,
        digests: tuple[str, ...] = (),
        forced: bool = False,
    ) -> tuple[FileRecord, bool]:
        """The record for this file version and destination, and whether it is new."""
        now = time.time()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO files (id, path, out_dir, presets, size, mtime_ns, state,"
                " created_at, updated_at, ctime_ns, dev, ino, digests, forced)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    ctime_ns,
                    dev,
                    ino,
                    ",".join(digests),
                    int(forced),
                ),
            )
            created = cur.rowcount == 1
            if created:
                conn.execute(
                    "INSERT INTO events (file_id, at, state) VALUES (?, ?, ?)",
                    (fid, now, FileState.DISCOVERED),
                )
                _supersede(conn, fid, path, out_dir, presets, now)
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
                created_at=now,
                dev=dev,
                ino=ino,
                ctime_ns=ctime_ns,
                digests=digests,
                forced=forced,
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
        same_as: str | None = None,
    ) -> bool:
        """Move a file to ``state``, with whatever facts that step established.

        With ``expect``, only if the file is still in that state (another thread may have
        moved it on meanwhile); returns whether it moved. ``durable`` before a step that
        acts outside the journal on this state (see the module docstring). A move that
        ``TRANSITIONS`` does not allow raises ``TransitionError``.
        """
        sets = ["state = ?", "updated_at = ?", "reason = NULL"]
        now = time.time()
        params: list[object] = [state, now]
        for column, value in (("job_id", job_id), ("input_key", input_key), ("same_as", same_as)):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if outputs is not None:
            sets.append("outputs = ?")
            params.append(json.dumps(outputs, ensure_ascii=False))
        params.append(fid)
        with self.db.transaction(durable) as conn:
            if not _allowed(conn, fid, state, expect):
                return False
            conn.execute(f"UPDATE files SET {', '.join(sets)} WHERE id = ?", params)
            conn.execute(
                "INSERT INTO events (file_id, at, state, detail) VALUES (?, ?, ?, ?)",
                (fid, now, state, detail),
            )
        return True

    def fail(self, fid: str, reason: str, expect: FileState | None = None) -> FileState | None:
        """FAILED with ``reason``; or SKIPPED, when a later version of its path is recorded
        already (a partial version of a file still being written): that one counts, and
        retrying this one would only transcode the path's current content a second time.
        Returns the state it ended in, None if it left ``expect`` meanwhile (cancelled); a
        file CLEANED or SKIPPED already raises ``TransitionError``."""
        now = time.time()
        with self.db.transaction() as conn:
            newer = conn.execute(
                "SELECT 1 FROM files AS f, files AS me WHERE me.id = ? AND f.id != me.id"
                " AND f.path = me.path AND f.out_dir = me.out_dir AND f.presets = me.presets"
                " AND f.rowid > me.rowid LIMIT 1",  # recorded after it
                (fid,),
            ).fetchone()
            state = FileState.SKIPPED if newer else FileState.FAILED
            if not _allowed(conn, fid, state, expect):
                return None
            if newer:
                reason = f"{SUPERSEDED} (this version: {reason})"
            conn.execute(
                "UPDATE files SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (state, reason, now, fid),
            )
            conn.execute(
                "INSERT INTO events (file_id, at, state, detail) VALUES (?, ?, ?, ?)",
                (fid, now, state, reason),
            )
        return state

    def cancel(self, fid: str, expect: FileState, reason: str) -> bool:
        """FAILED with ``reason`` if the file is still in ``expect`` (a user's cancel, from
        another process maybe: the pipeline may have moved the file on meanwhile)."""
        now = time.time()
        with self.db.transaction() as conn:
            if not _allowed(conn, fid, FileState.FAILED, expect):
                return False
            conn.execute(
                "UPDATE files SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (FileState.FAILED, reason, now, fid),
            )
            conn.execute(
                "INSERT INTO events (file_id, at, state, detail) VALUES (?, ?, ?, ?)",
                (fid, now, FileState.FAILED, reason),
            )
        return True

    def skip(self, fid: str, reason: str) -> None:
        """A finished record that is not a failure: the file was looked at and not taken."""
        now = time.time()
        with self.db.transaction() as conn:
            _allowed(conn, fid, FileState.SKIPPED)
            conn.execute(
                "UPDATE files SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (FileState.SKIPPED, reason, now, fid),
            )
            conn.execute(
                "INSERT INTO events (file_id, at, state, detail) VALUES (?, ?, ?, ?)",
                (fid, now, FileState.SKIPPED, reason),
            )

    def supersede_failed(self) -> int:
        """Move every failed version that has a later version of its path to SKIPPED, as
        ``record`` does from now on; for journals written before it did (five failed pieces
        of one appended file, which ``retry --all-failed`` made into five duplicates).
        Returns how many moved."""
        with self.db.transaction() as conn:
            old = [
                row[0]
                for row in conn.execute(
                    "SELECT me.id FROM files AS me WHERE me.state = ? AND EXISTS (SELECT 1 FROM"
                    " files AS f WHERE f.path = me.path AND f.out_dir = me.out_dir"
                    " AND f.presets = me.presets AND f.rowid > me.rowid)",
                    (FileState.FAILED,),
                )
            ]
            _mark_superseded(conn, old, time.time())
        return len(old)

    def events_of(self, fid: str) -> list[tuple[float, FileState, str | None]]:
        """The file's history: each state it entered, when, and the detail recorded."""
        rows = self.db.query(
            "SELECT at, state, detail FROM events WHERE file_id = ? ORDER BY seq", (fid,)
        )
        return [(float(at), FileState(state), detail) for at, state, detail in rows]

    def warn(self, fid: str, warning: str) -> None:
        """Note what went wrong after a file was delivered; it stays delivered."""
        self.db.execute("UPDATE files SET warning = ? WHERE id = ?", (warning, fid))

    def reset(self, fid: str, path: Path, size: int, mtime_ns: int) -> None:
        """Start a failed file over from the beginning, as a new job, from where it is now."""
        now = time.time()
        with self.db.transaction() as conn:
            _allowed(conn, fid, FileState.DISCOVERED)
            conn.execute(
                "UPDATE files SET state = ?, reason = NULL, job_id = NULL, input_key = NULL,"
                " outputs = '{}', updated_at = ?, path = ?, size = ?, mtime_ns = ?,"
                " content_hash = NULL, same_as = NULL WHERE id = ?",
                (FileState.DISCOVERED, now, _db_path(path), size, mtime_ns, fid),
            )
            Story.forget(conn, fid)
            conn.execute(
                "INSERT INTO events (file_id, at, state, detail) VALUES (?, ?, ?, 'retry')",
                (fid, now, FileState.DISCOVERED),
            )

    def resubmits(self, fid: str) -> int:
        """How often the file's job was submitted again since it was last (re)started."""
        rows = self.db.query(
            "SELECT COUNT(*) FROM events WHERE file_id = ? AND detail LIKE ? AND seq >"
            " COALESCE((SELECT MAX(seq) FROM events WHERE file_id = ? AND detail = 'retry'), 0)",
            (fid, f"{RESUBMIT}:%", fid),
        )
        return int(rows[0][0])

    def taken(self, fid: str, st: os.stat_result, content_hash: str) -> None:
        """The snapshot is stored: the version of the file it is of, and its content hash."""
        with self.db.transaction(durable=True) as conn:
            facts = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino)
            conn.execute(
                "UPDATE files SET size = ?, mtime_ns = ?, ctime_ns = ?, dev = ?, ino = ?,"
                " content_hash = ?, updated_at = ? WHERE id = ?",
                (*facts, content_hash, time.time(), fid),
            )

    def latest(
        self, path: Path, out_dir: Path, presets: tuple[str, ...], digests: tuple[str, ...]
    ) -> FileRecord | None:
        """The newest record of ``path`` for this destination: what ``add`` compares with."""
        rows = self._select(
            "WHERE path = ? AND out_dir = ? AND presets = ? AND digests = ?"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (_db_path(path), str(out_dir), ",".join(presets), ",".join(digests)),
        )
        return rows[0] if rows else None

    def same_content(self, record: FileRecord) -> tuple[list[FileRecord], list[FileRecord]]:
        """Other records of ``record``'s content for its destination, not failed: those
        recorded before it and those after, oldest first (a copy or a rename of a file done,
        or being done, already)."""
        assert record.content_hash is not None
        rows = self._select(
            "WHERE content_hash = ? AND out_dir = ? AND presets = ? AND digests = ?"
            " AND (state != ? OR id = ?) ORDER BY rowid",
            (
                record.content_hash,
                str(record.out_dir),
                ",".join(record.presets),
                ",".join(record.digests),
                FileState.FAILED,
                record.id,
            ),
        )
        ids = [r.id for r in rows]
        at = ids.index(record.id) if record.id in ids else len(rows)
        return rows[:at], rows[at + 1 :]

    def get(self, fid: str) -> FileRecord | None:
        rows = self._select("WHERE id = ?", (fid,))
        return rows[0] if rows else None

    def by_job(self, job_id: str) -> FileRecord | None:
        rows = self._select("WHERE job_id = ?", (job_id,))
        return rows[0] if rows else None

    def unfinished(self) -> list[FileRecord]:
        """Files a crash or stop left between steps: what a restart must resume."""
        return self._select(
            "WHERE state NOT IN (?, ?, ?) ORDER BY created_at", tuple(sorted(FINISHED))
        )

    def recent(self, limit: int = 20, state: FileState | None = None) -> list[FileRecord]:
        if state is None:
            return self._select("ORDER BY updated_at DESC LIMIT ?", (limit,))
        return self._select("WHERE state = ? ORDER BY updated_at DESC LIMIT ?", (state, limit))

    def counts(self) -> dict[FileState, int]:
        """Files by state, as ``current`` counts them."""
        rows = self.db.query(f"SELECT state, COUNT(*) FROM files WHERE {CURRENT} GROUP BY state")
        return {FileState(s): int(n) for s, n in rows}

    def current(
        self, limit: int = -1, states: tuple[FileState, ...] = (), offset: int = 0
    ) -> list[FileRecord]:
        """What a person asks about, most recently changed first: every record but the
        failed or skipped ones that a later version of their path made history (a broken
        file since fixed is done, not failed)."""
        where = CURRENT
        if states:
            where += f" AND state IN ({', '.join('?' * len(states))})"
        return self._select(
            f"WHERE {where} ORDER BY updated_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (*states, limit, offset),
        )

    def page(
        self,
        text: str = "",
        states: tuple[FileState, ...] = (),
        limit: int = 50,
        offset: int = 0,
        failed_output: bool | None = None,
    ) -> tuple[list[FileRecord], int]:
        """A page of ``current`` (newest first) whose path holds ``text``, and how many match
        in all: the dashboard's history, in SQL so ten thousand files stay one query.
        ``failed_output``: only files with (True) or without (False) a failed output."""
        where = CURRENT
        params: list[object] = []
        if text:
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where += " AND CAST(path AS TEXT) LIKE ? ESCAPE '\\'"
            params.append(f"%{escaped}%")
        if states:
            where += f" AND state IN ({', '.join('?' * len(states))})"
            params += states
        if failed_output is not None:
            where += (
                f" AND {'' if failed_output else 'NOT '}EXISTS (SELECT 1 FROM outputs AS o"
                " WHERE o.file_id = files.id AND o.status = 'failed')"
            )
        total = int(self.db.query(f"SELECT COUNT(*) FROM files WHERE {where}", tuple(params))[0][0])
        rows = self._select(
            f"WHERE {where} ORDER BY updated_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return rows, total

    def versions_of(self, path: Path) -> list[FileRecord]:
        """Every record of ``path``, oldest first."""
        return self._select("WHERE path = ? ORDER BY rowid", (_db_path(path),))

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
                content_hash=r[12],
                dev=r[13],
                ino=r[14],
                ctime_ns=r[15],
                digests=tuple(r[16].split(",")) if r[16] else (),
                same_as=r[17],
                forced=bool(r[18]),
                warning=r[19],
                created_at=r[20],
                media=json.loads(r[21]) if r[21] else None,
            )
            for r in rows
        ]

    def close(self) -> None:
        self.db.close()


def _supersede(
    conn: sqlite3.Connection,
    fid: str,
    path: Path,
    out_dir: Path,
    presets: tuple[str, ...],
    now: float,
) -> None:
    """Failed earlier versions of this path (pieces of a file taken while still being
    written, or a broken file since replaced) give way to the version just recorded: it is
    what the path holds now, so retrying them would make duplicates of it."""
    old = [
        row[0]
        for row in conn.execute(
            "SELECT id FROM files WHERE path = ? AND out_dir = ? AND presets = ? AND state = ?"
            " AND id != ?",
            (_db_path(path), str(out_dir), ",".join(presets), FileState.FAILED, fid),
        )
    ]
    _mark_superseded(conn, old, now)


def _mark_superseded(conn: sqlite3.Connection, old: list[str], now: float) -> None:
    for old_id in old:
        _allowed(conn, old_id, FileState.SKIPPED)
        conn.execute(
            "UPDATE files SET state = ?, updated_at = ?,"
            " reason = ? || ' (this version: ' || COALESCE(reason, 'failed') || ')' WHERE id = ?",
            (FileState.SKIPPED, now, SUPERSEDED, old_id),
        )
        conn.execute(
            "INSERT INTO events (file_id, at, state, detail) VALUES (?, ?, ?, ?)",
            (old_id, now, FileState.SKIPPED, SUPERSEDED),
        )


def _allowed(
    conn: sqlite3.Connection, fid: str, state: FileState, expect: FileState | None = None
) -> bool:
    """Whether file ``fid`` (inside the caller's transaction) may move to ``state``: False
    if there is no such file, or it is no longer in ``expect`` (a race, not a bug);
    ``TransitionError`` if ``TRANSITIONS`` does not allow the move."""
    row = conn.execute("SELECT state FROM files WHERE id = ?", (fid,)).fetchone()
    if row is None:
        return False
    current = FileState(row[0])
    if expect is not None and current != expect:
        return False
    if state not in TRANSITIONS[current]:
        raise TransitionError(f"file {fid}: {current} -> {state} is not a transition of the flow")
    return True


def _db_path(path: Path) -> str | bytes:
    """The path as SQLite can hold it: text, or (a name that is not UTF-8) its bytes."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text
