"""What an output folder already holds, told by the stamps on its files (see ``stamps``).

The journal decides what is done; but when it is lost or damaged, a file taken again
would be transcoded once more, under ``name (1).mp4`` beside its first output. Before a
new file is sent, the pipeline asks ``already_delivered``: an output with this source's
content hash and this preset's digest under the name it would get (or a ``name (n)``
variant of it) means the work was done. ``journal rebuild`` lists a folder's outputs
with ``stamped``.

It also holds how the pipeline writes into OUT: under a hidden temp name, then linked or
renamed to a name nobody uses (``name (1).ext``…), never over a file, never half; and
on disk (``sync``) before a source goes.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from . import keys
from .errors import UnsafeFolder
from .media import presets
from .media.probe import read_stamp
from .media.stamps import Stamp
from .text import shown

log = logging.getLogger(__name__)

#: Temporary names in OUT end with this, so watchers (ours included) ignore them; never an
#: output.
PART_SUFFIX = ".autotranscode-part"


def already_delivered(
    out_dir: Path, wanted: Sequence[tuple[str, str]], source_hash: str
) -> list[Path] | None:
    """The outputs in ``out_dir`` for each (file name, preset digest) in ``wanted``, made
    from content ``source_hash``; None unless every one of them is there."""
    try:
        present = [e.name for e in os.scandir(out_dir)]
    except OSError:
        return None
    found = []
    for name, digest in wanted:
        path = _find(out_dir, present, name, Stamp(source_hash, digest))
        if path is None:
            return None
        found.append(path)
    return found


def _find(out_dir: Path, present: list[str], name: str, stamp: Stamp) -> Path | None:
    """``name`` or a ``stem (n).ext`` variant (``free_name``) carrying ``stamp``."""
    stem, suffix = Path(name).stem, Path(name).suffix
    variant = re.compile(rf"{re.escape(stem)}(?: \((\d+)\))?{re.escape(suffix)}")
    candidates = []
    for entry in present:
        match = variant.fullmatch(entry)
        if match is not None:
            candidates.append((int(match.group(1) or 0), entry))
    for _, entry in sorted(candidates):
        if read_stamp(out_dir / entry) == stamp:
            return out_dir / entry
    return None


def stamped(out_dir: Path) -> Iterator[tuple[Path, Stamp]]:
    """Every output of ours in ``out_dir`` and, as ``--recursive`` keeps trees there, in its
    subfolders, with its stamp. A stamped folder is one output (HLS, thumbnails), not
    searched further; hidden entries, temp files and symlinks are passed over."""
    folders = [out_dir]
    while folders:
        folder = folders.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc)
            continue
        for entry in entries:
            hidden = entry.name.startswith(".") or entry.name.endswith(PART_SUFFIX)
            if hidden or entry.is_symlink():
                continue
            stamp = read_stamp(Path(entry.path))
            if stamp is not None:
                yield Path(entry.path), stamp
            elif entry.is_dir(follow_symlinks=False):
                folders.append(Path(entry.path))


def output_names(
    catalog: presets.Catalog, job_id: str, path: Path, preset_ids: tuple[str, ...]
) -> dict[str, str]:
    """Each output's object key -> its file name in OUT (before any name clash there)."""
    wanted = [catalog.get(p) for p in preset_ids]
    multiple = len(wanted) > 1
    return {
        keys.output_key(job_id, path.stem, p.id, p.extension): keys.output_name(
            path.stem, p.extension, p.id, multiple
        )
        for p in wanted
    }


def temp_path(out_dir: Path, name: str, job_id: str | None) -> Path:
    """Where an output named ``name`` is written before it is placed: hidden, marked with
    its job id (``remove_parts`` finds it) and PART_SUFFIX. At most 100 bytes of ``name``,
    whole characters: the dot, the job id, the suffix (and s3transfer's own 9 bytes) must
    stay within NAME_MAX (255)."""
    clipped = name.encode("utf-8", "surrogateescape")[:100].decode("utf-8", "ignore")
    return out_dir / f".{clipped}.{job_id}{PART_SUFFIX}"


def remove_parts(folder: Path, job_id: str | None) -> None:
    """Temp files of an interrupted download (s3transfer's ``NAME.<random>`` ones too)."""
    mark = f".{job_id}{PART_SUFFIX}"
    try:
        names = [e.name for e in os.scandir(folder) if e.name.startswith(".") and mark in e.name]
    except OSError:
        return
    for name in names:
        remove(folder / name)


def free_name(path: Path) -> Path:
    """``path``, or ``name (1).ext``… if taken: an existing output is never overwritten."""
    candidate, n = path, 0
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate


def place(tmp: Path, final: Path) -> Path:
    """Link the finished temp file to its final name without ever replacing a file there."""
    while True:
        try:
            os.link(tmp, final)
        except FileExistsError:
            final = free_name(final)
            continue
        except OSError:
            if final.exists():
                final = free_name(final)
                continue
            os.replace(tmp, final)  # no hard links here (some network shares): rename instead
            return final
        tmp.unlink()
        return final


def place_folder(tmp: Path, final: Path) -> Path:
    """Rename a finished folder into place under a name nobody uses."""
    while True:
        final = free_name(final)
        try:
            os.rename(tmp, final)
        except OSError:
            if final.exists():
                continue  # taken between the check and the rename
            raise
        return final


def make_folder(root: Path, folder: Path) -> None:
    """``folder`` (``root`` or inside it) made as needed, one part at a time, each new one
    with ``root``'s permissions; UnsafeFolder if a part below ``root`` is a symlink or no
    folder. ``folder`` is a resolved OUT and parts made safe (``keys.subfolder``), so a
    symlink there was put in since: written through, an output could land anywhere."""
    if folder == root or not folder.is_relative_to(root):
        return
    current = root
    mode: int | None = None
    for part in folder.relative_to(root).parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if mode is None:
                mode = stat.S_IMODE(os.stat(root).st_mode)
            try:
                os.mkdir(current, mode)
                os.chmod(current, mode)  # as OUT's, whatever the umask takes away
            except FileExistsError:
                pass  # made meanwhile (another file of the same folder): checked below
            st = os.lstat(current)
        if not stat.S_ISDIR(st.st_mode):
            what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a folder"
            raise UnsafeFolder(
                f"{shown(str(current))} is {what}; outputs are never written through one "
                "(make it a folder, then `autotranscode retry`)"
            )


def remove(path: Path) -> None:
    """A temp file or folder, whichever it is, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sync(outputs: Iterable[Path]) -> None:
    """Outputs on disk (data and names) before their source goes: after a power cut the
    outputs would otherwise be empty files, and the source gone."""
    folders = set()
    for output in outputs:
        files = [p for p in output.rglob("*") if p.is_file()] if output.is_dir() else [output]
        for path in files:
            _fsync(path)
            folders.add(path.parent)
        folders.add(output.parent)
    for folder in folders:
        _fsync(folder)


def _fsync(path: Path) -> None:
    """A file's data, or a folder's entries, on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
