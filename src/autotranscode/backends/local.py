"""The embedded default: a store folder and SQLite queues under the state dir.

It keeps SQS's semantics (visibility leases, receive counts, a dead-letter
queue), so the pipeline and workers behave the same on both backends, and
several processes sharing one state dir (``run`` plus ``worker``) work too.
Inputs are copied into the store (a reflink where the filesystem can): a snapshot, as
a hard link to the source would let a later rewrite of the source change the job's
input. Outputs are renamed or hard-linked into place, never copied when avoidable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import keys
from ..db import Database
from ..errors import ObjectMissing, QueueError, StorageError
from ..files import snapshot
from ..procs import CRASHES_FOLDER, pid_alive
from ..settings import Settings
from .base import Backend, MessageQueue, ObjectStore, ProgressCallback, Received, Topic
from .doorbell import Bell, Bells, Doorbells

log = logging.getLogger(__name__)

#: How often a waiting receive looks again on its own. Sends wake receivers at once (of this
#: backend through the queue's ``Bell``, of others through their doorbells), so this is a
#: safety net: every wake-up costs CPU, even with nothing to do.
POLL_SECONDS = 1.0
#: Where doorbells cannot be made (a filesystem without FIFOs), receivers look this often,
#: well under the 0.2 s completion-latency goal.
FALLBACK_POLL_SECONDS = 0.05
#: How often receivers look for leases held by dead processes.
RECLAIM_INTERVAL_SECONDS = 1.0
#: Columns added since the first release, and their SQL types (created on open if missing).
_ADDED_COLUMNS = {"note": "TEXT"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at REAL NOT NULL,
    receives INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    owner INTEGER,
    note TEXT
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at);
"""


