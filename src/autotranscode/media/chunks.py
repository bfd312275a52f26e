"""One long video cut into chunks that separate encodes make, to be joined without
re-encoding (``join``): the media side of accelerated transcoding (issue 19).

- **Where to cut**: on the source's keyframes, read from the packet index without decoding
  (``keyframes``), about ``chunk_seconds`` apart (``plan``). A chunk's encode seeks to its
  keyframe, so decoding it starts there and nothing before it is decoded in vain (in an
  indexed container, MP4 or Matroska; an MPEG-TS seek lands a little before). Asked
  to (``--chunk-scenes``), a cut prefers a keyframe at a scene change (``scenes``: one
  cheap decode of the whole video) within SCENE_WINDOW of where it would be: still a
  keyframe, so seeking to it stays exact.
- **A chunk**: video only, exactly its own frames: an accurate seek to its first frame
  (``-ss`` a microsecond before the keyframe's time: a rounding of the time up would drop
  that frame and leave a hole at the join, one down would take the frame before and double
  it), then exactly as many frames as the packet index counts from it to the next chunk
  (``-frames:v``). Filters and encoder options are the whole-file encode's own
  (``video.options``), so each chunk is what that encode would make of those frames, but
  starting on a keyframe of its own: every encoder's first frame is one, and nothing in a
  chunk refers to a frame of another.
- **Chunk files are Matroska**: concatenated by stream copy they keep every frame in its
  place with B-frames (as Av1an's chunks do); it holds every codec we encode, and is
  written as it goes. NUT chunks came out two frames late (the B-frame delay) and the join
  0.28 s long; MP4 chunks joined right too (this FFmpeg applies their edit lists), but
  they depend on that. Matroska counts milliseconds: ``join`` places each chunk by the
  source's times, so the roundings never add up.
- **The rest** (``rest_command``): audio encoded once, whole (cut at video keyframes it
  would click and gap), text subtitles and chapters, into Matroska for the join to copy.

The join and its check are ``join``'s, offered here too (``join_command``, ``verify_join``,
``check_chunk``, ``av_gap``), with the runner every part goes through (``run``).

What does not chunk: presets other than a single video output (``chunkable``), and
interlaced sources (the deinterlacer looks at the frames around each one, and inverse
telecine at cycles of five, which a cut would break; ``chunk_plan`` gives none).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import av

from ..errors import MediaError
from . import interlace, scenes, streams, video
from .join import av_gap as av_gap
from .join import check_chunk as check_chunk
from .join import join_command as join_command
from .join import verify_join as verify_join
from .presets import Preset
from .probe import MediaInfo
from .runner import LOG_ARGS
from .runner import run as run

log = logging.getLogger(__name__)

#: Encoders whose outputs are cut and joined; others (and every other kind) encode whole.
CHUNK_ENCODERS = frozenset({"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"})
#: A chunk is at least this part of ``chunk_seconds``: a keyframe nearer the last cut, or
#: nearer the end, is passed over (the last chunk takes the tail instead).
MIN_CHUNK_FRACTION = 0.5
#: With scene changes: a cut moves to a keyframe at one if it is this part of
#: ``chunk_seconds`` or nearer to where it would be, so a chunk's length stays within
#: 1 +- 2 SCENE_WINDOW of it.
SCENE_WINDOW = 0.25
#: The file's suffix of a chunk and of the rest (Matroska: see the module's text).
CHUNK_SUFFIX = ".mkv"
REST_SUFFIX = ".mkv"
#: Options of the preset's that are the audio's (``-ar``, ``-ac``): the rest's, not a chunk's.
_AUDIO_EXTRAS = frozenset({"-ar", "-ac"})


@dataclass(frozen=True)
class Chunk:
    """One part of the video, from a keyframe to the next chunk's.

    Times are seconds from the file's start as ffmpeg's ``-ss`` counts them: the source's
    timestamp of the keyframe less the container's start time (0 for most files).
    """

    index: int
    #: The keyframe it starts on.
    start: float
    #: The next chunk's start (exclusive); None for the last chunk, which runs to the end.
    end: float | None
    #: Video frames in [start, end) from the packet index, when known.
    frames: int | None

    def length(self, duration: float | None) -> float | None:
        """Its seconds, the last chunk's up to ``duration`` (the file's): for progress."""
        end = self.end if self.end is not None else duration
        return None if end is None else max(0.0, end - self.start)


def keyframes(src: Path | str) -> list[float]:
    """Times (s, see ``Chunk``) of the first video stream's keyframes, from its packets
    (read, never decoded); MediaError if the file cannot be read."""
    return _index(src)[0]


def plan(
    duration: float | None,
    keyframe_times: Sequence[float],
    chunk_seconds: float,
    frame_counts: Sequence[int] | None = None,
    scene_times: Sequence[float] = (),
    match: float = scenes.MATCH_SECONDS,
) -> list[Chunk]:
    """Chunks of about ``chunk_seconds``, each starting on a keyframe; [] (no chunking) when
    the video is shorter than 2 ``chunk_seconds`` or has too few keyframes to cut.

    ``frame_counts``: the frames from each keyframe to the next (the last: to the end), as
    many as ``keyframe_times``; each chunk's ``frames`` is then their sum. Each cut is the
    keyframe nearest ``chunk_seconds`` after the last one, leaving at least
    MIN_CHUNK_FRACTION of it to each side: a keyframe far apart from the others makes a
    longer chunk, never a tiny one; less than 1 + MIN_CHUNK_FRACTION of it left is the
    last chunk, whole. ``scene_times``: scene changes (``scenes``); a keyframe within
    ``match`` of one is a scene's, and the one of those nearest the ideal cut, within
    SCENE_WINDOW of it, is taken instead.
    """
    if frame_counts is not None and len(frame_counts) != len(keyframe_times):
        raise ValueError("frame_counts must count the frames after each keyframe")
    if chunk_seconds <= 0 or not duration or duration < 2 * chunk_seconds:
        return []
    counted = frame_counts if frame_counts is not None else [0] * len(keyframe_times)
    times: list[float] = []
    counts: list[int] = []
    for time, count in sorted(zip(keyframe_times, counted, strict=True)):
        if times and time == times[-1]:
            counts[-1] += count
        elif time < duration:
            times.append(time)
            counts.append(count)
    if not times:
        return []
    at_scenes = scene_keyframes(times, scene_times, match)
    least = MIN_CHUNK_FRACTION * chunk_seconds
    window = SCENE_WINDOW * chunk_seconds
    last_cut = bisect.bisect_right(times, duration - least) - 1
    cuts = [0]
    while True:
        here = times[cuts[-1]]
        if duration - here < chunk_seconds + least:
            break  # the rest is one chunk of at most 1.5 chunk_seconds, not two small ones
        low = bisect.bisect_left(times, here + least)
        if low > last_cut:
            break
        ideal = here + chunk_seconds
        near = bisect.bisect_left(times, ideal, low, last_cut + 1)
        picks = [i for i in (near - 1, near) if low <= i <= last_cut]
        first = bisect.bisect_left(times, ideal - window, low, last_cut + 1)
        after = bisect.bisect_right(times, ideal + window, low, last_cut + 1)
        picks = [i for i in range(first, after) if i in at_scenes] or picks
        cuts.append(min(picks, key=lambda i: abs(times[i] - ideal)))
    if len(cuts) < 2:
        return []
    bounds = [*cuts, len(times)]
    return [
        Chunk(
            index=n,
            start=times[first],
            end=times[after] if after < len(times) else None,
            frames=sum(counts[first:after]) if frame_counts is not None else None,
        )
        for n, (first, after) in enumerate(itertools.pairwise(bounds))
    ]


def scene_keyframes(
    times: Sequence[float], scene_times: Sequence[float], match: float = scenes.MATCH_SECONDS
) -> set[int]:
    """The indexes in ``times`` (sorted keyframe times) of the keyframes at a scene change:
    for each of ``scene_times``, the keyframe nearest it, if within ``match``."""
    found = set()
    for scene in scene_times:
        at = bisect.bisect_left(times, scene)
        nearest = min(
            (i for i in (at - 1, at) if 0 <= i < len(times)),
            key=lambda i: abs(times[i] - scene),
            default=None,
        )
        if nearest is not None and abs(times[nearest] - scene) <= match:
            found.add(nearest)
    return found


def chunk_plan(
    src: Path | str,
    source: MediaInfo,
    chunk_seconds: float,
    *,
    scene_cuts: bool = False,
    ffmpeg: str | None = None,
    cancel: threading.Event | None = None,
    say: Callable[[str], None] | None = None,
) -> list[Chunk]:
    """The chunks of ``src`` (``plan`` of its keyframes, with each chunk's frame count);
    [] when it is not to be cut: short, no video, interlaced (see the module's text).

    ``source``: the facts a worker encodes by (``probe(detail=True)``, then
    ``interlace.detect``): the same for the plan, every chunk, the rest and the join.
    ``scene_cuts`` (``--chunk-scenes``): cuts prefer scene changes that ``ffmpeg`` finds
    (``scenes.scene_changes``, stopped by ``cancel``); ``say`` tells the file's log what
    the pass found and how many cuts moved. Without any found, the cuts are the plain ones.
    """
    duration = source.duration
    if not source.has_video or not duration or chunk_seconds <= 0:
        return []
    if duration < 2 * chunk_seconds:
        return []
    if interlace.interlaced(source):
        log.info("interlaced source: encoded whole, as its deinterlacer needs every frame")
        return []
    keys, frames = _index(src)
    ends = [*keys[1:], math.inf]
    counts = [
        bisect.bisect_left(frames, after) - bisect.bisect_left(frames, key)
        for key, after in zip(keys, ends, strict=True)
    ]
    planned = plan(duration, keys, chunk_seconds, counts)
    if not scene_cuts or not planned:
        return planned
    if ffmpeg is None:
        raise ValueError("scene cuts need an ffmpeg to look for them with")
    found = scenes.scene_changes(ffmpeg, src, duration, cancel=cancel)
    moved = plan(duration, keys, chunk_seconds, counts, found.times) if found else planned
    if say is not None:
        at = scene_keyframes(keys, found.times) if found else set()
        on = sum(1 for c in moved[1:] if bisect.bisect_left(keys, c.start) in at)
        said = f"scene changes: {found}" if found else "scene changes: none (the pass failed)"
        say(f"{said}; {on} of {len(moved) - 1} cuts moved to one")
    return moved


def expected_frames(chunks: Sequence[Chunk]) -> int | None:
    """The frames a join of these chunks holds, when every chunk's count is known."""
    counts = [c.frames for c in chunks]
    return None if not counts or None in counts else sum(c or 0 for c in counts)


def chunkable(preset: Preset) -> bool:
    """Whether outputs of ``preset`` can be made in chunks: one video file (not HLS, audio,
    pictures) by an encoder of CHUNK_ENCODERS, without a frame rate of its own (``-r``
    would make other frames than the packet index counts), and without a VMAF target
    (its CRF is searched per file, before any chunk could be encoded: not done yet)."""
    return (
        preset.kind == "video"
        and preset.video_codec in CHUNK_ENCODERS
        and "-r" not in preset.extra_args[::2]
        and preset.quality is None
    )


def chunk_command(
    ffmpeg: str,
    preset: Preset,
    source: MediaInfo,
    src: Path | str,
    dst: Path | str,
    chunk: Chunk,
    *,
    threads: int | None = None,
) -> list[str]:
    """ffmpeg's command for one chunk's video (Matroska at ``dst``): see the module's text.

    ``threads``: decoder and encoder threads (1 for a worker pinned to one core).
    """
    preset.check(source)
    cmd = [ffmpeg, *LOG_ARGS, "-progress", "pipe:1", "-nostats", "-hide_banner", "-nostdin", "-y"]
    if threads:
        cmd += ["-threads", str(threads)]
    if chunk.start > 0:
        cmd += ["-ss", seek_time(chunk.start)]
    encode = video.options(video.threaded(preset, threads), source)
    cmd += ["-i", str(src), "-map", "0:v:0", *encode]
    if chunk.frames is not None:
        cmd += ["-frames:v", str(chunk.frames)]
    elif chunk.end is not None:
        cmd += ["-t", f"{chunk.end - chunk.start:.6f}"]
    if threads:
        cmd += ["-threads", str(threads)]
    cmd += [a for pair in _pairs(preset.extra_args) if pair[0] not in _AUDIO_EXTRAS for a in pair]
    return [*cmd, "-an", "-sn", "-dn", *_NO_TAGS, "-f", "matroska", str(dst)]


def seek_time(start: float) -> str:
    """``-ss`` for a chunk starting at ``start``: just before it, to the microsecond (the
    frame before is a whole frame earlier, and ffmpeg's seek rounds to the nearest tick)."""
    return f"{max(0, math.floor(start * 1e6) - 1) / 1e6:.6f}"


def has_rest(preset: Preset, source: MediaInfo) -> bool:
    """Whether the output carries more than the video (audio, subtitles): a rest to make."""
    return bool(streams.audio_specs(preset, source) or streams.subtitle_tracks(preset, source))


def rest_command(
    ffmpeg: str, preset: Preset, source: MediaInfo, src: Path | str, dst: Path | str
) -> list[str]:
    """ffmpeg's command for everything but the video, whole (Matroska at ``dst``): the
    audio tracks encoded as the whole-file encode does, text subtitles, chapters, tags.

    MediaError when there is nothing but video (``has_rest``): the join then takes none.
    """
    if not has_rest(preset, source):
        raise MediaError("the output carries nothing but its video: there is no rest to make")
    cmd = [ffmpeg, *LOG_ARGS, "-progress", "pipe:1", "-nostats"]
    cmd += ["-hide_banner", "-nostdin", "-y", "-i", str(src)]
    for spec in streams.audio_specs(preset, source):
        cmd += ["-map", spec]
    subtitles = streams.subtitle_tracks(preset, source)
    for track in subtitles:
        cmd += ["-map", f"0:{track.index}"]
    if streams.carries_audio(preset, source):
        cmd += streams.audio_options(preset)
    matroska = replace(preset, extension=".mkv")  # the join converts them for its container
    for n, track in enumerate(subtitles):
        cmd += [f"-c:s:{n}", str(streams.subtitle_codec(matroska, track))]
    cmd += streams.metadata(preset, source)
    cmd += [a for pair in _pairs(preset.extra_args) if pair[0] in _AUDIO_EXTRAS for a in pair]
    return [*cmd, "-f", "matroska", str(dst)]


#: A chunk carries no tags or chapters: the join sets the output's (``streams.metadata``).
_NO_TAGS = ("-map_metadata", "-1", "-map_chapters", "-1")


def _pairs(args: Sequence[str]) -> list[tuple[str, str]]:
    return list(zip(args[::2], args[1::2], strict=True))


def _index(src: Path | str) -> tuple[list[float], list[float]]:
    """The keyframes' times and every frame's, sorted (s, see ``Chunk``), from the packets
    of the first video stream: read, never decoded. Packets the container marks to be
    discarded (before an MP4 edit list's start) are no frames of the output."""
    try:
        with av.open(str(src), metadata_errors="ignore") as container:
            stream = next(
                (
                    s
                    for s in container.streams.video
                    if not (s.disposition & av.stream.Disposition.attached_pic)
                ),
                None,
            )
            if stream is None or stream.time_base is None:
                raise MediaError("no video stream to cut")
            origin = container.start_time / av.time_base if container.start_time else 0.0
            base = stream.time_base
            keys: list[float] = []
            frames: list[float] = []
            for packet in container.demux(stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0 or stamp is None or packet.is_discard:
                    continue
                time = float(stamp * base) - origin
                frames.append(time)
                if packet.is_keyframe:
                    keys.append(time)
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"cannot read the video's keyframes: {exc}") from exc
    if not keys:
        raise MediaError("the video's packets mark no keyframe")
    frames.sort()
    return sorted(set(keys)), frames
