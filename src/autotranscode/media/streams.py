"""Which of the source's streams an output carries, and how its audio is encoded."""

from __future__ import annotations

from .presets import Preset
from .probe import MediaInfo


def maps(preset: Preset, source: MediaInfo) -> list[str]:
    """``-map`` options of a one-file output: its first video (unless audio-only) and audio."""
    args = ["-vn", "-map", "0:a:0"] if preset.audio_only else ["-map", "0:v:0"]
    if not preset.audio_only and carries_audio(preset, source):
        args += ["-map", "0:a:0"]
    return args


def carries_audio(preset: Preset, source: MediaInfo) -> bool:
    return source.has_audio and preset.audio_codec is not None


def audio_options(preset: Preset, n: int | None = None) -> list[str]:
    """The audio encoder's options; with ``n``, for the n-th audio stream of the output."""
    a = ":a" if n is None else f":a:{n}"
    bitrate = f"{preset.audio_bitrate_k}k"
    return [f"-c{a}", str(preset.audio_codec), f"-b{a}", bitrate, f"-ac{a}", "2"]
