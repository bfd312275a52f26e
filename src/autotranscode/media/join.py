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
"""

from __future__ import annotations

import itertools
import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from ..errors import JoinError
from . import recipe, streams
from .chunks import Chunk
from .presets import Preset
from .probe import MediaInfo
from .runner import LOG_ARGS

log = logging.getLogger(__name__)

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
    chunks: Sequence[Chunk] | None = None,
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
        length = chunks[n].length(None) if chunks is not None else None
        if length is not None:
            lines.append(f"duration {length:.6f}")
    listing.write_text("\n".join(lines) + "\n")
    cmd = [ffmpeg, *LOG_ARGS, "-progress", "pipe:1", "-nostats", "-hide_banner", "-nostdin"]
    cmd += ["-y"]
    if chunks and chunks[0].start > 0:
        # The picture starts where the source's did, after its sound (the rest's starts at 0).
        cmd += ["-itsoffset", f"{chunks[0].start:.6f}"]
    cmd += ["-f", "concat", "-safe", "0", "-i", str(listing)]
    if rest is not None:
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
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise JoinError(f"the joined output cannot be read: {exc}") from exc
    return Packets(tuple(pts), tuple(dts), video_end, audio_end, audio_frame)


def check_chunk(path: Path | str, chunk: Chunk) -> None:
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


def verify_join(
    joined: Path,
    source: MediaInfo,
    expected_frames: int | None,
    *,
    chunks: Sequence[Chunk] | None = None,
    source_path: Path | str | None = None,
) -> None:
    """JoinError when ``joined`` is not the whole file its chunks were cut from.

    Checks: the frame count (``expected_frames``: ``chunks.expected_frames``), the duration
    within one frame of ``source``'s, the audio ending with the video (within an audio and a
    video frame, or as in ``source_path`` when given: a source whose sound outlasts its
    picture), and video timestamps strictly increasing. ``chunks``: the plan, to name the
    chunk at fault (``bad_chunk``).
    """
    found = packets(joined)
    if not found.video:
        raise JoinError("the joined output has no video")
    frame = found.frame or (1 / source.frame_rate if source.frame_rate else 0.0)
    problems: list[str] = []
    bad: int | None = None
    dts = [t for t in found.video_dts if t is not None]
    going_back = next((i for i in range(1, len(dts)) if dts[i] <= dts[i - 1]), None)
    if going_back is not None:
        problems.append(f"video decode timestamps go back at {dts[going_back]:.3f}s")
        bad = _chunk_at(chunks, dts[going_back] - found.video[0])
    ordered = sorted(found.video)
    twice = next((i for i in range(1, len(ordered)) if ordered[i] <= ordered[i - 1]), None)
    if twice is not None:
        problems.append(f"two video frames at {ordered[twice]:.3f}s")
        bad = bad if bad is not None else _chunk_at(chunks, ordered[twice] - ordered[0])
    if expected_frames is not None and len(ordered) != expected_frames:
        problems.append(f"{len(ordered)} video frames, expected {expected_frames}")
        bad = bad if bad is not None else _miscounted(chunks, ordered)
    end = max(t for t in (found.video_end, found.audio_end) if t is not None)
    if source.duration is not None and abs(end - source.duration) > frame + ROUNDING_S:
        problems.append(f"duration {end:.3f}s, the source's {source.duration:.3f}s")
        bad = bad if bad is not None else _miscounted(chunks, ordered)
    if found.video_end is not None and found.audio_end is not None:
        gap = found.audio_end - found.video_end
        allowed = frame + found.audio_frame + ROUNDING_S
        if source_path is not None:
            own = packets(source_path)
            if own.video_end is not None and own.audio_end is not None:
                gap -= own.audio_end - own.video_end
        if abs(gap) > allowed:
            problems.append(
                f"audio ends at {found.audio_end:.3f}s, video at {found.video_end:.3f}s"
            )
            bad = bad if bad is not None else _miscounted(chunks, ordered)
    if problems:
        where = f" (chunk {bad})" if bad is not None else ""
        raise JoinError(f"joined output check failed{where}: {'; '.join(problems)}", bad_chunk=bad)


def _chunk_at(chunks: Sequence[Chunk] | None, offset: float) -> int | None:
    """The chunk whose part of the output holds ``offset`` (s from the output's start)."""
    if not chunks:
        return None
    origin = chunks[0].start
    return next(
        (c.index for c in chunks if c.end is None or offset < c.end - origin - ROUNDING_S),
        chunks[-1].index,
    )


def _miscounted(chunks: Sequence[Chunk] | None, ordered: Sequence[float]) -> int | None:
    """The first chunk whose part of the output does not hold its planned frames."""
    if not chunks or not ordered:
        return None
    origin, first = chunks[0].start, ordered[0]
    for chunk in chunks:
        if chunk.frames is None:
            return None
        low = chunk.start - origin - ROUNDING_S
        high = chunk.end - origin - ROUNDING_S if chunk.end is not None else float("inf")
        held = sum(1 for t in ordered if low <= t - first < high)
        if held != chunk.frames:
            return chunk.index
    return None
