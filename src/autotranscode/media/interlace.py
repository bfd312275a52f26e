"""Interlaced sources: found, then deinterlaced into a progressive output.

A DVD or broadcast recording (576i, 480i, 1080i) holds two fields per frame, taken
1/50 s (1/60 s) apart; shown as frames on a progressive screen, everything that moves
is combed. The stream's field order usually says so; when it is missing or says
progressive (a flag some encoders never set), ``detect`` runs ffmpeg's ``idet`` on a
short sample, in the worker before the recipe, and its finding reaches the recipe as
the source's ``field_order``. The recipe stays pure: ``filters`` only reads it.

Deinterlacing is ``bwdif`` (motion adaptive, better than ``yadif`` on edges): one frame
per frame by default, one per field with a preset's ``deinterlace = "double-rate"``
(sports: 50 or 60 smooth frames a second, at twice the frames to encode).

Film made for NTSC (23.976 frames a second) is telecined to 29.97 interlaced frames by
3:2 pulldown: every other frame lends a field to the next, so two frames in five mix two
pictures and two fields in five repeat one already shown. Deinterlacing those would blur
the mixed frames and keep the judder of the repeats; inverse telecine (``fieldmatch``
pairs the fields again, ``decimate`` drops the repeats) gives back the film's own
progressive frames. ``idet`` counts the repeated fields on the same sample, so a stream
flagged interlaced at 29.97 frames a second is sampled too, to tell film from video.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import av

from .presets import Preset
from .probe import MediaInfo
from .runner import spawn

log = logging.getLogger(__name__)

#: Field orders (FFmpeg's, as ``probe`` names them) by the field shown first.
TOP_FIRST = frozenset({"tt", "bt"})
BOTTOM_FIRST = frozenset({"bb", "tb"})
#: Frames ``idet`` looks at; from this far into the file (a fraction of its duration,
#: at most ``SAMPLE_START_MAX_S``), past black or still title cards.
SAMPLE_FRAMES = 150
SAMPLE_START_FRACTION = 0.1
SAMPLE_START_MAX_S = 60.0
#: A sample is interlaced when more of its frames are found interlaced than progressive,
#: and at least this many (still pictures are "undetermined": no evidence either way).
MIN_INTERLACED_FRAMES = 5
#: Where interlaced pictures are found: SD (480, 486, 576 lines) and 1080i (coded as 1088
#: by some encoders), at most 30 frames (60 fields) a second, in codecs that carry them.
#: Elsewhere (720p, phone clips, HEVC/AV1/VP9) ``idet`` is not asked: it would cost a
#: decode, and it takes fine horizontal detail (text, test patterns) for combing.
INTERLACED_HEIGHTS = frozenset({480, 486, 576, 1080, 1088})
_MAX_INTERLACED_RATE = 30.5
_PROGRESSIVE_CODECS = frozenset({"hevc", "vp8", "vp9", "av1", "gif", "png", "apng", "webp"})
#: Mastering codecs whose every frame header says how the picture was coded, as fields or
#: as a whole frame; the container's flag may be missing (no ``fiel`` atom), theirs never
#: is. A first frame coded whole is taken at its word, without a sample (about 1 s of
#: decoding at 1080p ProRes, 6 % of a minute's encode).
_SCAN_IN_FRAME_HEADER = frozenset({"prores", "dnxhd"})
#: A sample should take a second or two; a stuck ffmpeg is given up on after this long.
IDET_TIMEOUT_S = 120.0
#: Telecined film repeats a field in two frames of five (40 %); video never does (about
#: 0 %). A sample is telecined from this share of repeated fields.
MIN_REPEATED_SHARE = 0.25
#: Frames a second of telecined film: NTSC's 29.97 (30000/1001), or an even 30.
_TELECINE_RATES = (30000 / 1001, 30.0)

_MULTI = re.compile(
    r"Multi frame detection: TFF:\s*(\d+)\s+BFF:\s*(\d+)\s+Progressive:\s*(\d+)"
    r"\s+Undetermined:\s*(\d+)"
)
_REPEATED = re.compile(r"Repeated Fields: Neither:\s*(\d+)\s+Top:\s*(\d+)\s+Bottom:\s*(\d+)")


def interlaced(source: MediaInfo) -> bool:
    return source.field_order in TOP_FIRST | BOTTOM_FIRST


def filters(preset: Preset, source: MediaInfo) -> list[str]:
    """The deinterlacer for an interlaced source (else nothing), before any scaling:
    scaling combed frames would blend their fields into each other. Telecined film gets
    its frames back instead (whatever the preset's ``deinterlace``: film has no more)."""
    if not interlaced(source):
        return []
    if source.telecined:
        order = "tff" if source.field_order in TOP_FIRST else "bff"
        # yadif only on the rare frame fieldmatch could not pair (a splice, an edit).
        return [
            f"fieldmatch=order={order}:combmatch=full",
            "yadif=deint=interlaced",
            "decimate",
            "setfield=prog",
        ]
    mode = "send_field" if preset.deinterlace == "double-rate" else "send_frame"
    parity = "tff" if source.field_order in TOP_FIRST else "bff"
    # deint=all: a source found interlaced by idet has frames flagged progressive.
    return [f"bwdif=mode={mode}:parity={parity}:deint=all", "setfield=prog"]


def still_filters(source: MediaInfo) -> list[str]:
    """For pictures taken from an interlaced source: ``estdif`` fills each frame's
    second field from its first alone, so a single frame (a poster, at the start of what
    is decoded) comes out clean, where ``bwdif`` needs the frames around it."""
    if not interlaced(source):
        return []
    parity = "tff" if source.field_order in TOP_FIRST else "bff"
    return [f"estdif=mode=frame:parity={parity}:deint=all", "setfield=prog"]


@dataclass(frozen=True)
class Counts:
    """What ``idet``'s multi-frame detection found in a sample."""

    tff: int
    bff: int
    progressive: int
    undetermined: int
    #: Frames whose top (bottom) field repeats the one of the frame before.
    repeated_top: int = 0
    repeated_bottom: int = 0

    @property
    def telecined(self) -> bool:
        """Whether the sample repeats fields as 3:2 pulldown does."""
        repeated = self.repeated_top + self.repeated_bottom
        looked = self.tff + self.bff + self.progressive + self.undetermined
        return repeated >= MIN_INTERLACED_FRAMES and repeated >= MIN_REPEATED_SHARE * looked

    @property
    def field_order(self) -> str | None:
        """ "tt" or "bb" when the sample is interlaced, else None."""
        fields = self.tff + self.bff
        if fields < MIN_INTERLACED_FRAMES or fields <= self.progressive:
            return None
        return "tt" if self.tff >= self.bff else "bb"

    def __str__(self) -> str:
        return (
            f"{self.tff} TFF, {self.bff} BFF, {self.progressive} progressive,"
            f" {self.undetermined} undetermined,"
            f" {self.repeated_top + self.repeated_bottom} repeated fields"
        )


def parse_idet(stderr: str) -> Counts | None:
    """The last multi-frame summary of ``idet`` in ffmpeg's stderr (ffmpeg may print one
    per filter graph it configured; the last is the one that saw the frames)."""
    found = _MULTI.findall(stderr)
    if not found:
        return None
    repeated = _REPEATED.findall(stderr)
    top, bottom = (int(n) for n in repeated[-1][1:]) if repeated else (0, 0)
    tff, bff, progressive, undetermined = (int(n) for n in found[-1])
    return Counts(tff, bff, progressive, undetermined, repeated_top=top, repeated_bottom=bottom)


def needs_idet(source: MediaInfo) -> bool:
    """Whether the stream's own word is not enough: no field order, or "progressive"
    on a picture size, frame rate and codec that could be interlaced; or interlaced at
    the frame rate of telecined film, which only the sample tells from video."""
    if not source.has_video:
        return False
    if source.video_codec in _PROGRESSIVE_CODECS or source.height not in INTERLACED_HEIGHTS:
        return False
    if interlaced(source):
        return telecine_rate(source)
    return not (source.frame_rate and source.frame_rate > _MAX_INTERLACED_RATE)


def telecine_rate(source: MediaInfo) -> bool:
    """Whether the source runs at the frame rate 3:2 pulldown makes of film."""
    rate = source.frame_rate
    return rate is not None and any(abs(rate - r) < 0.05 for r in _TELECINE_RATES)


def _coded_whole(src: Path | str) -> bool:
    """Whether the first frame was coded as one progressive picture (False if unreadable)."""
    try:
        with av.open(str(src)) as container:
            for frame in container.decode(video=0):
                return not frame.interlaced_frame
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        log.debug("reading the first frame of %s: %s", src, exc)
    return False


def idet_args(source: MediaInfo, src: Path | str) -> list[str]:
    """ffmpeg's arguments for a sample decoded through ``idet`` to nowhere."""
    start = min((source.duration or 0) * SAMPLE_START_FRACTION, SAMPLE_START_MAX_S)
    return [
        *("-hide_banner", "-nostdin", "-loglevel", "info", "-ss", f"{start:.3f}"),
        *("-i", str(src), "-map", "0:v:0", "-an", "-sn", "-dn"),
        *("-frames:v", str(SAMPLE_FRAMES), "-vf", "idet", "-f", "null", "-"),
    ]


def detect(ffmpeg: str, src: Path | str, source: MediaInfo) -> tuple[MediaInfo, str | None]:
    """The source as the recipe should see it, and a line for the file's log when
    ``idet`` ran. Found interlaced: its ``field_order`` says which field comes first.
    A sample that cannot be read leaves the source as the stream says it is."""
    if not needs_idet(source):
        return source, None
    if source.video_codec in _SCAN_IN_FRAME_HEADER and _coded_whole(src):
        return source, f"progressive: the {source.video_codec} frame headers say so"
    try:
        # Started as every ffmpeg of a worker is: it dies with the worker (kill -9 too).
        proc = spawn(
            [ffmpeg, *idet_args(source, src)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _, err = proc.communicate(timeout=IDET_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        run = subprocess.CompletedProcess(
            proc.args, proc.returncode, "", err.decode("utf-8", errors="replace")
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("interlace detection on %s failed: %s", src, exc)
        return source, f"interlace detection failed ({exc}); taken as progressive"
    counts = parse_idet(run.stderr)
    said = source.field_order or "no field order"
    flagged = interlaced(source)
    if run.returncode != 0 or counts is None:
        taken = f"taken as the stream says ({said})" if flagged else "taken as progressive"
        return source, f"interlace detection found nothing to look at; {taken}"
    if counts.telecined and telecine_rate(source):
        order = source.field_order if flagged else counts.field_order
        if order is None:
            order = "tt" if counts.tff >= counts.bff else "bb"
        note = f"idet: telecined film, 3:2 pulldown ({counts}; the stream says {said})"
        return replace(source, field_order=order, telecined=True), note
    if flagged:
        return source, f"idet: interlaced video, no pulldown ({counts}; the stream says {said})"
    order = counts.field_order
    if order is None:
        return source, f"idet: progressive ({counts}; the stream says {said})"
    kind = "top" if order == "tt" else "bottom"
    note = f"idet: interlaced, {kind} field first ({counts}; the stream says {said})"
    return replace(source, field_order=order), note
