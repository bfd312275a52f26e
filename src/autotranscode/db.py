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
from collections.abc import Callable, Iterator
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
    ) -> None:
        self.path = path
        self._error = error
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        # Threads take turns at the connection here, woken the moment it is free; at SQLite's
        # lock a writer sleeps 1, 2, 5… ms between tries. Other processes still meet there.
        self._turn = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connect().executescript(schema)
        except (OSError, sqlite3.Error) as exc:
            raise error(f"cannot open {path}: {exc}; check that --state-dir is writable") from exc

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
            raise self._error(f"cannot write {self.path}: {exc}") from exc

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        """One statement, atomic on its own (SQLite's autocommit); returns its rows.

        No BEGIN/COMMIT around it: a single statement cannot read, then be refused the
        write lock, which is what ``BEGIN IMMEDIATE`` guards multi-statement changes from.
        """
        try:
            with self._turn:
                return self._connect().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(f"cannot write {self.path}: {exc}") from exc

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        try:
            with self._turn:
                return self._connect().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(f"cannot read {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (a later use opens it again)."""
        with self._turn:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


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
