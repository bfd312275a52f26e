"""HTTP Live Streaming: one encode split into the ladder's renditions and a master playlist."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import colour, interlace, streams, video
from .presets import Preset
from .probe import MediaInfo

#: Seconds per segment.
SEGMENT_SECONDS = 6


def options(preset: Preset, source: MediaInfo, folder: Path) -> list[str]:
    """One decode, split to every rendition of the ladder not above the source."""
    sizes = preset.rendition_sizes(source)
    splits = "".join(f"[v{n}]" for n in range(len(sizes)))
    picture = [*interlace.filters(preset, source), *colour.filters(preset, source, None)]
    graph = [f"[0:v:0]{','.join(picture)},split={len(sizes)}{splits}"]
    graph += [f"[v{n}]scale={w}:{h}:flags=bicubic[o{n}]" for n, (w, h) in enumerate(sizes)]
    args = ["-filter_complex", ";".join(graph)]
    stream_map = []
    for n, size in enumerate(sizes):
        rendition = replace(preset, max_bitrate_k=ladder_bitrate(min(size)))
        args += ["-map", f"[o{n}]", *video.encoder_options(rendition, n)]
        if source.has_audio:
            args += ["-map", "0:a:0", *streams.audio_options(preset, n)]
        stream_map.append(f"v:{n},a:{n}" if source.has_audio else f"v:{n}")
    return [
        *args,
        *("-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod"),
        *("-hls_segment_type", "mpegts", "-hls_flags", "independent_segments"),
        *("-hls_segment_filename", str(folder / "%v" / "segment-%03d.ts")),
        *("-master_pl_name", "master.m3u8", "-var_stream_map", " ".join(stream_map)),
        str(folder / "%v" / "index.m3u8"),
    ]


def ladder_bitrate(short_side: int) -> int:
    """A rendition's peak kbit/s, by its short side."""
    return {1080: 6000, 720: 3500, 480: 1500, 360: 800}.get(short_side, max(400, short_side * 5))
