"""What an output folder already holds, told by the stamps on its files (see ``stamps``).

The journal decides what is done; but when it is lost or damaged, a file taken again
would be transcoded once more, under ``name (1).mp4`` beside its first output. Before a
new file is sent, the pipeline asks ``already_delivered``: an output with this source's
content hash and this preset's digest under the name it would get (or a ``name (n)``
variant of it) means the work was done. ``journal rebuild`` lists a folder's outputs
with ``stamped``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from .media.probe import read_stamp
from .media.stamps import Stamp

log = logging.getLogger(__name__)

#: Temporary names in OUT end so (the pipeline's downloads); never an output.
_PART_SUFFIX = ".autotranscode-part"


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
    """``name`` or a ``stem (n).ext`` variant (``pipeline._free_name``) carrying ``stamp``."""
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
    """Every output of ours in ``out_dir`` (not its subfolders' files), with its stamp."""
    try:
        entries = sorted(os.scandir(out_dir), key=lambda e: e.name)
    except OSError as exc:
        log.warning("cannot list %s: %s", out_dir, exc)
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name.endswith(_PART_SUFFIX):
            continue
        stamp = read_stamp(Path(entry.path))
        if stamp is not None:
            yield Path(entry.path), stamp
