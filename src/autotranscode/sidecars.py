"""Subtitles, NFO and artwork beside a source (``ep1.en.srt``, ``ep1.nfo``, ``ep1-poster.jpg``),
copied beside its outputs once they are delivered, renamed to each output's stem.

A sidecar is a regular file (not a symlink, a FIFO…) in the source's folder whose name is
the source's stem followed by ``.`` or ``-`` and matches one of the patterns (globs on the
whole name, any case). ``ep1.en.srt`` beside ``ep1.avi`` becomes ``ep1.en.srt`` beside
``ep1.mp4``, or ``ep1 (1).en.srt`` beside ``ep1 (1).mp4``; with several outputs each gets
its own set (``ep1.web-720p.en.srt``), as a media server pairs them by name.

Copied, never moved nor deleted, whatever ``--on-success`` does with the source: a sidecar
may belong to a second source of the same stem (``ep1.mkv`` and ``ep1.avi``), and files we
did not transcode are not ours to remove. Each copy is written under a hidden temp name in
the output's folder and linked to its name: never half, never over a file. A name taken
already stays as it is: with the same bytes the copy was made (a restart after a crash);
with others, the file is delivered with a warning.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from . import keys, outbox
from .text import shown

log = logging.getLogger(__name__)

#: Subtitles, NFO and artwork, as media servers (Plex, Jellyfin, Kodi) look for them.
DEFAULT_PATTERNS: tuple[str, ...] = (
    *("*.srt", "*.ass", "*.ssa", "*.vtt", "*.sub", "*.idx", "*.sup"),
    *("*.nfo", "*.jpg", "*.jpeg", "*.png", "*.webp", "*.tbn"),
)
#: ``--sidecars none``: no sidecar is copied.
NONE = "none"
#: Bytes compared at a time when a sidecar's name is taken already.
_CHUNK = 1024 * 1024


def parse(value: str | Iterable[str]) -> tuple[str, ...]:
    """Patterns from ``--sidecars a,b`` (or a config list); ``none`` is none. ValueError for a
    pattern with a ``/``: a pattern matches a name in the source's folder, not a path."""
    items = value.split(",") if isinstance(value, str) else list(value)
    patterns = tuple(dict.fromkeys(p.strip() for p in items if p.strip()))
    if patterns == (NONE,):
        return ()
    for pattern in patterns:
        if "/" in pattern or pattern == NONE:
            raise ValueError(
                f"--sidecars: {pattern!r} is not a pattern of file names (e.g. '*.srt', or "
                "'none' alone)"
            )
    return patterns


def find(source: Path, patterns: tuple[str, ...]) -> list[Path]:
    """The sidecars of ``source`` under ``patterns``, by name."""
    if not patterns:
        return []
    stem = source.stem
    lowered = [p.lower() for p in patterns]
    found = []
    try:
        entries = list(os.scandir(source.parent))
    except OSError as exc:
        log.warning("%s: sidecars not looked for: %s", shown(source.name), exc.strerror or exc)
        return []
    for entry in entries:
        name = entry.name
        after = name[len(stem) : len(stem) + 1]
        if name == source.name or not name.startswith(stem) or after not in (".", "-"):
            continue
        if name.startswith(".") or name.endswith(outbox.PART_SUFFIX):
            continue
        if any(fnmatch.fnmatchcase(name.lower(), p) for p in lowered) and entry.is_file(
            follow_symlinks=False
        ):
            found.append(Path(entry.path))
    return sorted(found)


def follow(
    source: Path, outputs: Iterable[Path], patterns: tuple[str, ...], job_id: str | None
) -> list[str]:
    """Copy ``source``'s sidecars beside each output that is a file; what went wrong, as
    warnings (a sidecar never fails a delivered file)."""
    sidecars = find(source, patterns)
    warnings: list[str] = []
    if not sidecars:
        return warnings
    for output in outputs:
        if not output.is_file():
            continue  # a folder output (HLS): no stem a media server pairs with
        outbox.remove_parts(output.parent, f"{job_id}.sidecar")
        for sidecar in sidecars:
            name = keys.safe_name(output.stem + sidecar.name[len(source.stem) :])
            warning = _copy(sidecar, output.parent / name, f"{job_id}.sidecar")
            if warning:
                warnings.append(warning)
    return warnings


def _copy(src: Path, target: Path, mark: str) -> str | None:
    """``src`` at ``target``, unless ``target`` is taken; a warning when it could not be."""
    tmp = outbox.temp_path(target.parent, target.name, mark)
    try:
        if os.path.lexists(target):
            return None if _same(src, target) else _taken(src, target)
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fin:
            st = os.fstat(fin.fileno())
            if not stat.S_ISREG(st.st_mode):
                return f"sidecar {shown(src.name)} is not a regular file; not copied"
            tmp.unlink(missing_ok=True)
            with open(tmp, "xb") as fout:
                shutil.copyfileobj(fin, fout, _CHUNK)
                fout.flush()
                os.fsync(fout.fileno())
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        try:
            os.link(tmp, target)
        except FileExistsError:
            return None if _same(src, target) else _taken(src, target)
        except OSError:
            if os.path.lexists(target):
                return None if _same(src, target) else _taken(src, target)
            os.replace(tmp, target)  # no hard links here (some network shares)
    except OSError as exc:
        return f"sidecar {shown(src.name)} not copied: {exc.strerror or exc}"
    finally:
        tmp.unlink(missing_ok=True)
    log.info("%s: sidecar copied to %s", shown(src.name), shown(target.name))
    return None


def _taken(src: Path, target: Path) -> str:
    return (
        f"sidecar {shown(src.name)} not copied: another {shown(target.name)} is in "
        f"{shown(str(target.parent))} already"
    )


def _same(a: Path, b: Path) -> bool:
    """Whether two regular files hold the same bytes (sidecars are small)."""
    try:
        if os.path.islink(b) or os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(_CHUNK), fb.read(_CHUNK)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False
