"""Telecined film found on idet's sample and inverse-telecined back to its 23.976 frames,
while video interlaced at the same 29.97 frames a second is still deinterlaced."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import av
import pytest

from autotranscode.media import interlace, presets, recipe, transcoder
from autotranscode.media.probe import MediaInfo, probe

WEB = presets.CATALOG["web-720p"]


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return transcoder.find_ffmpeg()


def _interlaced_frames(ffmpeg: str, path: Path) -> tuple[int, int]:
    """Frames idet finds interlaced over the whole file: by single, then multi-frame detection."""
    run = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path), "-vf", "idet", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    single, multi = (
        re.findall(rf"{kind} frame detection: TFF:\s*(\d+)\s+BFF:\s*(\d+)", run.stderr)[-1]
        for kind in ("Single", "Multi")
    )
    return int(single[0]) + int(single[1]), int(multi[0]) + int(multi[1])


def _rate_and_frames(path: Path) -> tuple[float, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for packet in container.demux(stream) if packet.size)
        return float(stream.average_rate or 0), frames


def _detected(ffmpeg: str, src: Path) -> tuple[MediaInfo, str | None]:
    return interlace.detect(ffmpeg, src, probe(src, detail=True))


def test_telecined_film_is_inverse_telecined_to_its_own_frames(
    ffmpeg: str, colour_clips: dict[str, Path], tmp_path: Path
) -> None:
    src = colour_clips["telecined 480i.ts"]
    assert _rate_and_frames(src)[0] == pytest.approx(30000 / 1001, abs=0.01)
    source, note = _detected(ffmpeg, src)
    assert source.telecined and source.field_order == "tt"
    assert note is not None and note.startswith("idet: telecined film, 3:2 pulldown")
    assert recipe.notes(WEB, source)[0].startswith("telecined film (3:2 pulldown)")

    dst = tmp_path / "film.mp4"
    transcoder.transcode(ffmpeg, WEB, source, src, dst)
    made = probe(dst, detail=True)
    assert made.field_order in (None, "progressive")
    rate, frames = _rate_and_frames(dst)
    assert rate == pytest.approx(24000 / 1001, abs=0.05)
    assert frames == pytest.approx(48, abs=2)  # 2 s of film, each frame once
    assert _interlaced_frames(ffmpeg, dst) == (0, 0)


def test_video_interlaced_at_29_97_is_still_deinterlaced_with_bwdif(
    ffmpeg: str, colour_clips: dict[str, Path], tmp_path: Path
) -> None:
    src = colour_clips["interlaced 480i.ts"]
    source, note = _detected(ffmpeg, src)
    assert not source.telecined and source.field_order == "tt"
    assert note is not None and note.startswith("idet: interlaced video, no pulldown")
    graph = " ".join(recipe.ffmpeg_args(WEB, source, src, tmp_path / "x.mp4"))
    assert "bwdif=" in graph and "fieldmatch" not in graph

    dst = tmp_path / "video.mp4"
    transcoder.transcode(ffmpeg, WEB, source, src, dst)
    assert _rate_and_frames(dst)[0] == pytest.approx(30000 / 1001, abs=0.05)
    assert _interlaced_frames(ffmpeg, dst)[1] == 0