class SqliteQueue(MessageQueue):
    def __init__(
        self,
        db: Database,
        name: str,
        visibility: float,
        max_receives: int | None = None,
        dead_letters: str | None = None,
        doorbells: Doorbells | None = None,
        crashes: Path | None = None,
        bell: Bell | None = None,
    ) -> None:
        """``bell``: where this queue's receivers wait, rung by its sends (the backend's, for
        the queue of that name); ``doorbells``: rung too, for other backends' receivers."""
        self.db = db
        self.doorbells = doorbells
        self.crashes = crashes
        self.name = name
        self.visibility = visibility
        self.max_receives = max_receives
        self.dead_letters = dead_letters
        self._next_reclaim = 0.0
        self._bell = bell or Bell()

    def send(self, body: str, reason: str | None = None) -> None:
        self.db.execute(
            "INSERT INTO messages (queue, body, visible_at, note) VALUES (?, ?, ?, ?)",
            (self.name, body, time.time(), reason),
        )
        self._bell.ring()
        if self.doorbells is not None:
            self.doorbells.ring()

    def receive(
        self, wait: float, max_messages: int = 1, cancel: threading.Event | None = None
    ) -> list[Received]:
        deadline = time.monotonic() + max(wait, 0)
        cancel = cancel or threading.Event()
        rung = self.doorbells is not None and wait > 0 and self.doorbells.listen()
        poll = POLL_SECONDS if rung else FALLBACK_POLL_SECONDS
        bell = self._bell
        while True:
            seen = bell.rings
            got = self._take(max_messages)
            if got or time.monotonic() >= deadline or cancel.is_set():
                return got
            with bell.cond:
                if bell.rings == seen:  # else a send came while we looked: look again now
                    bell.cond.wait(min(poll, max(deadline - time.monotonic(), 0)))

    def _reclaim(self, now: float) -> None:
        """Leases held by processes that no longer exist end now, not at their expiry.

        The local backend lives on one machine, so a dead owner (killed with -9, say)
        is certain; this is what makes a restart resume a killed job at once. A kill is
        not the job's fault (Ctrl+C twice, a reboot, ``kill -9`` of ``run``): its receive is
        given back, unless the process left a crash record (a segfault or an abort, which
        the job may well have caused), when it counts as an attempt and says why.
        """
        if now < self._next_reclaim:
            return
        self._next_reclaim = now + RECLAIM_INTERVAL_SECONDS
        # Any queue's rows name their holder (a lease, even an expired one, until it ends
        # with a delete, release or hand-back): one dead owner's leases go back together.
        rows = self.db.query(
            "SELECT DISTINCT owner FROM messages WHERE queue = ? AND owner IS NOT NULL",
            (self.name,),
        )
        for (owner,) in rows:
            if isinstance(owner, int) and owner != os.getpid() and not pid_alive(owner):
                crash = self._crash_of(owner)
                log.info(
                    "%s: taking back the messages of dead process %s%s",
                    self.name,
                    owner,
                    f" ({crash})" if crash else "",
                )
                self.db.execute(
                    "UPDATE messages SET visible_at = MIN(visible_at, ?), owner = NULL,"
                    " receipt = NULL, receives = CASE WHEN ? THEN receives"
                    " ELSE MAX(receives - 1, 0) END, note = COALESCE(?, note) WHERE owner = ?",
                    (now, crash is not None, crash, owner),
                )
                if self.crashes is not None:
                    with contextlib.suppress(OSError):
                        (self.crashes / f"{owner}.log").unlink()

    def _crash_of(self, pid: int) -> str | None:
        """Why process ``pid`` died, if it left a crash record (see ``procs.crash_record``)."""
        if self.crashes is None:
            return None
        try:
            text = (self.crashes / f"{pid}.log").read_text(errors="replace")
        except OSError:
            return None
        return crash_reason(text) if text.strip() else None

    def _take(self, max_messages: int) -> list[Received]:
        now = time.time()
        self._reclaim(now)
        # A read first: an empty poll then costs no write lock, which senders wait for.
        if not self.db.query(
            "SELECT 1 FROM messages WHERE queue = ? AND visible_at <= ? LIMIT 1", (self.name, now)
        ):
            return []
        receipt = uuid.uuid4().hex
        with self.db.transaction() as conn:
            if self.max_receives is not None and self.dead_letters:
                # SQS's redrive: a message received max_receives times without delete is dead.
                conn.execute(
                    "UPDATE messages SET queue = ?, receives = 0, receipt = NULL, owner = NULL"
                    " WHERE queue = ? AND visible_at <= ? AND receives >= ?",
                    (self.dead_letters, self.name, now, self.max_receives),
                )
            rows = conn.execute(
                "UPDATE messages SET visible_at = ?, receives = receives + 1, receipt = ?,"
                " owner = ? WHERE seq IN (SELECT seq FROM messages WHERE queue = ?"
                " AND visible_at <= ? ORDER BY seq LIMIT ?) RETURNING seq, body, receives, note",
                (now + self.visibility, receipt, os.getpid(), self.name, now, max_messages),
            ).fetchall()
        return [
            Received(
                str(body), f"{seq}:{receipt}", int(str(n)), note if note is None else str(note)
            )
            for seq, body, n, note in rows
        ]

    def _where(self, message: Received) -> tuple[object, ...]:
        seq, _, receipt = message.receipt.partition(":")
        return (int(seq), receipt)

    def extend(self, message: Received, seconds: float) -> None:
        self.db.execute(
            "UPDATE messages SET visible_at = ? WHERE seq = ? AND receipt = ?",
            (time.time() + seconds, *self._where(message)),
        )

    def release(self, message: Received) -> None:
        self.db.execute(
            "UPDATE messages SET visible_at = ?, owner = NULL WHERE seq = ? AND receipt = ?",
            (time.time(), *self._where(message)),
        )
        self._bell.ring()

    def hand_back(self, message: Received) -> None:
        self.db.execute(
            "UPDATE messages SET visible_at = ?, owner = NULL, receipt = NULL,"
            " receives = MAX(receives - 1, 0) WHERE seq = ? AND receipt = ?",
            (time.time(), *self._where(message)),
        )
        self._bell.ring()
        if self.doorbells is not None:
            self.doorbells.ring()

    def holds(self, job_id: str) -> bool:
        """Job ids are random (uuid4 hex): a body holding one as a JSON string is about it."""
        rows = self.db.query(
            "SELECT 1 FROM messages WHERE queue = ? AND instr(body, ?) > 0 LIMIT 1",
            (self.name, f'"{job_id}"'),
        )
        return bool(rows)

    def delete(self, message: Received) -> None:
        self.db.execute("DELETE FROM messages WHERE seq = ? AND receipt = ?", self._where(message))

    #: A waiting message about a job: one nobody holds, whose body names the job (ids are
    #: random hex, so a body holding one as a JSON string is about it).
    _WAITING_JOB = "queue = ? AND visible_at <= ? AND instr(body, ?) > 0"

    def waiting(self) -> list[str]:
        rows = self.db.query(
            "SELECT json_extract(body, '$.jobId') FROM messages WHERE queue = ?"
            " AND visible_at <= ? ORDER BY seq",
            (self.name, time.time()),
        )
        return [str(job_id) for (job_id,) in rows if isinstance(job_id, str)]

    def to_front(self, job_id: str) -> bool:
        """A sequence number below every other: ``_take`` takes in that order."""
        with self.db.transaction() as conn:
            moved = conn.execute(
                "UPDATE messages SET seq = (SELECT MIN(seq) - 1 FROM messages)"
                f" WHERE seq = (SELECT seq FROM messages WHERE {self._WAITING_JOB} LIMIT 1)",
                (self.name, time.time(), f'"{job_id}"'),
            ).rowcount
        return moved > 0

    def withdraw(self, job_id: str) -> bool:
        with self.db.transaction() as conn:
            gone = conn.execute(
                f"DELETE FROM messages WHERE {self._WAITING_JOB}",
                (self.name, time.time(), f'"{job_id}"'),
            ).rowcount
        return gone > 0

    def wake(self) -> None:
        self._bell.ring()

    def count(self) -> int:
        rows = self.db.query("SELECT COUNT(*) FROM messages WHERE queue = ?", (self.name,))
        return int(str(rows[0][0]))


