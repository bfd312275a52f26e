"""A long video encoded in chunks and joined is the video a whole encode makes: the same
frames (none lost or doubled at a join), duration, sync and quality; a bad chunk fails the
join's check, which names it."""

from __future__ import annotations

import itertools
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from autotranscode.errors import JoinError, TranscodeError
from autotranscode.media import chunks, join, transcoder
from autotranscode.media.chunks import Chunk
from autotranscode.media.presets import CATALOG, Preset
from autotranscode.media.probe import MediaInfo, probe, read_stamp
from autotranscode.media.stamps import Stamp
from autotranscode.media.transcoder import find_ffmpeg, transcode

CHUNK_SECONDS = 5.0
#: The catalog's H.264 preset (veryfast), and a lossless one whose frames must come out
#: bit for bit as the source's.
PRESET = CATALOG["web-720p"]
LOSSLESS = replace(PRESET, video_args=("-preset", "ultrafast", "-qp", "0"), max_bitrate_k=None)
_SUBTITLES = "1\n00:00:01,000 --> 00:00:03,000\nhello\n\n2\n00:00:30,000 --> 00:00:32,000\nbye\n"
_CHAPTERS = (
    ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=20000\ntitle=One\n"
    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=20000\nEND=40000\ntitle=Two\n"
)


@dataclass(frozen=True)
class Source:
    path: Path
    info: MediaInfo


