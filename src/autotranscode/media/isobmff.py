"""The one MP4/MOV header fact PyAV does not expose: a video track's display rotation.

FFmpeg turns a track's ``tkhd`` matrix, times the movie's ``mvhd`` matrix, into the
display matrix that players and ffmpeg's autorotate apply. PyAV shows it only on decoded
frames, and decoding a frame was a third of what autotranscode spent on each file. The
headers are a few hundred bytes; anything unexpected in them answers None, and the caller
decodes a frame instead.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: A bigger ``moov`` (hours of tiny samples) is read by decoding instead.
MAX_MOOV_BYTES = 64 << 20
#: Top-level boxes looked at before giving up on finding ``moov``.
MAX_TOP_LEVEL_BOXES = 1024

_Matrix = tuple[float, float, float, float, float, float, float, float, float]


class _Malformed(Exception):
    pass


def display_rotation(path: Path | str, track_id: int) -> int | None:
    """Degrees (0..359) the track with this id is turned when shown, as FFmpeg computes it;
    None when the headers do not say for sure."""
    try:
        with open(path, "rb") as f:
            moov = _read_moov(f)
        if moov is None:
            return None
        movie = track = None
        for kind, body in _boxes(moov):
            if kind == b"mvhd":
                movie = _matrix(body, v0=36, v1=48)
            elif kind == b"trak":
                track = _track_matrix(body, track_id) or track
        if movie is None or track is None:
            return None
    except (OSError, _Malformed, struct.error):
        return None
    return _rotation(_multiply(track, movie))


def _read_moov(f: BinaryIO) -> memoryview | None:
    end = os.fstat(f.fileno()).st_size
    pos = 0
    for _ in range(MAX_TOP_LEVEL_BOXES):
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            return None
        size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if size == 1:
            if len(head) < 16:
                return None
            (size,) = struct.unpack_from(">Q", head, 8)
            header = 16
        elif size == 0:  # the box runs to the end of the file
            size = end - pos
        if size < header:
            return None
        if kind == b"moov":
            if size > MAX_MOOV_BYTES:
                return None
            f.seek(pos + header)
            body: bytes = f.read(size - header)
            return memoryview(body) if len(body) == size - header else None
        pos += size
    return None


def _boxes(data: memoryview) -> Iterator[tuple[bytes, memoryview]]:
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = len(data) - pos
        if size < header or pos + size > len(data):
            raise _Malformed
        yield kind, data[pos + header : pos + size]
        pos += size


def _track_matrix(trak: memoryview, track_id: int) -> _Matrix | None:
    for kind, body in _boxes(trak):
        if kind == b"tkhd":
            version = body[0]
            if version not in (0, 1):
                raise _Malformed
            (found,) = struct.unpack_from(">I", body, 12 if version == 0 else 20)
            return _matrix(body, v0=40, v1=52) if found == track_id else None
    return None


def _matrix(body: memoryview, *, v0: int, v1: int) -> _Matrix:
    """A header's 3x3 matrix, row by row: 16.16 fixed point, the last column 2.30."""
    version = body[0]
    if version not in (0, 1):
        raise _Malformed
    raw = struct.unpack_from(">9i", body, v0 if version == 0 else v1)
    m = [value / (1 << 30 if i % 3 == 2 else 1 << 16) for i, value in enumerate(raw)]
    return (m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8])


def _multiply(a: _Matrix, b: _Matrix) -> _Matrix:
    m = [sum(a[i * 3 + e] * b[e * 3 + j] for e in range(3)) for i in range(3) for j in range(3)]
    return (m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8])


def _rotation(m: _Matrix) -> int:
    """libavutil's av_display_rotation_get, which is what PyAV reports on a decoded frame."""
    scale_x, scale_y = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale_x == 0 or scale_y == 0:
        return 0  # degenerate: FFmpeg's NaN, which a frame's rotation reads as none
    degrees = -math.degrees(math.atan2(m[1] / scale_y, m[0] / scale_x))
    return round(degrees) % 360