class SqliteTopic(Topic):
    """A topic with exactly one subscriber: the notification queue."""

    def __init__(self, arn: str, subscriber: SqliteQueue) -> None:
        self.arn = arn
        self._subscriber = subscriber

    def publish(self, body: str, client: str | None = None) -> None:
        """One state dir, one client: every notification is its own."""
        self._subscriber.send(body)


#: S3's rule for bucket names, which also keeps a name a single plain folder name.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class FolderStore(ObjectStore):
    """Buckets are folders; keys are relative paths under them (already validated upstream)."""

    input_bucket = "input"
    output_bucket = "output"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._bases: dict[str, str] = {}

    def _base(self, bucket: str) -> str:
        """Bucket names are checked like keys: here a name becomes a path, so ``..``, a
        slash or an absolute name would reach outside the store."""
        base = self._bases.get(bucket)
        if base is None:
            if not _BUCKET.match(bucket) or ".." in bucket:
                raise StorageError(f"bucket name {bucket!r} is not a plain bucket name")
            base = self._bases[bucket] = os.path.normpath(self.root.absolute() / bucket)
        return base

    def _path(self, bucket: str, key: str) -> Path:
        """Lexical containment check: keys are validated upstream and the store holds no
        symlinks, so resolving every path (an lstat per component) would only cost time."""
        base = self._base(bucket)
        path = os.path.normpath(os.path.join(base, key))
        if not path.startswith(base + os.sep):
            raise StorageError(f"key {key!r} escapes the store")
        return Path(path)

    def upload(
        self, path: Path, bucket: str, key: str, progress: ProgressCallback | None = None
    ) -> None:
        self._copy_in(path, bucket, key, progress)

    def take(
        self, path: Path, bucket: str, key: str, progress: ProgressCallback | None = None
    ) -> str:
        """Copy once, then hash the copy: the hash is of exactly what will be transcoded, and
        the copy is ours, so it is read through mmap (a user's file could be cut short under
        a mapping, which kills the process)."""
        dest = self._copy_in(path, bucket, key, progress)
        try:
            return keys.content_hash(dest, mapped=True)
        except OSError as exc:
            raise StorageError(f"cannot read {key} back from {self.root}: {exc}") from exc

    def _copy_in(
        self, path: Path, bucket: str, key: str, progress: ProgressCallback | None
    ) -> Path:
        dest = self._path(bucket, key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            snapshot(path, dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                dest.unlink()  # a partial copy would only keep the disk full
            raise StorageError(
                f"cannot store {path.name} in {self.root}: {exc.strerror or exc}"
            ) from exc
        if progress:
            progress(dest.stat().st_size)
        return dest

    def put(self, path: Path, bucket: str, key: str) -> None:
        dest = self._path(bucket, key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
        except OSError:
            try:
                shutil.move(path, dest)
            except OSError as exc:
                raise StorageError(f"cannot store output {key}: {exc}") from exc

    def download(
        self, bucket: str, key: str, dest: Path, progress: ProgressCallback | None = None
    ) -> None:
        src = self._path(bucket, key)
        if not src.is_file():
            raise ObjectMissing(f"object {bucket}/{key} does not exist")
        try:
            _link_or_copy(src, dest)
        except OSError:
            dest.unlink(missing_ok=True)
            raise  # dest is the caller's folder (OUT): the pipeline reports it (OutputError)
        if progress:
            progress(dest.stat().st_size)

    @contextmanager
    def local_path(self, bucket: str, key: str, workdir: Path) -> Iterator[Path]:
        path = self._path(bucket, key)
        if not path.is_file():
            raise ObjectMissing(f"object {bucket}/{key} does not exist")
        yield path

    def size(self, bucket: str, key: str) -> int:
        try:
            return self._path(bucket, key).stat().st_size
        except OSError as exc:
            raise ObjectMissing(f"object {bucket}/{key} does not exist") from exc

    def delete(self, bucket: str, key: str) -> None:
        try:
            self._path(bucket, key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key}: {exc.strerror or exc}") from exc

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        keys = self.keys(bucket, prefix)
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                self._path(bucket, key).unlink()
        base = self.root / bucket
        for parent in sorted({(base / k).parent for k in keys}, key=lambda p: -len(p.parts)):
            while parent != base and parent.is_relative_to(base):
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
        return len(keys)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Walks only the folder the prefix names, not the whole bucket."""
        base = Path(self._base(bucket))
        folder = prefix.rpartition("/")[0]
        start = self._path(bucket, folder) if folder else base
        found = []
        for dirpath, _, files in os.walk(start):
            rel = Path(dirpath).relative_to(base).as_posix()
            keys = (f if rel == "." else f"{rel}/{f}" for f in files)
            found += [k for k in keys if k.startswith(prefix)]
        return sorted(found)


#: What faulthandler's first line names, as ``signal`` names it (the record says which).
_FATAL = re.compile(r"Fatal Python error: ([^\n]+)")


def crash_reason(record: str) -> str:
    """The reason a crashed worker's jobs carry, from its faulthandler record."""
    found = _FATAL.search(record)
    what = found.group(1).strip() if found else "a fatal error"
    return f"the worker crashed ({what}) while running this job"


def _link_or_copy(src: Path, dest: Path) -> None:
    """Hard link when on one filesystem (free, instant); copy otherwise."""
    try:
        os.link(src, dest)
    except FileExistsError:
        dest.unlink()
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


class LocalBackend(Backend):
    kind = "local"

    def __init__(self, root: Path, visibility: float, max_attempts: int) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.db = Database(
                root / "queues.db",
                _SCHEMA,
                lambda msg: QueueError(f"local queues: {msg}"),
                synchronous="NORMAL",
            )
        except OSError as exc:
            raise StorageError(f"cannot use state dir {root}: {exc}") from exc
        self.db.add_columns("messages", _ADDED_COLUMNS)
        crashes = root / CRASHES_FOLDER
        self.store = FolderStore(root / "store")
        #: Where this backend's receivers wait, per queue; its doorbell rings them all.
        self.bells = Bells()
        self.doorbells = Doorbells(root / "doorbells", self.bells.ring_all)
        doorbells = self.doorbells
        self.dead_letters = SqliteQueue(
            self.db,
            "jobs-dlq",
            visibility,
            doorbells=doorbells,
            crashes=crashes,
            bell=self.bells.of("jobs-dlq"),
        )
        # One receive more than the attempts: the worker that sees it reports the failure.
        self.jobs = SqliteQueue(
            self.db,
            "jobs",
            visibility,
            max_attempts + 1,
            "jobs-dlq",
            doorbells=doorbells,
            crashes=crashes,
            bell=self.bells.of("jobs"),
        )
        self.notifications = SqliteQueue(
            self.db,
            "notifications",
            10.0,
            doorbells=doorbells,
            crashes=crashes,
            bell=self.bells.of("notifications"),
        )
        self.topic = SqliteTopic(f"local:{root}", self.notifications)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalBackend:
        return cls(settings.state_dir, settings.visibility_timeout, settings.max_attempts)

    def open_notification(self, body: str) -> str:
        return body

    def close(self) -> None:
        self.doorbells.close()
        self.db.close()
