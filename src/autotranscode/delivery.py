"""How a job's outputs get from the store into their folder in OUT, and what follows them.

The pipeline decides when (``_download``, ``_clean``) and records each step; this module
does the writing: the folder made (under OUT, as the source's folder is under DROP when a
tree is kept; never through a symlink), each object fetched to a temp name and placed
under a name nobody uses (``outbox``), and the source's sidecars copied beside them
(``sidecars``).
"""

from __future__ import annotations

from pathlib import Path

from . import outbox, sidecars
from .backends import ObjectStore
from .errors import OutputError, UnsafeFolder
from .journal import FileRecord
from .progress import ByteProgress, Subscriber
from .text import shown


def make_folder(root: Path, record: FileRecord) -> None:
    """The record's folder in OUT (``root``, or a subfolder of it for a tree), made as
    needed; UnsafeFolder if a part is a symlink (a record from another OUT: its folder as
    it is)."""
    try:
        outbox.make_folder(root, record.out_dir)
    except UnsafeFolder:
        raise
    except OSError as exc:  # permissions, a full disk: retried, as any write into OUT
        reason = exc.strerror or exc
        raise OutputError(f"cannot make {shown(str(record.out_dir))}: {reason}") from exc


def fetch(
    store: ObjectStore, hooks: Subscriber, record: FileRecord, key: str, tmp: Path, final: Path
) -> Path:
    """Output ``key`` (an object, or a folder of them: HLS, thumbnails) to ``tmp``, then
    placed at ``final`` or a free variant of it; where it went."""
    bucket = store.output_bucket
    files = store.keys(bucket, f"{key}/")
    if not files:  # one object
        size = store.size(bucket, key)
        store.download(bucket, key, tmp, ByteProgress(hooks, record.path, "downloading", size))
        return outbox.place(tmp, final)
    tmp.mkdir()
    progress = ByteProgress(hooks, record.path, "downloading", len(files))
    for name in files:
        dest = tmp / name.removeprefix(f"{key}/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.download(bucket, name, dest)
        progress(1)
    return outbox.place_folder(tmp, final)


def already_placed(store: ObjectStore, key: str, final: Path) -> bool:
    """Whether output ``key`` is at ``final`` already (a crash came between the move and
    the journal)."""
    if final.is_dir():
        return True
    return final.is_file() and final.stat().st_size == store.size(store.output_bucket, key)


def sidecar_warning(record: FileRecord, patterns: tuple[str, ...]) -> str | None:
    """Copy the source's sidecars beside its delivered outputs; what went wrong, in one line."""
    outputs = [Path(p) for p in record.outputs.values() if Path(p).is_absolute()]
    warnings = sidecars.follow(record.path, outputs, patterns, record.job_id)
    return "; ".join(warnings) or None
