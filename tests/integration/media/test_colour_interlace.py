"""Colour and interlacing on real clips: HDR tone-mapped or kept, untagged sources tagged,
interlaced sources deinterlaced, each output probed and looked at with ffmpeg's ``idet``."""

from __future__ import annotations

import array
import re
import struct
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import pytest

from autotranscode.media import interlace, presets, transcoder
from autotranscode.media.probe import MediaInfo, probe

#: conftest's clips (a ``Clip`` each).
Clip = Any
#: The frame whose brightness is compared (a second in: past any encoder start-up).
FRAME = 25


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return transcoder.find_ffmpeg()


def _make(ffmpeg: str, preset: presets.Preset, src: Path, dst: Path) -> MediaInfo:
    """The worker's way: probed in detail, idet asked where the stream's word is not enough."""
    source, _ = interlace.detect(ffmpeg, src, probe(src, detail=True))
    transcoder.transcode(ffmpeg, preset, source, src, dst)
    return probe(dst, detail=True)


def _luma(path: Path, index: int = FRAME) -> list[int]:
    """The luma samples of one decoded frame, row by row, without the padding."""
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n == index:
                plane = frame.planes[0]
                data = bytes(plane)
                wide = frame.format.components[0].bits > 8
                samples: list[int] = []
                for row in range(plane.height):
                    start = row * plane.line_size
                    line = data[start : start + plane.width * (2 if wide else 1)]
                    samples += array.array("H", line) if wide else line
                return samples
    raise AssertionError(f"{path} has no frame {index}")


def _mean(samples: list[int]) -> float:
    return sum(samples) / len(samples)


def _difference(a: list[int], b: list[int]) -> float:
    """Mean absolute difference of two same-sized frames' luma."""
    assert len(a) == len(b)
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def _idet(ffmpeg: str, path: Path) -> dict[str, int]:
    """ffmpeg's idet over every frame: interlaced frames found, by single and multi-frame
    detection (the multi-frame one takes neighbours into account)."""
    run = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path), "-vf", "idet", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = {}
    for kind in ("Single", "Multi"):
        counts = re.findall(rf"{kind} frame detection: TFF:\s*(\d+)\s+BFF:\s*(\d+)", run.stderr)
        found[kind.lower()] = int(counts[-1][0]) + int(counts[-1][1])
    return found


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.demux(video=0) if _.size)


# --- HDR -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hdr10.mp4", "hlg.mp4"])
def test_hdr_becomes_bt709_sdr_under_an_h264_preset(
    ffmpeg: str, colour_clips: dict[str, Path], tmp_path: Path, name: str
) -> None:
    source = probe(colour_clips[name], detail=True)
    assert source.hdr in ("pq", "hlg")
    out = _make(ffmpeg, presets.CATALOG["web-720p"], colour_clips[name], tmp_path / "out.mp4")
    assert (out.color_primaries, out.color_transfer, out.color_space) == ("bt709",) * 3
    assert (out.pix_fmt, out.color_range) == ("yuv420p", "tv")
    # Looks like the same picture made in SDR: as bright, and close sample by sample (an
    # output left in PQ numbers is grey and flat: 16 % brighter, 45 levels off on average).
    reference = _luma(colour_clips["sdr reference.mp4"])
    made = _luma(tmp_path / "out.mp4")
    assert abs(_mean(made) - _mean(reference)) < 0.1 * _mean(reference)
    assert _difference(made, reference) < 25
    assert max(made) > 200, "white stays white"


@pytest.mark.parametrize("preset_id", ["hevc-1080p", "av1-1080p"])
def test_hdr10_is_kept_10_bit_with_its_metadata_under_hevc_and_av1(
    ffmpeg: str, colour_clips: dict[str, Path], tmp_path: Path, preset_id: str
) -> None:
    dst = tmp_path / "out.mp4"
    out = _make(ffmpeg, presets.CATALOG[preset_id], colour_clips["hdr10.mp4"], dst)
    assert out.pix_fmt == "yuv420p10le"
    assert (out.color_primaries, out.color_transfer, out.color_space, out.color_range) == (
        "bt2020",
        "smpte2084",
        "bt2020nc",
        "tv",
    )
    with av.open(str(dst)) as container:
        frame = next(container.decode(video=0))
        side = {str(sd.type).split(".")[-1]: bytes(sd) for sd in frame.side_data}
    assert "MASTERING_DISPLAY_METADATA" in side
    assert struct.unpack("<II", side["CONTENT_LIGHT_LEVEL"]) == (1000, 400)


