"""Names that cross a trust boundary: object keys, and file names in the output folder.

Keys are derived from a file's identity, never used raw, so a hostile or odd
file name cannot traverse paths, collide with another file, or break a key.
Names coming back from messages are checked again before they touch the disk.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path, PurePosixPath

from .errors import MessageError
from .media import open_regular

INPUT_PREFIX = "inputs/"
OUTPUT_PREFIX = "outputs/"
#: S3 allows 1024 bytes per key; leave room for prefixes and ids.
MAX_NAME_BYTES = 200
#: Bytes read at each of the three places a fingerprint samples.
FINGERPRINT_SAMPLE = 1024 * 1024

#: C0 and C1 controls, lone surrogates (undecodable file names), separators, reserved characters.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff/\\:*?\"<>|]+")
#: Whitespace, dots and dashes in any mix at the start: hidden files and option-like names.
_LEADING = re.compile(r"^[\s.-]+")
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")


def safe_name(name: str) -> str:
    """A single path component that is safe as a key segment and as a file name."""
    name = unicodedata.normalize("NFC", name)
    name = _LEADING.sub("", _UNSAFE.sub("_", name)).rstrip()
    if not name:
        name = "file"
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        if not dot or len(ext) > 10:
            stem, ext = name, ""
        keep = MAX_NAME_BYTES - len(ext.encode()) - 1
        stem = stem.encode("utf-8")[:keep].decode("utf-8", "ignore")
        name = f"{stem}.{ext}" if ext else stem
    return name


def fingerprint(path: Path, size: int) -> str:
    """What a file is, whatever it is called: its size and samples from start, middle and end.

    Reading three samples keeps this instant for multi-GB recordings, and it still
    tells apart any two real media files of the same size (headers, timestamps and
    frame data all differ); a renamed or moved file keeps its fingerprint.
    """
    digest = hashlib.sha256(str(size).encode())
    with open_regular(path) as fh:  # a FIFO renamed over the file must not block us
        for offset in sorted(
            {0, max(0, size // 2 - FINGERPRINT_SAMPLE // 2), max(0, size - FINGERPRINT_SAMPLE)}
        ):
            fh.seek(offset)
            digest.update(fh.read(FINGERPRINT_SAMPLE))
    return digest.hexdigest()[:32]


def file_id(identity: str, destination: str) -> str:
    """Stable id for one file's content bound for one destination (folder and presets)."""
    text = f"{identity}\0{destination}"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:20]


def input_key(fid: str, path: Path) -> str:
    return f"{INPUT_PREFIX}{fid}/{safe_name(path.name)}"


def output_key(job_id: str, stem: str, preset_id: str, extension: str) -> str:
    return f"{OUTPUT_PREFIX}{job_id}/{safe_name(stem)}.{preset_id}{extension}"


def check_job_id(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise MessageError(f"job id {job_id!r} is not a valid id")
    return job_id


def check_key(key: str, prefix: str) -> str:
    """Accept a key from a message only if it stays under ``prefix`` and has no tricks."""
    if not key.startswith(prefix) or len(key.encode("utf-8")) > 1024:
        raise MessageError(f"key {key!r} is outside {prefix!r}")
    parts = PurePosixPath(key).parts
    if key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")) or len(parts) < 2:
        raise MessageError(f"key {key!r} is not a plain relative key")
    if _UNSAFE.sub("", key.replace("/", "")) != key.replace("/", ""):
        raise MessageError(f"key {key!r} has control or reserved characters")
    return key


def output_name(stem: str, extension: str, preset_id: str, multiple: bool) -> str:
    """The name in OUT: ``clip.mp4``, or ``clip.web-720p.mp4`` when a job has several outputs."""
    base = safe_name(stem)
    if not multiple or extension == f".{preset_id}":  # clip.hls, not clip.hls.hls
        return f"{base}{extension}"
    return f"{base}.{preset_id}{extension}"
