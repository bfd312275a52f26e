"""What converting a library in place would do (``--dry-run``), and how much space it
would save, without writing anything: not the files, not the state dir.

Each file is read as ``library`` would: converted before (its stamp), not media, or to
encode; the space is an estimate, since only the encode itself knows its size. The
output's video bitrate is taken as a typical bits-per-pixel figure of the preset's codec
at constant quality, times the output's picture size and frame rate, capped by the
preset's peak bitrate; plus its audio bitrate. Against the source's size that gives the
saving; a file whose estimate is not smaller than its source is one that ``--replace
smaller`` would most likely keep. Real encodes land within about half either way of the
estimate: grainy film needs more, animation and screen recordings much less.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import MediaError
from .library import converted
from .media.presets import Preset
from .media.probe import MediaInfo, probe

#: Bits per pixel per frame at the built-in presets' constant quality, by encoder: typical
#: of film and TV content (x264 CRF 23, x265 CRF 26, SVT-AV1 and VP9 at theirs).
BITS_PER_PIXEL = {"libx264": 0.10, "libx265": 0.05, "libsvtav1": 0.04, "libvpx-vp9": 0.05}
#: For an encoder not in the table (a custom preset's).
DEFAULT_BITS_PER_PIXEL = 0.10
#: When the source does not say its frame rate.
DEFAULT_FRAME_RATE = 25.0


@dataclass(frozen=True)
class Planned:
    """One file: what would happen to it (``action``: encode, keep, skip), why, its size
    and the estimated size of its output (None: nothing would be made)."""

    path: Path
    action: str
    detail: str
    size: int
    estimate: int | None = None

    @property
    def saving(self) -> int:
        return self.size - self.estimate if self.action == "encode" and self.estimate else 0


def plan(
    paths: Iterable[Path],
    preset: Preset,
    digest: str,
    replace: str,
    kept: Collection[tuple[str, int]] = (),
) -> list[Planned]:
    """What ``library`` with ``preset`` (its ``digest``) and ``--replace replace`` would do;
    ``kept``: the sources (path, size) that a run before kept (``library.kept_before``)."""
    return [_one(path, preset, digest, replace, kept) for path in paths]


def _one(
    path: Path, preset: Preset, digest: str, replace: str, kept: Collection[tuple[str, int]]
) -> Planned:
    try:
        size = path.stat().st_size
    except OSError as exc:
        return Planned(path, "skip", f"cannot be read ({exc.strerror or exc})", 0)
    if converted(path, (digest,)):
        return Planned(path, "skip", "converted before (its stamp says so)", size)
    if (str(Path(os.path.abspath(path))), size) in kept:
        return Planned(path, "skip", "kept before: its output was not smaller", size)
    try:
        source = probe(path)
    except MediaError as exc:
        return Planned(path, "skip", f"not media it can convert ({exc})", size)
    if not source.has_video or not source.duration:
        return Planned(path, "skip", "no video (the preset makes video)", size)
    estimate = estimate_size(preset, source)
    if replace == "never":
        return Planned(path, "report", "would be encoded, nothing replaced", size, estimate)
    if replace == "smaller" and estimate >= size:
        detail = "encoded, then most likely kept: the output would not be smaller"
        return Planned(path, "keep", detail, size, estimate)
    return Planned(path, "encode", f"{source.video_codec} -> {preset.id}", size, estimate)


def estimate_size(preset: Preset, source: MediaInfo) -> int:
    """Bytes the output would take (see the module's docstring for how)."""
    width, height = preset.output_size(source) or (source.width or 0, source.height or 0)
    fps = min(source.frame_rate or DEFAULT_FRAME_RATE, 60.0)
    bpp = BITS_PER_PIXEL.get(preset.video_codec or "", DEFAULT_BITS_PER_PIXEL)
    video = bpp * width * height * fps
    if preset.max_bitrate_k:
        video = min(video, preset.max_bitrate_k * 1000)
    audio = preset.audio_bitrate_k * 1000 if source.audio_codec and preset.audio_codec else 0
    return int((video + audio) * (source.duration or 0) / 8)