def test_a_custom_preset_can_tone_map_under_hevc(
    ffmpeg: str, colour_clips: dict[str, Path], tmp_path: Path
) -> None:
    preset = presets.build("hevc-sdr", {"extends": "hevc-1080p", "hdr": "tonemap"})
    out = _make(ffmpeg, preset, colour_clips["hdr10.mp4"], tmp_path / "out.mp4")
    assert (out.pix_fmt, out.color_transfer, out.color_primaries) == ("yuv420p", "bt709", "bt709")


# --- untagged sources ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tags"),
    [
        ("untagged hd.mp4", ("bt709", "bt709", "bt709")),
        ("h264.mp4", ("smpte170m", "smpte170m", "smpte170m")),
        ("progressive 576.ts", ("bt470bg", "smpte170m", "bt470bg")),
    ],
)
def test_untagged_sources_are_tagged_by_size_and_keep_their_picture(
    ffmpeg: str,
    colour_clips: dict[str, Path],
    clips: dict[str, Clip],
    tmp_path: Path,
    name: str,
    tags: tuple[str, str, str],
) -> None:
    src = colour_clips[name] if name in colour_clips else clips[name].path
    source = probe(src, detail=True)
    assert (source.color_primaries, source.color_transfer, source.color_space) == (None,) * 3
    out = _make(ffmpeg, presets.CATALOG["web-720p"], src, tmp_path / "out.mp4")
    assert (out.color_primaries, out.color_transfer, out.color_space) == tags
    assert out.color_range == "tv"
    # Tagged, not converted: the numbers are the source's.
    assert _difference(_luma(src, 10), _luma(tmp_path / "out.mp4", 10)) < 4


