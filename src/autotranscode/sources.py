"""What becomes of a dropped file once its outputs are delivered (``--on-success``), and a
failed one put back at the start: the only code that moves or deletes a user's source."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from . import keys, outbox
from .journal import FileRecord, Journal

log = logging.getLogger(__name__)

#: ``--on-success move`` puts sources here, beside them (and ``run`` does not watch it).
DONE_FOLDER = "done"


def after_delivery(record: FileRecord, on_success: str) -> str | None:
    """--on-success move|delete, only once the outputs are on disk, and only if the source
    is still the version transcoded (never a newer file under its name). Returns a warning
    for the delivered file when the source had to stay where it is."""
    if on_success == "keep":
        return None
    try:
        st = record.path.stat()
    except FileNotFoundError:
        return None
    if (st.st_size, st.st_mtime_ns) != (record.size, record.mtime_ns):
        log.warning("%s changed since it was transcoded; left in place", record.name)
        return None
    try:
        outbox.sync(Path(p) for p in record.outputs.values())
    except OSError as exc:
        return f"outputs not on disk ({exc}); the source is left in place"
    # The outputs are delivered: from here on a failure is a warning on a done file, never
    # a failed one (a retry would only make a second copy of what is in OUT).
    try:
        if on_success == "delete":
            record.path.unlink(missing_ok=True)
            return None
        done_dir = record.path.parent / DONE_FOLDER
        done_dir.mkdir(exist_ok=True)
        record.path.rename(outbox.free_name(done_dir / record.path.name))
    except OSError as exc:
        what = "deleted" if on_success == "delete" else f"moved into {DONE_FOLDER}/"
        return f"the source could not be {what} ({exc.strerror or exc}); it is left in place"
    return None


def reset_failed(journal: Journal, record: FileRecord) -> None:
    """Put a failed file back at the start, as it is on disk now."""
    try:
        st = record.path.stat()
        size, mtime_ns = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime_ns = 0, 0  # the upload step reports what is wrong with it
    journal.reset(record.id, record.path, size, mtime_ns)


def skip(journal: Journal, out: Path, preset_ids: tuple[str, ...], path: Path, reason: str) -> str:
    """Record a path in DROP that is not taken (``reason``: "a FIFO", "a dangling link"…)
    as SKIPPED, once: ``status`` shows it, and it is neither a failure nor retried."""
    path = Path(os.path.abspath(path))
    out_dir = out.resolve()
    fid = keys.file_id(f"skipped:{path}\0{reason}", f"{out_dir}\0{','.join(preset_ids)}")
    _, created = journal.record(fid, path, out_dir, preset_ids, 0, 0)
    if created:
        journal.skip(fid, f"{reason}; only regular files are taken")
        log.warning("%s: skipped: %s; only regular files are taken", path.name, reason)
    return fid
