"""Checking the journal, and starting a new one from the output folders when it is damaged.

The journal is the only record of what was done; the outputs carry their own stamps
(``stamps``), so a new journal can be told what OUT holds. ``rebuild`` never deletes the
damaged file: it is set aside under a dated name, for whoever wants to look into it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import pathname2url

from . import keys, outbox
from .backends import ObjectStore
from .db import damaged
from .errors import ConfigError, JournalError, StorageError
from .journal import FileState, Journal
from .media import presets

log = logging.getLogger(__name__)

#: The files SQLite keeps beside a database in WAL mode; they go with it when it is moved.
_COMPANIONS = ("-wal", "-shm")


def check(path: Path) -> str | None:
    """What is wrong with the journal at ``path`` (SQLite's full integrity check), or None.

    Read-only: a check changes nothing, not even a missing file (which is sound: new).
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    uri = f"file:{pathname2url(str(path.absolute()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            rows = conn.execute("PRAGMA integrity_check(10)").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if damaged(exc):
            return str(exc)
        raise JournalError(f"journal: cannot read {path}: {exc}") from exc
    found = [str(r[0]).replace("*** in database main ***", "").strip() for r in rows]
    found = [line for text in found for line in text.splitlines() if line.strip()]
    return None if found == ["ok"] else "; ".join(found)


@dataclass
class Rebuilt:
    """What ``rebuild`` did, for the command to print."""

    moved_to: Path | None = None
    recorded: list[Path] = field(default_factory=list)
    removed_objects: int = 0


def rebuild(
    path: Path,
    out_dirs: list[Path],
    store: ObjectStore | None,
    force: bool = False,
    *,
    catalog: presets.Catalog,
) -> Rebuilt:
    """Set the journal aside, start a new one, and record as done what ``out_dirs`` hold.

    ``store``: the local store, whose objects belonged to the old journal's files and
    would otherwise stay forever (on aws, ``cleanup`` removes a client's orphans).
    ``catalog``: the presets whose ids the stamps' digests are matched back to.
    """
    done = Rebuilt()
    problem = check(path)
    if problem is None and not force and path.exists() and path.stat().st_size:
        raise ConfigError(f"the journal {path} is sound; pass --force to rebuild it anyway")
    if path.exists():
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        done.moved_to = path.with_name(f"{path.name}.damaged-{stamp}")
        for suffix in ("", *_COMPANIONS):
            old = path.with_name(path.name + suffix)
            if old.exists():
                os.replace(old, done.moved_to.with_name(done.moved_to.name + suffix))
    journal = Journal(path)
    try:
        ids = {presets.digest(p): p.id for p in catalog.all()}
        for out_dir in out_dirs:
            out_dir = out_dir.resolve()
            for output, found in outbox.stamped(out_dir):
                _record(journal, out_dir, output, ids.get(found.preset, found.preset))
                done.recorded.append(output)
    finally:
        journal.close()
    if store is not None:
        done.removed_objects = _empty(store)
    return done


def _record(journal: Journal, out_dir: Path, output: Path, preset_id: str) -> None:
    """An output as a finished file: ``status`` counts it, the pipeline finds its stamp."""
    st = output.stat()
    fid = keys.file_id(f"rebuilt\0{output.relative_to(out_dir)}", str(out_dir))
    _, created = journal.record(fid, output, out_dir, (preset_id,), st.st_size, st.st_mtime_ns)
    if created:
        journal.advance(
            fid, FileState.CLEANED, outputs={preset_id: str(output)}, detail="rebuilt from OUT"
        )


def _empty(store: ObjectStore) -> int:
    """Remove the inputs and outputs the old journal's files left in the store."""
    removed = 0
    for bucket, prefix in (
        (store.input_bucket, keys.INPUT_PREFIX),
        (store.output_bucket, keys.OUTPUT_PREFIX),
    ):
        try:
            removed += store.delete_prefix(bucket, prefix)
        except StorageError as exc:
            log.warning("objects left in %s: %s", bucket, exc)
    return removed
