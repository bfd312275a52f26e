"""Copies that are snapshots: what the local store takes in, and what a same-content file gets.

A copy, not a hard link: a hard link is the source itself, so a rewrite of the source
after it was taken would change the job's input (or a delivered output). A reflink is
both: instant and independent, where the filesystem can make one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

#: linux/fs.h: make ``dest`` share ``src``'s blocks (btrfs, XFS, bcachefs…): instant, no space.
FICLONE = 0x40049409
#: Bytes per read and write when the kernel cannot copy by itself.
COPY_CHUNK = 4 * 1024 * 1024
#: copy_file_range cannot copy across these (old kernels, other filesystems): copy by hand.
_NO_RANGE_COPY = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


def snapshot(src: Path, dest: Path) -> None:
    """A copy of ``src`` at ``dest`` (replaced if there) that later writes to ``src`` leave alone.

    A reflink where the filesystem can (instant, blocks shared until one side is written),
    else ``copy_file_range`` (the kernel copies, server-side on NFS 4.2), else a plain copy.
    """
    with open(src, "rb") as fin:
        dest.unlink(missing_ok=True)
        with open(dest, "xb") as fout:
            try:
                fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
                return
            except OSError:
                pass  # not this filesystem (or across two): copy the bytes
            try:
                _copy_range(fin.fileno(), fout.fileno(), os.fstat(fin.fileno()).st_size)
            except OSError as exc:
                if exc.errno not in _NO_RANGE_COPY:
                    raise
                fin.seek(0)
                fout.seek(0)
                fout.truncate()
                shutil.copyfileobj(fin, fout, COPY_CHUNK)


def snapshot_tree(src: Path, dest: Path) -> None:
    """``snapshot`` for a folder output (HLS, thumbnails): every file in it, likewise."""
    shutil.copytree(src, dest, copy_function=lambda s, d: snapshot(Path(s), Path(d)))


def _copy_range(fin: int, fout: int, size: int) -> None:
    """``copy_file_range`` until EOF (the file may have grown since ``size`` was read)."""
    chunk = max(size, COPY_CHUNK)
    while os.copy_file_range(fin, fout, chunk):
        pass
