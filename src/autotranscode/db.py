"""SQLite as the journal and the local backend use it: shared by threads and processes.

A process's threads share one connection per database, taking turns. Each connection
keeps its own page cache, which every other connection's commit makes it read again:
with a connection per thread that cost more than our statements did, and all they
gained was reading beside a write that takes a fraction of a millisecond. WAL lets
readers and one writer work at once across processes; every change is one
transaction (a single statement, or several inside ``BEGIN IMMEDIATE``), so a crash
keeps it whole or not at all.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import AutotranscodeError

#: How long a statement waits for another process's write lock.
BUSY_TIMEOUT_SECONDS = 30.0


class Database:
    def __init__(
        self,
        path: Path,
        schema: str,
        error: Callable[[str], AutotranscodeError],
        synchronous: str = "FULL",
        *,
        check: bool = False,
        damaged_hint: str = "move it aside to start anew",
    ) -> None:
        """``check``: look at every page at open (``PRAGMA quick_check``), so a damaged file
        stops the command at once with ``damaged_hint``, rather than failing file by file
        later: 17 ms for a journal of ten thousand files (8 MB), under 0.1 ms for a small one."""
        self.path = path
        self._error = error
        self._synchronous = synchronous
        self._damaged_hint = damaged_hint
        self._conn: sqlite3.Connection | None = None
        # Threads take turns at the connection here, woken the moment it is free; at SQLite's
        # lock a writer sleeps 1, 2, 5… ms between tries. Other processes still meet there.
        self._turn = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            if check:
                problem = quick_check(conn)
                if problem is not None:
                    self.close()
                    raise error(self._damaged(problem))
            conn.executescript(schema)
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise error(self._cannot("open", exc)) from exc

    def _damaged(self, problem: str) -> str:
        return f"{self.path} is damaged ({problem}); {self._damaged_hint}"

    def _cannot(self, what: str, exc: OSError | sqlite3.Error) -> str:
        """What went wrong, with the hint that fits: a damaged file, or no permission."""
        if isinstance(exc, sqlite3.Error) and damaged(exc):
            return self._damaged(str(exc))
        if _denied(exc):
            return f"cannot {what} {self.path}: {exc}; check that --state-dir is writable"
        return f"cannot {what} {self.path}: {exc}"

    def _connect(self) -> sqlite3.Connection:
        """The process's connection, opened on first use; only ever used holding ``_turn``."""
        conn = self._conn
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            _use_wal(conn)
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            self._conn = conn
        return conn

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """``durable``: on disk when this returns, whatever ``synchronous`` is (an fsync).

        In WAL mode any commit survives the process being killed; ``synchronous=NORMAL``
        spares the fsync, so the last commits can be lost to a power cut or an OS crash.
        """
        switch = durable and self._synchronous != "FULL"
        try:
            with self._turn:
                conn = self._connect()
                if switch:
                    conn.execute("PRAGMA synchronous=FULL")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                finally:
                    if switch:
                        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        except sqlite3.Error as exc:
            raise self._error(self._cannot("write", exc)) from exc

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one moment of the file: a report's counts and its lists agree
        even while another process or thread writes (WAL readers never block writers)."""
        try:
            with self._turn:
                conn = self._connect()
                conn.execute("BEGIN")
                try:
                    yield
                finally:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(self._cannot("read", exc)) from exc

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        """One statement, atomic on its own (SQLite's autocommit); returns its rows.

        No BEGIN/COMMIT around it: a single statement cannot read, then be refused the
        write lock, which is what ``BEGIN IMMEDIATE`` guards multi-statement changes from.
        """
        try:
            with self._turn:
                return self._connect().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(self._cannot("write", exc)) from exc

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        try:
            with self._turn:
                return self._connect().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(self._cannot("read", exc)) from exc

    def add_columns(
        self, table: str, columns: Mapping[str, str], indexes: Iterable[str] = ()
    ) -> None:
        """Bring ``table``, as an older version made it, up to date: ``ADD COLUMN`` for each
        of ``columns`` (name -> type and default) it lacks, then ``indexes``. One write
        transaction, so two processes opening the file at once never both add a column."""
        with self.transaction() as conn:
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for name, sql_type in columns.items():
                if name not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")
            for statement in indexes:
                conn.execute(statement)

    def close(self) -> None:
        """Close the connection (a later use opens it again)."""
        with self._turn:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


#: SQLite's result codes for a file that is not (or no longer) a sound database.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
#: Result codes that mean we may not write where the file is.
_SQLITE_READONLY = 8
_SQLITE_CANTOPEN = 14
_SQLITE_PERM = 3


def damaged(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is broken (not busy, not forbidden)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _denied(exc: OSError | sqlite3.Error) -> bool:
    """Whether the place is the problem (no folder there, no right to write), not the file."""
    if isinstance(exc, OSError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM)


def quick_check(conn: sqlite3.Connection) -> str | None:
    """SQLite's own check of every page's structure (not of index contents: cheap enough
    for each start); None when sound, else its first finding."""
    rows = conn.execute("PRAGMA quick_check(1)").fetchall()
    first = str(rows[0][0]) if rows else "no answer from quick_check"
    if first == "ok":
        return None
    lines = [line.strip() for line in first.replace("*** in database main ***", "").splitlines()]
    return "; ".join(line for line in lines if line)


def _use_wal(conn: sqlite3.Connection) -> None:
    """WAL is a property of the file; switching needs a moment alone with it, so retry."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
