"""A chunked file's chunks joined into its output, and the proof that nothing was lost.

The join copies: the concat demuxer reads the chunks one after the other (a list file
next to the output), the rest (``chunks.rest_command``) gives the audio, subtitles and
chapters, and the output gets the container options and tags a whole-file encode gets
(``recipe.container_options``: ``+faststart``, the stamp).

Each chunk is placed at its own start in the source's time (the list says each chunk's
length), not where the previous chunk's rounded end falls: Matroska counts milliseconds,
and over a thousand chunks those roundings would drift the picture away from the sound.

The check (``verify_join``) reads the packets, never decodes: the frame count the packet
index promised, the duration within a frame, audio and video ending together, video
timestamps that only go forward. When it can tell which chunk is wrong, ``JoinError``
names it (``bad_chunk``), so that chunk alone is encoded again.

A chunk is taken as ``Part``, what ``chunks.Chunk`` is, so that ``chunks`` can offer these
functions too (``chunks.join_command``…) without the two importing each other.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av

from ..errors import JoinError, MediaError
from . import recipe, streams
from .presets import Preset
from .probe import MediaInfo
from .runner import LOG_ARGS

log = logging.getLogger(__name__)


class Part(Protocol):
    """A part of the video as ``chunks.Chunk`` describes it (its times: the source's)."""

    @property
    def index(self) -> int: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float | None: ...
    @property
    def frames(self) -> int | None: ...


#: The concat list's name: the output's, with this added (beside it, removed with it).
LIST_SUFFIX = ".concat.txt"
#: Timestamps are rounded by containers (Matroska: to the millisecond): allowed on top of
#: the one frame a duration may be off by.
ROUNDING_S = 0.002


def list_path(dst: Path | str) -> Path:
    dst = Path(dst)
    return dst.with_name(dst.name + LIST_SUFFIX)


def join_command(
    ffmpeg: str,
    preset: Preset,
    source: MediaInfo,
    chunk_paths: Sequence[Path],
    rest: Path | None,
    dst: Path | str,
    tags: Mapping[str, str] | None = None,
    *,
    chunks: Sequence[Part] | None = None,
) -> list[str]:
    """ffmpeg's command that joins ``chunk_paths`` (in order) and ``rest`` into ``dst``.

    Writes the concat list (``list_path(dst)``) as it goes; the caller removes it with the
    chunks. ``chunks``: the plan the paths were made from (same order), so that each
    chunk is placed at its source time (see the module's text); without it, each chunk
    follows the end of the one before. ``tags``: the output's stamp (``Stamp.tags``).
    """
    if chunks is not None and len(chunks) != len(chunk_paths):
        raise ValueError("one chunk per path")
    listing = list_path(dst)
    lines = ["ffconcat version 1.0"]
    for n, path in enumerate(chunk_paths):
        lines.append(f"file {_quoted(Path(path).resolve())}")
        end = chunks[n].end if chunks is not None else None
        if chunks is not None and end is not None:
            lines.append(f"duration {end - chunks[n].start:.6f}")
    listing.write_text("\n".join(lines) + "\n")
    cmd = [ffmpeg, *LOG_ARGS, "-progress", "pipe:1", "-nostats", "-hide_banner", "-nostdin"]
    cmd += ["-y"]
    if chunks and chunks[0].start > 0:
        # The picture starts where the source's did, after its sound (the rest's starts at 0).
        cmd += ["-itsoffset", f"{chunks[0].start:.6f}"]
    cmd += ["-f", "concat", "-safe", "0", "-i", str(listing)]
    if rest is not None:
        late = start_time(rest)
        if late > 0:
            # The sound starts after the picture: ffmpeg would move the rest's start to 0.
            cmd += ["-itsoffset", f"{late:.6f}"]
        cmd += ["-i", str(rest)]
    cmd += ["-map", "0:v:0"]
    if rest is not None:
        cmd += ["-map", "1:a?", "-map", "1:s?"]
    cmd += ["-c", "copy"]
    if rest is not None:
        cmd += streams.subtitle_options(preset, source)
    if preset.video_codec == "libx265":
        cmd += ["-tag:v", "hvc1"]  # as an encode tags it (``video.encoder_options``)
    cmd += ["-map_chapters", "1" if rest is not None else "-1"]
    cmd += streams.metadata(preset, source)
    return [*cmd, *recipe.container_options(preset, tags), str(dst)]


def start_time(path: Path | str) -> float:
    """The container's start time (s): the rest's is its first sound's, which may be late
    (0 for a file not there: ffmpeg's join then says it is missing)."""
    if not Path(path).exists():
        return 0.0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            start = container.start_time
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot read {Path(path).name}: {exc}") from exc
    return start / av.time_base if start else 0.0


def _quoted(path: Path) -> str:
    """A path as the concat list reads it: in single quotes, each quote escaped."""
    return "'" + str(path).replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class Packets:
    """What a file's packets say of its first video and first audio stream (seconds)."""

    #: Video presentation times, in decode order.
    video: tuple[float, ...]
    #: Video decode times, in decode order (None where the container has none).
    video_dts: tuple[float | None, ...]
    video_end: float | None
    audio_end: float | None
    #: The longest audio packet: one audio frame.
    audio_frame: float
    #: The file's duration as FFmpeg tells it (every stream's, subtitles too), like a probe's.
    duration: float | None = None

    @property
    def frame(self) -> float:
        """One video frame: the typical step between presentation times."""
        times = sorted(self.video)
        steps = [b - a for a, b in itertools.pairwise(times) if b > a]
        return statistics.median(steps) if steps else 0.0


def packets(path: Path | str) -> Packets:
    """Read the packets of ``path``'s first video and audio streams (no decoding)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            v = container.streams.video[0] if container.streams.video else None
            a = container.streams.audio[0] if container.streams.audio else None
            wanted = [s for s in (v, a) if s is not None]
            pts: list[float] = []
            dts: list[float | None] = []
            video_end = audio_end = None
            audio_frame = 0.0
            for packet in container.demux(wanted):
                if packet.size == 0 or packet.pts is None or packet.time_base is None:
                    continue
                base = packet.time_base
                start = float(packet.pts * base)
                end = float((packet.pts + (packet.duration or 0)) * base)
                if packet.stream is v:
                    pts.append(start)
                    dts.append(float(packet.dts * base) if packet.dts is not None else None)
                    video_end = end if video_end is None else max(video_end, end)
                else:
                    audio_end = end if audio_end is None else max(audio_end, end)
                    audio_frame = max(audio_frame, end - start)
            duration = container.duration / av.time_base if container.duration else None
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise JoinError(f"the joined output cannot be read: {exc}") from exc
    return Packets(tuple(pts), tuple(dts), video_end, audio_end, audio_frame, duration)


def check_chunk(path: Path | str, chunk: Part) -> None:
    """JoinError naming ``chunk`` when its file lacks frames the plan counts (or has more):
    a chunk job checks its own output so a bad chunk is redone before any join."""
    if chunk.frames is None:
        return
    try:
        found = len(packets(path).video)
    except JoinError as exc:
        raise JoinError(f"chunk {chunk.index}: {exc}", bad_chunk=chunk.index) from exc
    if found != chunk.frames:
        raise JoinError(
            f"chunk {chunk.index} has {found} frames, expected {chunk.frames}",
            bad_chunk=chunk.index,
        )


def av_gap(path: Path | str) -> float | None:
    """How much longer the sound of ``path`` lasts than its picture (s; negative: shorter),
    None without both: measured on the source when it is cut, for ``verify_join``."""
    found = packets(path)
    if found.video_end is None or found.audio_end is None:
        return None
    return found.audio_end - found.video_end


def verify_join(
    joined: Path,
    source: MediaInfo,
    expected_frames: int | None,
    *,
    chunks: Sequence[Part] | None = None,
    source_gap: float | None = None,
    source_path: Path | str | None = None,
) -> None:
    """JoinError when ``joined`` is not the whole file its chunks were cut from.

    Checks: the frame count (``expected_frames``: ``chunks.expected_frames``), the duration
    within one frame of ``source``'s, video timestamps strictly increasing, and the audio
    ending with the video within an audio and a video frame: as they do in the source
    (``source_gap``: ``av_gap`` of the source, or ``source_path`` to measure it here),
    else together. ``chunks``: the plan; each chunk's part of the output must then hold its
    own frames, and the chunk at fault is named (``bad_chunk``).
    """
    found = packets(joined)
    if not found.video:
        raise JoinError("the joined output has no video")
    frame = found.frame or (1 / source.frame_rate if source.frame_rate else 0.0)
    ordered = sorted(found.video)
    problems: list[str] = []
    blamed: list[int | None] = []

    def fail(problem: str, bad: int | None) -> None:
        problems.append(problem)
        blamed.append(bad)

    dts = [t for t in found.video_dts if t is not None]
    back = next((i for i in range(1, len(dts)) if dts[i] <= dts[i - 1]), None)
    if back is not None:
        fail(f"video decode timestamps go back at {dts[back]:.3f}s", _chunk_at(chunks, dts[back]))
    twice = next((i for i in range(1, len(ordered)) if ordered[i] <= ordered[i - 1]), None)
    if twice is not None:
        fail(f"two video frames at {ordered[twice]:.3f}s", _chunk_at(chunks, ordered[twice]))
    if expected_frames is not None and len(ordered) != expected_frames:
        fail(f"{len(ordered)} video frames, expected {expected_frames}", None)
    misplaced = _miscounted(chunks, ordered)
    if misplaced is not None:
        chunk, held = misplaced
        said = f"chunk {chunk.index}'s part holds {held} frames, expected {chunk.frames}"
        fail(said, chunk.index)
    # The file's duration as the source's was measured (a probe's: every stream's).
    end = found.duration or max(t for t in (found.video_end, found.audio_end) if t is not None)
    if source.duration is not None and abs(end - source.duration) > frame + ROUNDING_S:
        fail(f"duration {end:.3f}s, the source's {source.duration:.3f}s", None)
    if found.video_end is not None and found.audio_end is not None:
        if source_gap is None and source_path is not None:
            source_gap = av_gap(source_path)
        gap = found.audio_end - found.video_end - (source_gap or 0.0)
        if abs(gap) > frame + found.audio_frame + ROUNDING_S:
            said = f"audio ends at {found.audio_end:.3f}s, video at {found.video_end:.3f}s"
            fail(said + (f" (in the source {source_gap:+.3f}s)" if source_gap else ""), None)
    if problems:
        bad = next((b for b in blamed if b is not None), None)
        where = f" (chunk {bad})" if bad is not None else ""
        raise JoinError(f"joined output check failed{where}: {'; '.join(problems)}", bad_chunk=bad)


def _chunk_at(chunks: Sequence[Part] | None, time: float) -> int | None:
    """The chunk whose part of the output holds ``time`` (the output's timestamps are the
    source's, from its start: ``join_command`` places each chunk so)."""
    if not chunks:
        return None
    return next(
        (c.index for c in chunks if c.end is None or time < c.end - ROUNDING_S),
        chunks[-1].index,
    )


def _miscounted(chunks: Sequence[Part] | None, ordered: Sequence[float]) -> tuple[Part, int] | None:
    """The first chunk whose part of the output (its times, ``_chunk_at``) does not hold its
    planned frames, and how many it holds."""
    if not chunks:
        return None
    for chunk in chunks:
        if chunk.frames is None:
            continue
        low = bisect.bisect_left(ordered, chunk.start - ROUNDING_S)
        high = (
            bisect.bisect_left(ordered, chunk.end - ROUNDING_S)
            if chunk.end is not None
            else len(ordered)
        )
        if high - low != chunk.frames:
            return chunk, high - low
    return None
