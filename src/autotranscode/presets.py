"""Output presets: what a job produces, turned into an ffmpeg command line.

A preset is data (container, codecs, bounds, quality); ``ffmpeg_args`` is the
only place that knows ffmpeg's flags, so the worker and ``presets`` listing show
exactly the same command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, MediaError
from .media import MediaInfo

DEFAULT_PRESET = "web-720p"


@dataclass(frozen=True)
class Preset:
    """One output rendition; ``height`` is a bound (never upscaled), ``None`` keeps the source."""

    id: str
    description: str
    extension: str
    video_codec: str | None = None
    audio_codec: str | None = "aac"
    height: int | None = None
    #: Peak video bitrate (kbit/s) for players on slow links; None leaves quality alone.
    max_bitrate_k: int | None = None
    audio_bitrate_k: int = 128
    #: The index at the front of an MP4, so playback starts before the download ends.
    faststart: bool = True
    video_args: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default=())

    @property
    def audio_only(self) -> bool:
        return self.video_codec is None

    def output_height(self, source: MediaInfo) -> int | None:
        """Height of the output video: the preset's bound, never above the source's."""
        if self.audio_only or source.height is None:
            return None
        if self.height is None:
            return _even(source.height)
        return _even(min(self.height, source.height))

    def ffmpeg_args(self, source: MediaInfo, src: Path | str, dst: Path | str) -> list[str]:
        """Arguments after the ffmpeg executable, for transcoding ``src`` into ``dst``."""
        args = ["-hide_banner", "-nostdin", "-y", "-i", str(src), "-map_metadata", "-1"]
        if self.audio_only:
            if not source.has_audio:
                raise MediaError(f"preset {self.id} needs an audio stream and the input has none")
            args += ["-vn", "-map", "0:a:0"]
        else:
            if not source.has_video:
                raise MediaError(f"preset {self.id} needs a video stream and the input has none")
            args += ["-map", "0:v:0"]
            if source.has_audio and self.audio_codec:
                args += ["-map", "0:a:0"]
            height = self.output_height(source)
            # -2 keeps the aspect ratio with an even width, as H.264 4:2:0 requires.
            args += ["-vf", f"scale=-2:{height}:flags=bicubic,format=yuv420p"]
            args += ["-c:v", str(self.video_codec), *self.video_args]
            if self.max_bitrate_k:
                args += [
                    "-maxrate",
                    f"{self.max_bitrate_k}k",
                    "-bufsize",
                    f"{2 * self.max_bitrate_k}k",
                ]
        if source.has_audio and self.audio_codec:
            args += ["-c:a", self.audio_codec, "-b:a", f"{self.audio_bitrate_k}k", "-ac", "2"]
        if self.faststart and self.extension in (".mp4", ".m4a", ".mov"):
            args += ["-movflags", "+faststart"]
        return [*args, str(dst)]


def _even(n: int) -> int:
    return max(2, n - n % 2)


_H264 = ("-preset", "veryfast", "-profile:v", "high", "-crf", "23")

CATALOG: Mapping[str, Preset] = {
    p.id: p
    for p in (
        Preset(
            id="web-720p",
            description="H.264 + AAC in MP4, at most 720 lines, streams from the first byte",
            extension=".mp4",
            video_codec="libx264",
            height=720,
            max_bitrate_k=4000,
            video_args=_H264,
            aliases=("1351620000001-000010", "1351620000001-100070"),
        ),
        Preset(
            id="web-1080p",
            description="H.264 + AAC in MP4, at most 1080 lines, streams from the first byte",
            extension=".mp4",
            video_codec="libx264",
            height=1080,
            max_bitrate_k=8000,
            audio_bitrate_k=160,
            video_args=_H264,
            aliases=("1351620000001-000001",),
        ),
        Preset(
            id="audio-aac",
            description="AAC audio only, in M4A",
            extension=".m4a",
            audio_bitrate_k=160,
        ),
    )
}


def get(preset_id: str) -> Preset:
    """Look a preset up by id or by the Elastic Transcoder system preset id it replaces."""
    if preset_id in CATALOG:
        return CATALOG[preset_id]
    for preset in CATALOG.values():
        if preset_id in preset.aliases:
            return preset
    known = ", ".join(CATALOG)
    raise ConfigError(f"unknown preset {preset_id!r}; known presets: {known}")
