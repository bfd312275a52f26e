"""Names that cross a trust boundary: object keys, and file names in the output folder.

Keys are derived from a file's identity, never used raw, so a hostile or odd
file name cannot traverse paths, collide with another file, or break a key.
Names coming back from messages are checked again before they touch the disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path, PurePosixPath

import blake3

from .errors import MessageError

INPUT_PREFIX = "inputs/"
OUTPUT_PREFIX = "outputs/"
#: Workers' heartbeats, one object each, in the output bucket (``engines.heartbeat``).
WORKERS_PREFIX = "workers/"
#: S3 allows 1024 bytes per key; leave room for prefixes and ids.
MAX_NAME_BYTES = 200
#: Bytes read at a time when hashing a file: large reads, few calls (BLAKE3 drops the GIL).
HASH_CHUNK = 4 * 1024 * 1024

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


def subfolder(root: Path, path: Path) -> PurePosixPath:
    """The folder ``path`` is in, relative to ``root`` (DROP, or a folder given to
    ``transcode``): where its outputs go under OUT when a tree is kept. Each part made safe
    as a name is (``safe_name``: no ``..``, no separators, no controls, bounded), so what
    comes back can only name a folder inside OUT; empty when ``path`` is not under ``root``.
    """
    folder = Path(os.path.abspath(path)).parent
    try:
        parts = folder.relative_to(os.path.abspath(root)).parts
    except ValueError:
        return PurePosixPath()
    return PurePosixPath(*(safe_name(p) for p in parts))


def content_hash(path: Path | str, *, mapped: bool = False) -> str:
    """BLAKE3 (hex) of the file's whole content: what a file *is*, whatever it is called.

    The whole content, not samples: a sampled fingerprint called a same-size edit between
    its samples "done already". BLAKE3 rather than xxh3 because it is cryptographic (a
    hostile file cannot be made to collide with another and be skipped as done) and
    still hashes at well over 1 GB/s on one core.

    One thread: a client hashes while ffmpeg has the cores, and on a loaded two-core
    machine BLAKE3's thread pool was slower than one thread (bench/hashing.py).
    ``mapped`` reads through mmap, which is faster but only safe on a file nobody else
    can shorten (a snapshot in our store): a file truncated under a mapping kills the
    process with SIGBUS, so a user's file is read in chunks.
    """
    hasher = blake3.blake3()
    if mapped:
        if os.path.getsize(path):  # mmap refuses an empty file
            hasher.update_mmap(path)
        return hasher.hexdigest()
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(HASH_CHUNK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            hasher.update(view[:n])
    return hasher.hexdigest()


def file_id(identity: str, destination: str) -> str:
    """Stable id for one version of a file bound for one destination (folder and presets)."""
    text = f"{identity}\0{destination}"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:20]


def input_key(fid: str, path: Path) -> str:
    return f"{INPUT_PREFIX}{fid}/{safe_name(path.name)}"


def output_key(job_id: str, stem: str, preset_id: str, extension: str) -> str:
    return f"{OUTPUT_PREFIX}{job_id}/{safe_name(stem)}.{preset_id}{extension}"


def log_key(job_id: str, part: str | None = None) -> str:
    """Where a job's log is stored: beside its outputs, so what removes them removes it; a
    part's (``part``: its name, ``c0007``) among the job's parts."""
    if part is not None:
        return f"{parts_prefix(job_id)}{part}.log"
    return f"{OUTPUT_PREFIX}{check_job_id(job_id)}/{job_id}.log"


def parts_prefix(job_id: str) -> str:
    """Where a chunked job's plan and parts are kept (``engines.parts``): under its outputs'
    prefix, so the client's removal of the job's objects removes them too."""
    return f"{OUTPUT_PREFIX}{check_job_id(job_id)}/parts/"


def worker_key(identity: str) -> str:
    """Where a worker's heartbeat is kept: its identity (``host:pid/name``) as one plain
    key segment."""
    return f"{WORKERS_PREFIX}{re.sub(r'[^A-Za-z0-9._-]+', '-', identity)[:MAX_NAME_BYTES]}.json"


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