def test_a_full_range_source_is_brought_to_limited_range(
    ffmpeg: str, clips: dict[str, Clip], tmp_path: Path
) -> None:
    src = clips["mjpeg.avi"].path
    assert probe(src, detail=True).color_range == "pc"
    out = _make(ffmpeg, presets.CATALOG["web-720p"], src, tmp_path / "out.mp4")
    assert out.color_range == "tv"
    # Squeezed from 0-255 into 16-235: dark and light ends (1st and 99th percentiles)
    # where limited range puts them; a full-range picture merely tagged would keep its own.
    was, made = sorted(_luma(src, 10)), sorted(_luma(tmp_path / "out.mp4", 10))
    for at in (len(was) // 100, -len(was) // 100):
        assert abs(made[at] - (16 + was[at] * 219 / 255)) < 4, (was[at], made[at])


# --- interlaced sources --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["interlaced tff.ts", "interlaced unflagged.ts"])
def test_an_interlaced_576i_source_becomes_progressive(
    ffmpeg: str, colour_clips: dict[str, Path], tmp_path: Path, name: str
) -> None:
    src = colour_clips[name]
    assert _idet(ffmpeg, src)["multi"] >= 45, "the source is combed (50 frames)"
    dst = tmp_path / "out.mp4"
    out = _make(ffmpeg, presets.CATALOG["web-720p"], src, dst)
    assert out.field_order == "progressive"
    assert _idet(ffmpeg, dst) == {"single": 0, "multi": 0}
    assert _frames(dst) == 50


def test_unflagged_interlacing_is_found_by_idet_and_said(
    ffmpeg: str, colour_clips: dict[str, Path]
) -> None:
    src = colour_clips["interlaced unflagged.ts"]
    source = probe(src, detail=True)
    assert source.field_order == "progressive", "the stream does not say"
    found, note = interlace.detect(ffmpeg, src, source)
    assert found == replace(source, field_order="tt")
    assert note is not None and note.startswith("idet: interlaced, top field first")


def test_a_progressive_576_source_is_left_alone(
    ffmpeg: str, colour_clips: dict[str, Path], tmp_path: Path
) -> None:
    src = colour_clips["progressive 576.ts"]
    source = probe(src, detail=True)
    found, note = interlace.detect(ffmpeg, src, source)
    assert found == source
    assert note is not None and note.startswith("idet: progressive")
    cmd = transcoder.command(ffmpeg, presets.CATALOG["web-720p"], found, src, tmp_path / "o.mp4")
    assert not any("bwdif" in arg for arg in cmd)


@pytest.mark.parametrize(
    ("codec", "name"),
    [
        (("-c:v", "prores_ks", "-pix_fmt", "yuv422p10le"), "prores"),
        (("-c:v", "dnxhd", "-profile:v", "dnxhr_lb", "-pix_fmt", "yuv422p"), "dnxhd"),
    ],
)
def test_mastering_codecs_frame_headers_answer_for_progressive_without_a_sample(
    ffmpeg: str, tmp_path: Path, codec: tuple[str, ...], name: str
) -> None:
    """ProRes and DNxHD write in every frame header whether the picture was coded as
    fields; the sample (a decode of 150 frames) is asked only of codecs that do not. A
    sharp test pattern is used on purpose: ``idet`` takes it for combing."""
    src = tmp_path / "master.mov"
    lavfi = ("-f", "lavfi", "-i", "testsrc2=size=720x576:rate=25:duration=1")
    subprocess.run([ffmpeg, "-v", "error", *lavfi, *codec, str(src)], check=True)
    source = probe(src, detail=True)
    assert interlace.needs_idet(source), "the container says nothing about fields"
    found, note = interlace.detect(ffmpeg, src, source)
    assert found == source
    assert note == f"progressive: the {name} frame headers say so"


def test_prores_coded_as_fields_is_sampled_even_when_its_container_says_progressive(
    ffmpeg: str, tmp_path: Path
) -> None:
    fields, src = tmp_path / "fields.mov", tmp_path / "says progressive.mov"
    weave = "tinterlace=mode=interleave_top,setfield=tff"
    lavfi = ("-f", "lavfi", "-i", "testsrc2=size=720x576:rate=50:duration=1")
    encode = ("-vf", weave, "-flags", "+ildct", "-c:v", "prores_ks", "-pix_fmt", "yuv422p10le")
    subprocess.run([ffmpeg, "-v", "error", *lavfi, *encode, str(fields)], check=True)
    relabel = ("-c", "copy", "-field_order", "progressive")
    subprocess.run([ffmpeg, "-v", "error", "-i", str(fields), *relabel, str(src)], check=True)
    source = probe(src, detail=True)
    assert source.field_order == "progressive"
    found, note = interlace.detect(ffmpeg, src, source)
    assert found == replace(source, field_order="tt")
    assert note is not None and note.startswith("idet: interlaced, top field first")


def test_double_rate_makes_a_frame_per_field(
    ffmpeg: str, colour_clips: dict[str, Path], tmp_path: Path
) -> None:
    preset = presets.build("sports", {"extends": "web-720p", "deinterlace": "double-rate"})
    dst = tmp_path / "out.mp4"
    out = _make(ffmpeg, preset, colour_clips["interlaced tff.ts"], dst)
    assert out.frame_rate == 50
    assert _frames(dst) == 100
    assert _idet(ffmpeg, dst) == {"single": 0, "multi": 0}


def test_an_unreadable_sample_leaves_the_source_as_it_says(
    ffmpeg: str, broken: dict[str, Path]
) -> None:
    """A file that probed as 576 MPEG-2 but cannot be decoded: no idet finding, no crash."""
    source = MediaInfo(
        duration=10.0, format_name="mpegts", video_codec="mpeg2video", width=720, height=576
    )
    found, note = interlace.detect(ffmpeg, broken["notes.mp4"], source)
    assert found == source
    assert note is not None and "taken as progressive" in note


def test_a_poster_of_an_hdr10_source_is_tone_mapped(
    ffmpeg: str, colour_clips: dict[str, Path], tmp_path: Path
) -> None:
    dst = tmp_path / "poster.jpg"
    _make(ffmpeg, presets.CATALOG["poster"], colour_clips["hdr10.mp4"], dst)
    reference = _luma(colour_clips["sdr reference.mp4"], 5)  # the poster is taken at 0.2 s
    made = _luma(dst, 0)
    assert abs(_mean(made) - _mean(reference)) < 0.1 * _mean(reference)
    assert _difference(made, reference) < 25


def test_a_poster_of_an_interlaced_source_is_not_combed(
    ffmpeg: str, colour_clips: dict[str, Path], tmp_path: Path
) -> None:
    dst = tmp_path / "poster.jpg"
    _make(ffmpeg, presets.CATALOG["poster"], colour_clips["interlaced unflagged.ts"], dst)
    assert _idet(ffmpeg, dst)["single"] == 0


def test_the_idet_sample_is_started_to_die_with_its_worker(
    ffmpeg: str, colour_clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like every ffmpeg a worker starts (``runner.spawn``: gone with the worker, even after
    kill -9), not a plain subprocess left to run on after it."""
    started: list[list[str]] = []
    spawn = interlace.spawn

    def recording(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(cmd)
        return spawn(cmd, **kwargs)

    monkeypatch.setattr(interlace, "spawn", recording)
    src = colour_clips["interlaced unflagged.ts"]
    found, _ = interlace.detect(ffmpeg, src, probe(src, detail=True))
    assert found.field_order == "tt"
    assert len(started) == 1 and "idet" in started[0]
