"""Display rotation read from MP4/MOV headers must be what decoding a frame says, always."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import av
import pytest

from autotranscode.media import isobmff
from autotranscode.media import probe as media

from conftest import FFMPEG, Clip


def _rotated(src: Path, dest: Path, *flags: str) -> Path:
    quiet = ("-hide_banner", "-loglevel", "error", "-y")
    subprocess.run([FFMPEG, *quiet, *flags, "-i", str(src), "-c", "copy", str(dest)], check=True)
    return dest


def _decoded(path: Path) -> tuple[int, int]:
    """(stream id, rotation read off the first decoded frame): the reference."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return video.id, media._decoded_rotation(container, video)


@pytest.mark.parametrize("extension", [".mp4", ".mov"])
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ((), 0),
        (("-display_rotation", "90"), 90),
        (("-display_rotation", "180"), 180),
        (("-display_rotation", "-90"), 270),
        (("-display_rotation", "45"), 45),
        (("-display_rotation", "90", "-display_hflip"), 90),
    ],
)
def test_headers_agree_with_the_decoded_frame(
    clips: dict[str, Clip], tmp_path: Path, extension: str, flags: tuple[str, ...], expected: int
) -> None:
    path = _rotated(clips["h264.mp4"].path, tmp_path / f"clip{extension}", *flags)
    track, decoded = _decoded(path)
    assert decoded == expected
    assert isobmff.display_rotation(path, track) == expected


def _box_offset(data: bytes, kind: bytes) -> int:
    """Where a box's body starts (a plain search is enough for these small, known files)."""
    at = data.index(kind)
    return at + 4


def test_the_movie_matrix_counts_too(clips: dict[str, Clip], tmp_path: Path) -> None:
    """FFmpeg multiplies the track's matrix by the movie's (mvhd): a turn set there shows."""
    path = _rotated(clips["h264.mp4"].path, tmp_path / "movie.mp4")
    data = bytearray(path.read_bytes())
    body = _box_offset(data, b"mvhd")
    assert data[body] == 0, "ffmpeg writes a version 0 mvhd"
    quarter_turn = (0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    struct.pack_into(">9i", data, body + 36, *quarter_turn)
    path.write_bytes(bytes(data))
    track, decoded = _decoded(path)
    assert decoded == 270
    assert isobmff.display_rotation(path, track) == decoded


def test_another_track_id_is_not_an_answer(clips: dict[str, Clip], tmp_path: Path) -> None:
    path = _rotated(clips["h264.mp4"].path, tmp_path / "r.mp4", "-display_rotation", "90")
    track, _ = _decoded(path)
    assert isobmff.display_rotation(path, track) == 90
    assert isobmff.display_rotation(path, track + 7) is None


def test_unreadable_headers_answer_none(
    clips: dict[str, Clip], broken: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _rotated(clips["h264.mp4"].path, tmp_path / "good.mp4", "-display_rotation", "90")
    data = good.read_bytes()
    moov = data.index(b"moov") - 4
    cases = {
        "no moov": clips["vp9.mkv"].path,
        "text": broken["notes.mp4"],
        "empty": broken["empty.mov"],
        "cut inside moov": tmp_path / "cut.mp4",
        "box smaller than its header": tmp_path / "tiny-box.mp4",
        "tkhd of an unknown version": tmp_path / "version.mp4",
        "missing": tmp_path / "nowhere.mp4",
    }
    cases["cut inside moov"].write_bytes(data[: moov + 200])
    tiny = bytearray(data)
    struct.pack_into(">I", tiny, data.index(b"trak") - 4, 4)
    cases["box smaller than its header"].write_bytes(bytes(tiny))
    versioned = bytearray(data)
    versioned[_box_offset(data, b"tkhd")] = 7
    cases["tkhd of an unknown version"].write_bytes(bytes(versioned))
    for name, path in cases.items():
        assert isobmff.display_rotation(path, 1) is None, name
    monkeypatch.setattr(isobmff, "MAX_MOOV_BYTES", 16)
    assert isobmff.display_rotation(good, 1) is None, "a moov too big to read"


def test_probe_reads_mp4_headers_and_decodes_only_other_formats(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    """An MP4/MOV's rotation comes from its headers: with every picture zeroed, so that
    nothing decodes, the turn is still found; a Matroska file's is read off a picture."""
    path = _rotated(clips["h264.mp4"].path, tmp_path / "phone.mov", "-display_rotation", "90")
    mkv = _rotated(clips["h264.mp4"].path, tmp_path / "phone.mkv", "-display_rotation", "90")
    data = bytearray(path.read_bytes())
    body = _box_offset(data, b"mdat")
    (size,) = struct.unpack_from(">I", data, body - 8)
    data[body : body - 8 + size] = bytes(size - 8)
    undecodable = tmp_path / "undecodable.mov"
    undecodable.write_bytes(bytes(data))
    assert _decoded(undecodable)[1] == 0, "zeroed pictures decode to nothing"
    assert media.probe(undecodable).rotation == 90
    assert media.probe(mkv).rotation == 90
