"""A preset and a source, turned into ffmpeg's command line.

The only place that puts ffmpeg's flags together, so workers, ``presets show`` and the
benchmarks run exactly the same command. Each part of an output has a module of its own:
``video`` (the picture's filter chain and encoder), ``streams`` (which streams go along
and how audio is encoded), ``hls`` (the ladder), ``pictures`` (poster, thumbnails).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from . import colour, hls, interlace, pictures, streams, video
from .presets import Preset
from .probe import MediaInfo


def ffmpeg_args(
    preset: Preset,
    source: MediaInfo,
    src: Path | str,
    dst: Path | str,
    tags: Mapping[str, str] | None = None,
    *,
    remux: bool = False,
) -> list[str]:
    """Arguments after the ffmpeg executable; ``dst`` is a folder for folder kinds.

    ``tags``: metadata an audio or video output carries (``stamps``); pictures and
    folders carry theirs otherwise, as their formats hold no such tags. ``remux``: the
    source's streams copied, not encoded (a source that ``conform``s to the preset).
    """
    preset.check(source)
    args = ["-hide_banner", "-nostdin", "-y", "-i", str(src)]
    if remux:
        return [*args, *_remux(preset, source), *container_options(preset, tags), str(dst)]
    if preset.kind == "image":
        return [*args, "-map_metadata", "-1", *pictures.poster(preset, source, dst)]
    if preset.kind == "thumbnails":
        return [*args, "-map_metadata", "-1", *pictures.thumbnails(preset, source, dst)]
    if preset.kind == "hls":
        return [*args, *hls.options(preset, source, Path(dst))]
    args += streams.maps(preset, source)
    if not preset.audio_only:
        args += video.options(preset, source)
    if streams.carries_audio(preset, source):
        args += streams.audio_options(preset)
    args += streams.subtitle_options(preset, source)
    args += streams.metadata(preset, source)
    return [*args, *container_options(preset, tags), *preset.extra_args, str(dst)]


def _remux(preset: Preset, source: MediaInfo) -> list[str]:
    """The streams an encode would carry, copied; text subtitles converted as in an encode."""
    args = [*streams.maps(preset, source), "-c:v", "copy"]
    if preset.video_codec == "libx265":
        args += ["-tag:v", "hvc1"]  # as an encode tags it (``video.encoder_options``)
    if streams.carries_audio(preset, source):
        args += ["-c:a", "copy"]
    return [*args, *streams.subtitle_options(preset, source), *streams.metadata(preset, source)]


def container_options(preset: Preset, tags: Mapping[str, str] | None) -> list[str]:
    """The container's options: MP4's index at the front, and the output's own tags."""
    args: list[str] = []
    movflags = ""
    if preset.extension in (".mp4", ".m4a", ".mov"):
        movflags += "+faststart" if preset.faststart else ""
        # MP4 keeps only the tags it knows, unless they go in a QuickTime keys box.
        movflags += "+use_metadata_tags" if tags else ""
    if movflags:
        args += ["-movflags", movflags]
    for name, value in (tags or {}).items():
        args += ["-metadata", f"{name}={value}"]
    return args


def notes(preset: Preset, source: MediaInfo) -> list[str]:
    """What the recipe does to this source that the file's log should tell."""
    if preset.audio_only or not source.has_video:
        return []
    found = []
    if interlace.interlaced(source) and source.telecined:
        found.append("telecined film (3:2 pulldown): inverse-telecined to its own frames")
    elif interlace.interlaced(source):
        rate = "a frame per field" if preset.deinterlace == "double-rate" else "a frame per frame"
        found.append(f"interlaced source ({source.field_order}): deinterlaced, {rate}")
    found += colour.notes(preset, source)
    return found


def warnings(preset: Preset, source: MediaInfo) -> list[str]:
    """What the file's log should say about this output before it is made (streams left
    out, say): pure, so the worker writes it and ``presets show`` could too."""
    return streams.warnings(preset, source)
