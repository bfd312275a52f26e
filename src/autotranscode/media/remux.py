"""One output made the cheapest right way: remuxed when its source conforms, else encoded;
and never bigger than a source that could have been copied.

A source that ``conform``s is remuxed (streams copied, ``+faststart``, tags and
chapters kept, stamped like an encode, checked like one): seconds instead of minutes, and
no second generation's loss.

"Never bigger": when an encode comes out larger than its source, and the source's streams
would play as the encode's do (it conforms in everything but its bitrate), the remux is
delivered instead: a larger re-encode of such a source is worse on both counts. This
happens when the source's video is just above the preset's bitrate and the audio encode
adds more than the video saved. A preset with ``remux = false`` is left alone: it asks
for an encode every time (its keyframes, its encoder's settings), and gets one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..stages import OutputAction
from . import conform
from .presets import Preset
from .probe import MediaInfo
from .runner import FfmpegRun, ProgressFn
from .stamps import Stamp
from .transcoder import transcode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Made:
    """The probed output, how it was made and, for a remux, why."""

    info: MediaInfo
    action: OutputAction
    note: str | None = None


def make(
    ffmpeg: str,
    preset: Preset,
    source: MediaInfo,
    src: Path,
    dst: Path,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    *,
    started: Callable[[int, list[str]], None] | None = None,
    ended: Callable[[int], None] | None = None,
    ran: Callable[[FfmpegRun], None] | None = None,
    stamp: Stamp | None = None,
) -> Made:
    """``dst`` made from ``src`` as ``transcode`` makes it, or by a remux (see the module).

    ``source`` must be probed with ``detail``: conformance needs its profile and pixel format.
    """
    verdict = conform.judge(preset, source)
    info = transcode(
        *(ffmpeg, preset, source, src, dst, progress, cancel),
        started=started,
        ended=ended,
        ran=ran,
        stamp=stamp,
        remux=verdict.conforms,
    )
    if verdict.conforms:
        return Made(info, "remuxed", verdict.why)
    encoded, original = dst.stat().st_size, src.stat().st_size
    if encoded <= original or not conform.judge(preset, source, bitrate=False).conforms:
        return Made(info, "encoded")
    # The remux runs after the encode's ffmpeg was announced as ended: it is not announced
    # again (a next job's ffmpeg may be running now), only logged.
    copy = dst.with_name(f"{dst.stem}.remux{dst.suffix}")
    info = transcode(
        *(ffmpeg, preset, source, src, copy, None, cancel), ran=ran, stamp=stamp, remux=True
    )
    os.replace(copy, dst)
    note = f"the encode ({encoded} bytes) was bigger than the source ({original} bytes)"
    log.info("%s: %s; remuxed instead", dst.name, note)
    return Made(info, "remuxed", note)
