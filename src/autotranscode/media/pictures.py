"""Picture outputs: a poster frame, or thumbnails at an interval."""

from __future__ import annotations

from pathlib import Path

from . import colour, interlace
from .presets import Preset
from .probe import MediaInfo


def poster(preset: Preset, source: MediaInfo, dst: Path | str) -> list[str]:
    """One frame near the start, after any black or title lead-in of the first second."""
    seek = ["-ss", f"{min(1.0, (source.duration or 0) / 10):.3f}"]
    return [*seek, *_jpeg(preset, source, "null"), "-frames:v", "1", str(dst)]


def thumbnails(preset: Preset, source: MediaInfo, folder: Path | str) -> list[str]:
    # The first frame, then one each interval: an fps filter would skip short clips.
    every = f"select=isnan(prev_selected_t)+gte(t-prev_selected_t\\,{preset.interval:g})"
    return [*_jpeg(preset, source, every), str(Path(folder) / "thumb-%04d.jpg")]


def _jpeg(preset: Preset, source: MediaInfo, pick: str) -> list[str]:
    width, height = preset.output_size(source) or (0, 0)
    made_sdr = []
    if colour.tonemaps(preset, source):  # a JPEG is SDR: an HDR picture is mapped to it
        made_sdr = colour.filters(preset, source, (width, height))
    picture = [*interlace.still_filters(source), pick, *made_sdr]
    chain = ",".join([*picture, f"scale={width}:{height}", "format=yuvj420p"])
    return ["-map", "0:v:0", "-vf", chain, "-c:v", "mjpeg", "-q:v", "3", "-fps_mode", "vfr"]
