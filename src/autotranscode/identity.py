"""Whether a file's work is done already, and what it is done as: the pipeline asks before
it records a file and once its snapshot is taken.

A record is one version of one file (its path, and the stat of what was taken) bound for
one destination (OUT and what each preset makes, its digest); once the snapshot is taken,
its content (BLAKE3) decides. Content done before (a rename, the same name written again
with what it held, a copy under another name) or whose outputs OUT holds already (a
journal lost since) is not transcoded again. The pipeline acts on these answers; nothing
here moves a file to another state.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from . import files, keys, outbox
from .errors import MediaError, OutputError
from .journal import FileRecord, FileState, Journal
from .media import presets


def destination(out_dir: Path, preset_ids: tuple[str, ...], digests: tuple[str, ...]) -> str:
    """Where outputs go and what they are: OUT, and each preset's id and digest."""
    made = ",".join(f"{p}={d}" for p, d in zip(preset_ids, digests, strict=True))
    return f"{out_dir}\0{made}"


def version_id(path: Path, st: os.stat_result, dest: str, force: bool) -> str:
    """The file id of this version of ``path`` for ``dest``; ``force``: a new one each time,
    so a file done before is done again."""
    version = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    if force:
        version += f":forced:{uuid.uuid4().hex}"
    return keys.file_id(f"{path}\0{version}", dest)


def done_by_an_older_release(
    journal: Journal, path: Path, out_dir: Path, preset_ids: tuple[str, ...], st: os.stat_result
) -> FileRecord | None:
    """A file a journal from before content hashes has done, unchanged (size, mtime):
    without this an upgrade would transcode every kept source again, into "(1)" names."""
    old = journal.latest(path, out_dir, preset_ids, ())
    if old is None or old.content_hash is not None or old.state != FileState.CLEANED:
        return None
    if (old.size, old.mtime_ns) != (st.st_size, st.st_mtime_ns):
        return None
    return old


def in_out(catalog: presets.Catalog, record: FileRecord, source_hash: str) -> dict[str, str] | None:
    """The outputs OUT holds already for this file (by preset id), made by these presets
    from this content; None unless every one is there."""
    names = outbox.output_names(catalog, "-", record.path, record.presets)
    wanted = [
        (name, presets.digest(catalog.get(p)))
        for name, p in zip(names.values(), record.presets, strict=True)
    ]
    found = outbox.already_delivered(record.out_dir, wanted, source_hash)
    if found is None:
        return None
    return {p: str(path) for p, path in zip(record.presets, found, strict=True)}


def same_content(journal: Journal, record: FileRecord) -> tuple[list[FileRecord], bool]:
    """The other records of ``record``'s content for its destination, oldest first, and
    whether they are the same file (renamed: same device and inode; or the same name
    written again with what it held), whose outputs are this one's; if there is none
    such, the copies under other names, whose outputs it gets a copy of."""
    older, newer = journal.same_content(record)
    others = older + newer
    same = [o for o in others if (o.dev, o.ino) == (record.dev, record.ino)]
    same += [o for o in others if o.path == record.path and o not in same]
    return (same, True) if same else (others, False)


def reusable(record: FileRecord) -> bool:
    """Done, every output made (not partly done), and its outputs still in OUT."""
    return (
        record.state == FileState.CLEANED
        and bool(record.outputs)
        and len(record.outputs) == len(record.presets)
        and all(Path(p).exists() for p in record.outputs.values())
    )


def copy_outputs(journal: Journal, record: FileRecord, other: FileRecord) -> dict[str, str] | None:
    """Give ``record`` a copy of each of ``other``'s outputs (same content, same presets),
    placed as its own outputs are: temp name in OUT, then a name nobody uses; each recorded
    as it is placed, so a crash never places one twice. The outputs placed, by key.

    None (nothing placed) if one of them cannot be read: then it is transcoded.
    """
    assert record.job_id is not None
    outbox.remove_parts(record.out_dir, record.job_id)
    theirs = list(other.outputs.values())
    if len(theirs) != len(record.outputs):
        return None
    placed: dict[str, str] = {}
    for (key, target), src in zip(record.outputs.items(), theirs, strict=True):
        final = Path(target)
        if final.is_absolute() and final.exists():
            placed[key] = target  # placed before a crash, recorded, not finished
            continue
        final = outbox.free_name(record.out_dir / final.name)
        tmp = outbox.temp_path(record.out_dir, final.name, record.job_id)
        try:
            if Path(src).is_dir():
                files.snapshot_tree(Path(src), tmp)
                final = outbox.place_folder(tmp, final)
            else:
                files.snapshot(Path(src), tmp)
                final = outbox.place(tmp, final)
        except FileNotFoundError:  # deleted from OUT meanwhile: transcode after all
            outbox.remove(tmp)
            for made in placed.values():
                outbox.remove(Path(made))  # copies made just now, so they are transcoded too
            journal.advance(record.id, record.state, outputs=record.outputs)
            return None
        except OSError as exc:
            outbox.remove(tmp)
            reason = exc.strerror or exc
            raise OutputError(f"cannot write into {record.out_dir}: {reason}") from exc
        placed[key] = str(final)
        journal.advance(record.id, record.state, outputs={**record.outputs, **placed}, durable=True)
    return placed


def source_stat(path: Path) -> os.stat_result:
    """The source as it is before it is taken; MediaError if it cannot be."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise MediaError("the file was deleted before it could be uploaded") from exc
    except OSError as exc:
        raise MediaError(f"cannot read the file: {exc.strerror or exc}") from exc
    if st.st_size == 0:
        raise MediaError("the file is empty")
    try:  # a stat needs no read permission: say so plainly, before a probe garbles it
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        raise MediaError(f"cannot read the file: {exc.strerror or exc}") from exc
    return st


def held_still(path: Path, before: os.stat_result) -> bool:
    """Nothing wrote to, replaced or renamed over ``path`` since ``before`` (ctime moves on
    every write, even one that puts the old size and mtime back)."""
    try:
        after = path.stat()
    except OSError:
        return False
    return _version(after) == _version(before)


def _version(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
