"""Where a long video is cut for chunked encoding, and the command lines of its parts."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from autotranscode.errors import MediaError
from autotranscode.media import chunks, join
from autotranscode.media.chunks import Chunk, plan
from autotranscode.media.presets import CATALOG, build
from autotranscode.media.probe import MediaInfo, Track

EVERY_SECOND = [float(t) for t in range(40)]


def _source(**changes: object) -> MediaInfo:
    base = MediaInfo(
        duration=40.0,
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        video_codec="h264",
        width=320,
        height=240,
        audio_codec="aac",
        frame_rate=25.0,
        tracks=(
            Track(index=1, kind="audio", codec="aac", language="eng"),
            Track(index=2, kind="subtitle", codec="mov_text", language="eng"),
        ),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _contiguous(found: list[Chunk]) -> None:
    assert [c.index for c in found] == list(range(len(found)))
    for a, b in itertools.pairwise(found):
        assert a.end == b.start
    assert found[-1].end is None


def test_chunks_start_on_keyframes_and_are_about_the_size_asked() -> None:
    found = plan(40.0, EVERY_SECOND, 5.0)
    _contiguous(found)
    assert [c.start for c in found] == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0]
    assert all(c.frames is None for c in found)


def test_a_video_shorter_than_two_chunks_or_without_keyframes_to_cut_is_not_chunked() -> None:
    assert plan(9.9, EVERY_SECOND[:10], 5.0) == []
    assert plan(40.0, [0.0], 5.0) == []
    assert plan(40.0, [0.0, 39.0], 5.0) == [], "a cut that leaves a sliver of a last chunk"
    assert plan(None, EVERY_SECOND, 5.0) == []
    assert plan(40.0, EVERY_SECOND, 0) == []


def test_the_last_chunk_runs_to_the_end_and_is_never_a_sliver() -> None:
    found = plan(41.2, [*EVERY_SECOND, 40.0, 41.0], 5.0)
    _contiguous(found)
    assert found[-1].start == 35.0, "6.2 s left: one last chunk, not 5 s and 1.2 s"
    two = plan(8.0, [float(t) for t in range(8)], 2.0)
    assert [c.start for c in two] == [0.0, 2.0, 4.0, 6.0], "not 6-7 and 7-8"


def test_odd_keyframe_spacing_makes_longer_chunks_never_tiny_ones() -> None:
    keys = [0.0, 0.3, 4.1, 6.9, 7.2, 21.0, 21.4, 26.0, 33.3, 38.9]
    found = plan(40.0, keys, 5.0)
    _contiguous(found)
    assert [c.start for c in found] == [0.0, 4.1, 7.2, 21.0, 26.0, 33.3]
    lengths = [c.length(40.0) or 0.0 for c in found]
    assert min(lengths) >= chunks.MIN_CHUNK_FRACTION * 5.0
    assert max(lengths) == pytest.approx(13.8), "the gap from 7.2 s to 21 s is one chunk"


def test_unsorted_or_repeated_keyframes_are_taken_in_order() -> None:
    keys = [10.0, 0.0, 5.0, 5.0, 15.0, 20.0]
    assert [c.start for c in plan(25.0, keys, 5.0)] == [0.0, 5.0, 10.0, 15.0, 20.0]


def test_frame_counts_add_up_per_chunk() -> None:
    counts = [25] * 40
    found = plan(40.0, EVERY_SECOND, 5.0, counts)
    assert [c.frames for c in found] == [125] * 8
    assert chunks.expected_frames(found) == 1000
    assert chunks.expected_frames([replace(found[0], frames=None), *found[1:]]) is None
    with pytest.raises(ValueError, match="frame_counts"):
        plan(40.0, EVERY_SECOND, 5.0, counts[:-1])


@pytest.mark.parametrize(
    ("preset_id", "expected"),
    [
        ("web-720p", True),
        ("web-1080p", True),
        ("hevc-1080p", True),
        ("webm-vp9", True),
        ("av1-1080p", True),
        ("hls", False),
        ("audio-aac", False),
        ("audio-mp3", False),
        ("poster", False),
        ("thumbnails", False),
    ],
)
def test_which_presets_chunk(preset_id: str, expected: bool) -> None:
    assert chunks.chunkable(CATALOG[preset_id]) is expected


def test_a_preset_with_a_frame_rate_of_its_own_or_a_quality_target_does_not_chunk() -> None:
    """``-r`` makes other frames than the source's packet index counts; a VMAF target's
    CRF is searched per file, which chunks cannot do each for itself."""
    assert not chunks.chunkable(build("film", {"extends": "web-720p", "extra_args": ["-r", "24"]}))
    assert not chunks.chunkable(build("aimed", {"extends": "web-720p", "quality": "vmaf:93"}))
    assert chunks.chunkable(build("tuned", {"extends": "web-720p", "extra_args": ["-g", "48"]}))


@pytest.mark.parametrize("start", [5.32, 160160 / 30000, 0.021, 3600 * 2 - 1 / 3])
def test_the_seek_lands_just_before_the_keyframe(start: float) -> None:
    """Rounded up, the keyframe itself would be cut off; a whole frame early, the frame
    before it would be doubled at the join."""
    ss = float(chunks.seek_time(start))
    assert start - 3e-6 < ss < start


def test_a_chunk_is_video_only_exact_frames_preset_s_encoder_in_matroska() -> None:
    preset = CATALOG["web-720p"]
    chunk = Chunk(index=3, start=14.04, end=18.04, frames=100)
    cmd = chunks.chunk_command("ffmpeg", preset, _source(), Path("in.mp4"), Path("c.mkv"), chunk)
    assert cmd[cmd.index("-ss") + 1] == "14.039999"
    assert cmd.index("-ss") < cmd.index("-i")
    assert cmd[cmd.index("-frames:v") + 1] == "100"
    assert cmd[cmd.index("-map") : cmd.index("-map") + 2] == ["-map", "0:v:0"]
    assert "-an" in cmd and "-sn" in cmd and "-threads" not in cmd
    assert cmd[cmd.index("-c:v") + 1] == "libx264" and "-crf:v" in cmd and "-maxrate:v" in cmd
    assert cmd[-3:] == ["-f", "matroska", "c.mkv"]
    first = chunks.chunk_command(
        "ffmpeg", preset, _source(), Path("in.mp4"), Path("c.mkv"), replace(chunk, start=0.0)
    )
    assert "-ss" not in first


def test_threads_bound_the_decoder_and_the_encoder_x265_s_and_svt_av1_s_pools_too() -> None:
    chunk = Chunk(index=0, start=0.0, end=5.0, frames=None)
    hevc = CATALOG["hevc-1080p"]
    cmd = chunks.chunk_command("ffmpeg", hevc, _source(), Path("i"), Path("o"), chunk, threads=1)
    assert cmd.count("-threads") == 2 and cmd.index("-threads") < cmd.index("-i")
    params = cmd[cmd.index("-x265-params:v") + 1]
    assert params == "log-level=error:pools=1:frame-threads=1"
    assert cmd[cmd.index("-t") + 1] == "5.000000", "no count known: up to the next chunk"
    av1 = CATALOG["av1-1080p"]
    cmd = chunks.chunk_command("ffmpeg", av1, _source(), Path("i"), Path("o"), chunk, threads=2)
    assert cmd[cmd.index("-svtav1-params:v") + 1] == "lp=2"
    single = chunks.chunk_command("ffmpeg", av1, _source(), Path("i"), Path("o"), chunk)
    assert "-svtav1-params:v" not in single


def test_the_rest_is_the_audio_and_subtitles_whole_without_video() -> None:
    preset = CATALOG["web-720p"]
    cmd = chunks.rest_command("ffmpeg", preset, _source(), Path("in.mp4"), Path("rest.mkv"))
    maps = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-map"]
    assert maps == ["0:1", "0:2"]
    assert cmd[cmd.index("-c:a") + 1] == "aac" and cmd[cmd.index("-c:s:0") + 1] == "srt"
    assert "-ss" not in cmd and "-c:v" not in cmd
    silent = _source(audio_codec=None, tracks=())
    assert not chunks.has_rest(preset, silent)
    with pytest.raises(MediaError):
        chunks.rest_command("ffmpeg", preset, silent, Path("in.mp4"), Path("rest.mkv"))


def test_the_join_copies_places_each_chunk_at_its_time_and_stamps_like_an_encode(
    tmp_path: Path,
) -> None:
    preset = CATALOG["hevc-1080p"]
    plan_ = [Chunk(0, 0.5, 5.5, 125), Chunk(1, 5.5, None, 100)]
    paths = [tmp_path / "c0000.mkv", tmp_path / "it's.mkv"]
    dst = tmp_path / "out.mp4"
    tags = {"autotranscode_preset": "abc"}
    cmd = chunks_join = join.join_command(
        "ffmpeg", preset, _source(), paths, tmp_path / "rest.mkv", dst, tags, chunks=plan_
    )
    listing = join.list_path(dst).read_text().splitlines()
    assert listing == [
        "ffconcat version 1.0",
        f"file '{paths[0]}'",
        "duration 5.000000",
        f"file '{tmp_path}/it'\\''s.mkv'",
    ]
    assert cmd[cmd.index("-itsoffset") + 1] == "0.500000"
    assert cmd[cmd.index("-c") + 1] == "copy" and cmd[cmd.index("-c:s:0") + 1] == "mov_text"
    assert cmd[cmd.index("-tag:v") + 1] == "hvc1"
    assert cmd[cmd.index("-movflags") + 1] == "+faststart+use_metadata_tags"
    assert "autotranscode_preset=abc" in chunks_join and cmd[-1] == str(dst)