@dataclass(frozen=True)
class Joined:
    path: Path
    plan: list[Chunk]
    chunk_paths: list[Path]
    rest: Path | None


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="module")
def source(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Source:
    """40 s, 320x240 at 25 fps with sound, English subtitles and two chapters; H.264 with
    B-frames, a keyframe every 1-2 s and two scene cuts (the picture negated) between."""
    root = tmp_path_factory.mktemp("chunks")
    (root / "subs.srt").write_text(_SUBTITLES)
    (root / "chapters.txt").write_text(_CHAPTERS)
    path = root / "long.mp4"
    cuts = "negate=enable='between(t,13.37,20.11)+between(t,31.05,33.3)'"
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=40"]
    cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=40"]
    cmd += ["-i", str(root / "subs.srt"), "-i", str(root / "chapters.txt")]
    cmd += ["-map", "0:v", "-map", "1:a", "-map", "2:s", "-map_chapters", "3", "-vf", cuts]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    cmd += ["-g", "50", "-keyint_min", "25", "-c:a", "aac", "-c:s", "mov_text"]
    cmd += ["-metadata:s:s:0", "language=eng", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return Source(path, probe(path))


def _chunked(
    ffmpeg: str,
    preset: Preset,
    src: Source,
    folder: Path,
    chunk_seconds: float = CHUNK_SECONDS,
    *,
    sound: bool = True,
) -> Joined:
    """``src`` encoded in chunks by two "workers" (one thread each, as pinned workers
    would), its rest whole (unless not ``sound``), and joined: a chunked job's media side."""
    folder.mkdir()
    plan = chunks.chunk_plan(src.path, src.info, chunk_seconds)

    def encode(chunk: Chunk) -> Path:
        path = folder / f"chunk{chunk.index:04d}{chunks.CHUNK_SUFFIX}"
        cmd = chunks.chunk_command(ffmpeg, preset, src.info, src.path, path, chunk, threads=1)
        chunks.run(cmd, duration=chunk.length(src.info.duration))
        join.check_chunk(path, chunk)
        return path

    with ThreadPoolExecutor(2) as workers:
        paths = list(workers.map(encode, plan))
    rest = None
    if sound and chunks.has_rest(preset, src.info):
        rest = folder / f"rest{chunks.REST_SUFFIX}"
        cmd = chunks.rest_command(ffmpeg, preset, src.info, src.path, rest)
        chunks.run(cmd, duration=src.info.duration)
    out = _join(ffmpeg, preset, src, paths, rest, plan, folder / f"out{preset.extension}")
    return Joined(out, plan, paths, rest)


def _join(
    ffmpeg: str,
    preset: Preset,
    src: Source,
    paths: list[Path],
    rest: Path | None,
    plan: list[Chunk],
    dst: Path,
) -> Path:
    tags = {"autotranscode_preset": "chunked"}
    cmd = chunks.join_command(ffmpeg, preset, src.info, paths, rest, dst, tags, chunks=plan)
    chunks.run(cmd, duration=src.info.duration)
    return dst


@pytest.fixture(scope="module")
def chunked(ffmpeg: str, source: Source, tmp_path_factory: pytest.TempPathFactory) -> Joined:
    return _chunked(ffmpeg, PRESET, source, tmp_path_factory.mktemp("chunked") / "web")


@pytest.fixture(scope="module")
def whole(ffmpeg: str, source: Source, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("whole") / "out.mp4"
    transcode(ffmpeg, PRESET, source.info, source.path, dst)
    return dst


def test_the_plan_cuts_on_the_source_s_keyframes_about_every_five_seconds(
    source: Source, chunked: Joined
) -> None:
    keys = chunks.keyframes(source.path)
    assert len(keys) >= 20, "a keyframe every 2 s at most"
    assert 6 <= len(chunked.plan) <= 10
    assert all(c.start in keys for c in chunked.plan)
    assert all(2.5 <= (c.length(source.info.duration) or 0) <= 7.5 for c in chunked.plan)
    assert chunks.expected_frames(chunked.plan) == 1000


def test_the_joined_output_is_the_whole_encode_s_equal(
    ffmpeg: str, source: Source, chunked: Joined, whole: Path
) -> None:
    expected = chunks.expected_frames(chunked.plan)
    gap = join.av_gap(source.path)
    assert gap is not None and abs(gap) < 0.01
    chunks.verify_join(chunked.path, source.info, expected, chunks=chunked.plan, source_gap=gap)
    ours, theirs = join.packets(chunked.path), join.packets(whole)
    frame = 1 / 25
    assert len(ours.video) == len(theirs.video) == 1000
    assert ours.video_end is not None and theirs.video_end is not None
    assert abs(ours.video_end - theirs.video_end) <= frame
    assert ours.audio_end is not None and abs(ours.audio_end - ours.video_end) <= frame
    dts = [t for t in ours.video_dts if t is not None]
    assert len(dts) == 1000 and all(b > a for a, b in itertools.pairwise(dts))
    info = probe(chunked.path)
    assert (info.video_codec, info.width, info.height) == ("h264", 320, 240)
    assert [t.codec for t in info.tracks] == ["aac", "mov_text"]
    assert info.chapters == 2
    assert info.tracks[1].language == "eng"
    transcoder.verify(PRESET, source.info, chunked.path)  # the whole encode's own check
    assert read_stamp(chunked.path) == Stamp(None, "chunked")
    assert _top_boxes(chunked.path).index(b"moov") < _top_boxes(chunked.path).index(b"mdat")
    assert _psnr(ffmpeg, chunked.path, source.path) >= _psnr(ffmpeg, whole, source.path) - 0.2


def test_no_frame_is_lost_or_doubled_at_a_join(ffmpeg: str, source: Source, tmp_path: Path) -> None:
    """Lossless chunks joined decode to the source's very frames, in order."""
    joined = _chunked(ffmpeg, LOSSLESS, source, tmp_path / "lossless", sound=False)
    assert _frame_hashes(ffmpeg, joined.path) == _frame_hashes(ffmpeg, source.path)


def test_a_chunk_missing_frames_fails_its_own_check_and_the_join_s_naming_it(
    ffmpeg: str, source: Source, chunked: Joined, tmp_path: Path
) -> None:
    bad = chunked.plan[3]
    assert bad.frames is not None
    short = tmp_path / "short.mkv"
    cmd = chunks.chunk_command(
        ffmpeg, PRESET, source.info, source.path, short, replace(bad, frames=bad.frames - 10)
    )
    chunks.run(cmd, duration=None)
    with pytest.raises(JoinError) as raised:
        join.check_chunk(short, bad)
    assert raised.value.bad_chunk == 3
    paths = [short if n == 3 else p for n, p in enumerate(chunked.chunk_paths)]
    out = _join(ffmpeg, PRESET, source, paths, chunked.rest, chunked.plan, tmp_path / "o.mp4")
    expected = chunks.expected_frames(chunked.plan)
    with pytest.raises(JoinError, match="chunk 3") as raised:
        join.verify_join(out, source.info, expected, chunks=chunked.plan)
    assert raised.value.bad_chunk == 3
    assert not raised.value.retryable


def test_a_truncated_chunk_file_fails_the_join_s_check_naming_it(
    ffmpeg: str, source: Source, chunked: Joined, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.mkv"
    data = chunked.chunk_paths[5].read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    paths = [cut if n == 5 else p for n, p in enumerate(chunked.chunk_paths)]
    out = _join(ffmpeg, PRESET, source, paths, chunked.rest, chunked.plan, tmp_path / "o.mp4")
    expected = chunks.expected_frames(chunked.plan)
    with pytest.raises(JoinError) as raised:
        join.verify_join(out, source.info, expected, chunks=chunked.plan)
    assert raised.value.bad_chunk == 5


def test_a_rest_cut_short_fails_the_join_s_check_of_sound_and_picture(
    ffmpeg: str, source: Source, chunked: Joined, tmp_path: Path
) -> None:
    assert chunked.rest is not None
    cut = tmp_path / "rest.mkv"
    data = chunked.rest.read_bytes()
    cut.write_bytes(data[: len(data) * 7 // 10])
    out = _join(ffmpeg, PRESET, source, chunked.chunk_paths, cut, chunked.plan, tmp_path / "o.mp4")
    expected = chunks.expected_frames(chunked.plan)
    with pytest.raises(JoinError, match="audio ends at") as raised:
        join.verify_join(out, source.info, expected, chunks=chunked.plan, source_gap=0.0)
    assert raised.value.bad_chunk is None, "no chunk to redo: the rest is"


def test_a_variable_frame_rate_video_joins_frame_for_frame(ffmpeg: str, tmp_path: Path) -> None:
    """25 fps for 6 s, then 50: the packet index counts each chunk's frames whatever
    the rate, and lossless chunks join to the source's frames, at their times."""
    path = tmp_path / "vfr.mkv"
    rate = "setpts='if(lt(N,150),N/25,6+(N-150)/50)/TB'"
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]
    cmd += ["-i", "testsrc2=size=160x120:rate=25:duration=12", "-vf", rate, "-fps_mode", "vfr"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-g", "25", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    src = Source(path, probe(path))
    joined = _chunked(ffmpeg, LOSSLESS, src, tmp_path / "vfr", chunk_seconds=3.0)
    assert len(joined.plan) >= 3 and joined.rest is None
    join.verify_join(joined.path, src.info, chunks.expected_frames(joined.plan), chunks=joined.plan)
    assert _frame_hashes(ffmpeg, joined.path) == _frame_hashes(ffmpeg, path)
    ours, theirs = join.packets(joined.path), join.packets(path)
    assert sorted(ours.video) == pytest.approx(sorted(theirs.video), abs=0.002)


def test_an_mpeg_ts_source_at_29_97_joins_frame_for_frame_and_in_sync(
    ffmpeg: str, tmp_path: Path
) -> None:
    """Its times start at 1.4 s, its picture a little after its sound, and a frame lasts
    1001/30000 s, which no decimal -ss gives exactly: each chunk still starts on its own
    keyframe, and the picture starts as far after the sound as in the source."""
    path = tmp_path / "ntsc.ts"
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30000/1001:duration=12"]
    cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=12"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-g", "45", "-c:a", "aac", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    src = Source(path, probe(path))
    joined = _chunked(ffmpeg, LOSSLESS, src, tmp_path / "ntsc", chunk_seconds=3.0)
    assert len(joined.plan) >= 3 and joined.plan[0].start > 0
    gap = chunks.av_gap(path)
    expected = chunks.expected_frames(joined.plan)
    chunks.verify_join(joined.path, src.info, expected, chunks=joined.plan, source_gap=gap)
    assert _frame_hashes(ffmpeg, joined.path) == _frame_hashes(ffmpeg, path)
    assert min(join.packets(joined.path).video) == pytest.approx(joined.plan[0].start, abs=0.002)


@pytest.mark.parametrize("preset_id", ["hevc-1080p", "webm-vp9", "av1-1080p"])
def test_hevc_vp9_and_av1_chunks_join_into_what_their_presets_make(
    ffmpeg: str, tmp_path: Path, preset_id: str
) -> None:
    preset = CATALOG[preset_id]
    path = tmp_path / "short.mp4"
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=8"]
    cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=8"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    src = Source(path, probe(path))
    joined = _chunked(ffmpeg, preset, src, tmp_path / "out", chunk_seconds=2.0)
    assert len(joined.plan) == 4
    expected = chunks.expected_frames(joined.plan)
    chunks.verify_join(joined.path, src.info, expected, chunks=joined.plan, source_gap=0.0)
    transcoder.verify(preset, src.info, joined.path)


def test_a_cancelled_chunk_run_stops_and_leaves_no_file(
    ffmpeg: str, source: Source, chunked: Joined, tmp_path: Path
) -> None:
    """Chunks run through the one runner: a cancel stops ffmpeg and removes its output."""
    dst = tmp_path / "cancelled.mkv"
    cmd = chunks.chunk_command(ffmpeg, PRESET, source.info, source.path, dst, chunked.plan[0])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TranscodeError, match="cancelled"):
        chunks.run(cmd, duration=5.0, cancel=cancel, output=dst)
    assert not dst.exists()


def _psnr(ffmpeg: str, encoded: Path, reference: Path) -> float:
    """Average PSNR of every frame, paired by index (``quality``'s way)."""
    graph = "[0:v]settb=1/1000,setpts=N[d];[1:v]settb=1/1000,setpts=N[r];[d][r]psnr"
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-i", str(encoded), "-i", str(reference)]
    said = subprocess.run(
        [*cmd, "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True, check=True
    ).stderr
    found = re.search(r"PSNR .*average:([0-9.]+)", said)
    assert found, said
    return float(found[1])


def _frame_hashes(ffmpeg: str, path: Path) -> list[str]:
    cmd = [ffmpeg, "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[-1].strip() for line in out.splitlines() if line[:1] != "#"]


def _top_boxes(path: Path) -> list[bytes]:
    """The MP4's top-level boxes, in order (``+faststart``: moov before mdat)."""
    data = path.read_bytes()
    names, at = [], 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        names.append(data[at + 4 : at + 8])
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        if size < 8:
            break
        at += size
    return names
