"""PLACEHOLDER of branch chunkmedia's module (same API), so the orchestration runs before
it is merged: fixed-length chunks, x264 video, AAC rest, concat join. Replaced on merge."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import TranscodeError
from .presets import Preset
from .probe import MediaInfo, probe


@dataclass(frozen=True)
class Chunk:
    index: int
    start: float
    end: float | None
    frames: int | None


def chunk_plan(src: Path, source: MediaInfo, chunk_seconds: float) -> list[Chunk]:
    duration = source.duration or 0.0
    if duration < 2 * chunk_seconds or not source.has_video:
        return []
    n = max(2, round(duration / chunk_seconds))
    step = duration / n
    return [
        Chunk(i, round(i * step, 3), round((i + 1) * step, 3) if i < n - 1 else None, None)
        for i in range(n)
    ]


def chunkable(preset: Preset) -> bool:
    return preset.kind == "video"


def chunk_command(
    ffmpeg: str,
    preset: Preset,
    source: MediaInfo,
    src: Path,
    dst: Path,
    chunk: Chunk,
    *,
    threads: int | None = None,
) -> list[str]:
    size = preset.output_size(source)
    cmd = [ffmpeg, "-y", "-nostdin", "-loglevel", "error", "-ss", str(chunk.start), "-i", str(src)]
    if chunk.end is not None:
        cmd += ["-t", str(chunk.end - chunk.start)]
    cmd += ["-map", "0:v:0", "-an", "-sn", "-c:v", "libx264", "-preset", "ultrafast"]
    cmd += ["-pix_fmt", "yuv420p"]
    if size:
        cmd += ["-vf", f"scale={size[0]}:{size[1]}"]
    return [*cmd, str(dst)]


def rest_command(ffmpeg: str, preset: Preset, source: MediaInfo, src: Path, dst: Path) -> list[str]:
    if not source.has_audio:
        return []
    return [
        ffmpeg,
        "-y",
        "-nostdin",
        "-loglevel",
        "error",
        "-i",
        str(src),
        "-vn",
        "-sn",
        "-c:a",
        "aac",
        "-b:a",
        f"{preset.audio_bitrate_k}k",
        str(dst),
    ]


def join_command(
    ffmpeg: str,
    preset: Preset,
    source: MediaInfo,
    chunk_paths: list[Path],
    rest: Path | None,
    dst: Path,
    tags: dict[str, str] | None = None,
) -> list[str]:
    listing = dst.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in chunk_paths))
    cmd = [
        ffmpeg,
        "-y",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
    ]
    if rest is not None:
        cmd += ["-i", str(rest), "-map", "0:v", "-map", "1:a"]
    cmd += ["-c", "copy", "-movflags", "+faststart"]
    for k, v in (tags or {}).items():
        cmd += ["-metadata", f"{k}={v}"]
    return [*cmd, str(dst)]


def verify_join(joined: Path, source: MediaInfo, expected_frames: int | None) -> None:
    info = probe(joined)
    if source.duration and abs((info.duration or 0) - source.duration) > 0.5:
        raise TranscodeError(f"joined duration {info.duration} is not {source.duration}")


def run(
    cmd: list[str],
    *,
    duration: float | None,
    progress: Callable[[float, float | None], None] | None = None,
    cancel: threading.Event | None = None,
    started: Callable[[int, list[str]], None] | None = None,
    ended: Callable[[int], None] | None = None,
    ran: Callable[..., None] | None = None,
) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TranscodeError(f"ffmpeg failed: {done.stderr.strip()[-300:]}")
    if progress is not None:
        progress(1.0, None)
