"""What is inside a media file, read with PyAV (imageio-ffmpeg ships no ffprobe)."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import av

from ..errors import ProbeError
from . import isobmff
from .stamps import Stamp, read_jpeg_comment, read_sidecar

log = logging.getLogger(__name__)

#: Extensions taken as media when no ``--pattern`` is given.
DEFAULT_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".wmv",
    ".flv",
    ".mpg",
    ".mpeg",
    ".ts",
    ".mts",
    ".m2ts",
    ".3gp",
    ".ogv",
    ".mxf",
    ".dv",
    ".m4a",
    ".mp3",
    ".wav",
    ".flac",
    ".aac",
    ".ogg",
    ".opus",
    ".aif",
    ".aiff",
    ".wma",
)

#: Downloads and copies still under way end so.
_TEMP_SUFFIXES = (
    ".part",
    ".partial",
    ".crdownload",
    ".download",
    ".tmp",
    ".temp",
    ".!qb",
    ".autotranscode-part",
)


def ignored(name: str) -> bool:
    """Hidden, temporary and partial-download names are never media to take."""
    lower = name.lower()
    return name.startswith((".", "~$", "~")) or lower.endswith(_TEMP_SUFFIXES)


class NotRegularFile(OSError):
    """A path that is no regular file (a FIFO, a socket, a device, a folder): never opened as
    one, since opening a FIFO blocks until some writer comes, and reading a device never ends.
    An OSError, as the filesystem's own refusals are, so callers handle them together."""

    def __init__(self, path: Path | str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", os.fspath(path))
        self.kind = kind


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def not_regular(path: Path | str) -> str | None:
    """What ``path`` is when it is not a regular file ("a FIFO", "a dangling link"…), else
    None; a link to a regular file is one. Looked at with stat alone, never by opening it.

    Raises FileNotFoundError when nothing is there at all (deleted meanwhile).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            raise exc from None
        if not is_link:
            raise
        if isinstance(exc, FileNotFoundError):
            return "a dangling link"
        return f"a link that cannot be followed: {exc.strerror or exc}"
    return _kind(mode)


def open_regular(path: Path | str) -> BinaryIO:
    """Open a regular file for reading; NotRegularFile for anything else, without blocking.

    Checked before opening (a device may act on an open) and again on what was opened
    (the name may have been replaced meanwhile); O_NONBLOCK makes that open return at once
    even for a FIFO with no writer.
    """
    kind = not_regular(path)
    if kind is not None:
        raise NotRegularFile(path, kind)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFile(path, kind)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


#: FFmpeg's numbers for the colour properties (libavutil/pixfmt.h) and their names, as
#: ffmpeg's own ``-color_primaries``/``-color_trc``/``-colorspace`` options spell them.
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020"}
TRANSFERS = {
    1: "bt709",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    18: "arib-std-b67",
}
MATRICES = {0: "gbr", 1: "bt709", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc"}
MATRICES[10] = "bt2020c"
RANGES = {1: "tv", 2: "pc"}
#: How the fields of an interlaced picture are ordered (AVFieldOrder), by FFmpeg's number.
FIELD_ORDERS = {1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}


@dataclass(frozen=True)
class Track:
    """An audio or subtitle stream that an output may carry along with the first video."""

    #: The stream's index in the file (``-map 0:INDEX``).
    index: int
    kind: str  # "audio" | "subtitle"
    codec: str
    language: str | None = None
    title: str | None = None
    default: bool = False
    channels: int | None = None

    @property
    def is_text(self) -> bool:
        """A subtitle made of text (SRT, ASS, WebVTT, mov_text), which any container can
        carry; image subtitles (PGS, DVB, VobSub) can only be burnt in or dropped."""
        return self.kind == "subtitle" and self.codec in TEXT_SUBTITLES


#: Subtitle codecs made of text.
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})


@dataclass(frozen=True)
class MediaInfo:
    """The facts about a file that presets and output checks depend on.

    The first video and audio streams are described by the flat fields; ``tracks`` lists
    every audio and subtitle stream. Colour fields are ffmpeg's names, None when the file
    does not say (an untagged source).
    """

    duration: float | None
    format_name: str
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    audio_codec: str | None = None
    #: Degrees a player turns the picture (phone recordings); ffmpeg applies it when decoding.
    rotation: int = 0
    pix_fmt: str | None = None
    video_profile: str | None = None
    #: bit/s of the first video stream when the file says, else None.
    video_bit_rate: int | None = None
    #: bit/s of the whole file (size / duration when the container does not say).
    bit_rate: int | None = None
    frame_rate: float | None = None
    color_primaries: str | None = None
    color_transfer: str | None = None
    color_space: str | None = None
    color_range: str | None = None
    #: "progressive", "tt", "bb", "tb", "bt", or None when the stream does not say.
    field_order: str | None = None
    #: Film telecined to 29.97 interlaced frames (3:2 pulldown), as ``interlace.detect``
    #: finds it: inverse-telecined back to its 23.976 frames rather than deinterlaced.
    telecined: bool = False
    tracks: tuple[Track, ...] = ()
    chapters: int = 0
    creation_time: str | None = None
    #: The file's own title tag, which outputs keep.
    title: str | None = None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def display_size(self) -> tuple[int, int] | None:
        """Width and height as shown, i.e. after the rotation, which is what outputs get."""
        if self.width is None or self.height is None:
            return None
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def audio_tracks(self) -> tuple[Track, ...]:
        return tuple(t for t in self.tracks if t.kind == "audio")

    @property
    def subtitle_tracks(self) -> tuple[Track, ...]:
        return tuple(t for t in self.tracks if t.kind == "subtitle")

    @property
    def hdr(self) -> str | None:
        """ "pq" (HDR10) or "hlg" when the transfer says so, else None (SDR or unknown)."""
        return {"smpte2084": "pq", "arib-std-b67": "hlg"}.get(self.color_transfer or "")


def probe(path: Path | str, *, rotation: bool = True, detail: bool = False) -> MediaInfo:
    """Read stream facts; raises ProbeError when the file is not decodable media.

    Reading the rotation decodes the first frame where the headers cannot tell (not an
    MP4/MOV), most of a probe's cost; ``rotation=False`` skips it (reported as 0), e.g. for
    our own outputs. ``detail``: FFmpeg's full probe, which decodes a first picture, for
    the facts only it finds (``DETAIL``: what a worker's recipe needs); without it they are
    None, whichever probe answered, so a file's facts never depend on its container.
    """
    try:
        kind = not_regular(path)
    except OSError as exc:
        raise ProbeError(f"cannot read the file: {exc.strerror or exc}") from exc
    if kind is not None:  # FFmpeg would open it, and wait on a FIFO forever
        raise ProbeError(f"not a regular file ({kind})")
    try:
        if detail:
            full = _probe(path, rotation, None)
            assert full is not None, "the full probe takes whatever it finds"
            return full
        for options in _PROBES if _declares_streams(path) else _PROBES[1:]:
            info = _probe(path, rotation, options)
            if info is not None:
                return replace(info, pix_fmt=None, video_profile=None, field_order=None)
    except ProbeError:
        raise
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise ProbeError(f"not a readable media file ({_reason(exc)})") from exc
    raise AssertionError("the last probe takes whatever it finds")


#: Facts that FFmpeg finds only by decoding a first picture (see ``probe``'s ``detail``).
DETAIL = ("pix_fmt", "video_profile", "field_order")


#: FFmpeg probes a stream by reading packets until it knows its facts, and decodes a first
#: picture for the pixel format, which we never use. Cheapest first; each attempt answers
#: None when it leaves a fact we need unknown:
#: - headers alone: an MP4/MOV or Matroska/WebM declares each stream, its codec and
#:   picture size, and the duration, before any packet (half the cost of the next);
#: - no decoding: the picture size where some stream header gives it (not an HLS playlist);
#: - FFmpeg's full probe.
_HEADERS_ALONE = {"skip_frame": "all", "probesize": "32"}
_NO_DECODING = {"skip_frame": "all"}
_PROBES: tuple[dict[str, str] | None, ...] = (_HEADERS_ALONE, _NO_DECODING, None)
#: FFmpeg's names for the containers whose headers ``_HEADERS_ALONE`` trusts.
_DECLARING_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
_ISOBMFF_FIRST_BOXES = frozenset({b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide"})
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def _declares_streams(path: Path | str) -> bool:
    """Whether the first bytes are an MP4/MOV's or a Matroska file's; FFmpeg confirms."""
    try:
        with open_regular(path) as f:
            head = f.read(8)
    except OSError:
        return False
    return head[4:8] in _ISOBMFF_FIRST_BOXES or head[:4] == _EBML_MAGIC


def _probe(path: Path | str, rotation: bool, options: dict[str, str] | None) -> MediaInfo | None:
    """``None`` when a probe with these options leaves a fact we use unknown (``_PROBES``)."""
    with av.open(str(path), metadata_errors="ignore", options=options) as container:
        video = next(
            (
                s
                for s in container.streams.video
                if s.codec_context is not None
                and not (s.disposition & av.stream.Disposition.attached_pic)
            ),
            None,
        )
        audio = next((s for s in container.streams.audio if s.codec_context is not None), None)
        if options is _HEADERS_ALONE and container.format.name not in _DECLARING_FORMATS:
            return None
        if video is None and audio is None:
            if options is _HEADERS_ALONE:
                return None
            raise ProbeError("no audio or video stream found")
        if (
            options is not None
            and video is not None
            and not (video.codec_context.width and video.codec_context.height)
        ):
            return None
        if video is not None and not (video.codec_context.width and video.codec_context.height):
            # FFmpeg's full probe found no picture size: noise taken for a raw stream (H.263
            # has no container to say otherwise). Nothing can be made of it; say so here,
            # rather than let a size of 0 reach the presets.
            raise ProbeError("not a readable media file (a video stream without a picture size)")
        duration = _duration(container, video or audio)
        if options is _HEADERS_ALONE and duration is None:
            return None
        return MediaInfo(
            duration=duration,
            format_name=container.format.name,
            video_codec=_codec(video),
            width=video.codec_context.width or None if video else None,
            height=video.codec_context.height or None if video else None,
            audio_codec=_codec(audio),
            rotation=_rotation(path, container, video) if video and rotation else 0,
            **(_picture(video) if video is not None else {}),
            bit_rate=container.bit_rate or None,
            tracks=_tracks(container),
            chapters=len(container.chapters()),
            creation_time=_tag(container.metadata, "creation_time"),
            title=_tag(container.metadata, "title"),
        )


def _picture(video: av.video.stream.VideoStream) -> dict[str, Any]:
    """The first video stream's facts beyond its size, each None where the file is silent."""
    cc = video.codec_context
    rate = video.average_rate or video.guessed_rate
    return {
        "pix_fmt": cc.pix_fmt,
        "video_profile": cc.profile or None,
        "video_bit_rate": cc.bit_rate or None,
        "frame_rate": round(float(rate), 3) if rate else None,
        "color_primaries": PRIMARIES.get(int(cc.color_primaries)),
        "color_transfer": TRANSFERS.get(int(cc.color_trc)),
        "color_space": MATRICES.get(int(cc.colorspace)),
        "color_range": RANGES.get(int(cc.color_range)),
        "field_order": FIELD_ORDERS.get(int(cc.field_order)),
    }


def _tracks(container: av.container.InputContainer) -> tuple[Track, ...]:
    found = []
    for s in container.streams:
        if s.type not in ("audio", "subtitle") or s.codec_context is None:
            continue
        found.append(
            Track(
                index=s.index,
                kind=s.type,
                codec=_codec(s) or "unknown",
                language=_tag(s.metadata, "language"),
                # MP4 keeps a track's title in its "name" box, which FFmpeg reads as such.
                title=_tag(s.metadata, "title") or _tag(s.metadata, "name"),
                default=bool(s.disposition & av.stream.Disposition.default),
                channels=getattr(s.codec_context, "channels", None) if s.type == "audio" else None,
            )
        )
    return tuple(found)


def _tag(metadata: Mapping[str, str], name: str) -> str | None:
    """A tag's value, whatever case the container wrote its name in; None for "und"."""
    value = next((v for k, v in metadata.items() if k.lower() == name), None)
    return value if value and value != "und" else None


def _duration(
    container: av.container.InputContainer, stream: av.stream.Stream | None
) -> float | None:
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    if stream is not None and stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _codec(stream: av.stream.Stream | None) -> str | None:
    """The format's name (``av1``, ``mp3``), not the decoder's (``libdav1d``, ``mp3float``)."""
    if stream is None:
        return None
    codec = stream.codec_context.codec
    return str(getattr(codec, "canonical_name", None) or codec.name)


def _rotation(
    path: Path | str, container: av.container.InputContainer, video: av.video.stream.VideoStream
) -> int:
    """The display rotation: from the headers of an MP4/MOV (FFmpeg's stream id is the track
    id), else read off the first frame (PyAV exposes no stream side data).

    One decoder thread: frame threading would decode a frame per thread before the first
    comes out, doubling the cost of every probe.
    """
    if "mov" in container.format.name.split(","):
        found = isobmff.display_rotation(path, video.id)
        if found is not None:
            return found
    return _decoded_rotation(container, video)


def _decoded_rotation(
    container: av.container.InputContainer, video: av.video.stream.VideoStream
) -> int:
    try:
        video.codec_context.thread_type = "NONE"
        video.codec_context.thread_count = 1
        frame = next(container.decode(video))
    except (av.FFmpegError, StopIteration, ValueError):
        return 0
    return int(getattr(frame, "rotation", 0) or 0) % 360


def read_stamp(path: Path) -> Stamp | None:
    """The source hash and preset digest an output of ours carries, or None (not ours, not
    stamped, not readable): a folder's sidecar, a JPEG's comment, else container metadata."""
    try:
        if path.is_dir():
            return read_sidecar(path)
        if path.suffix.lower() in (".jpg", ".jpeg"):
            return read_jpeg_comment(path)
        with av.open(str(path), metadata_errors="ignore", options=_HEADERS_ALONE) as container:
            return Stamp.from_tags(dict(container.metadata))
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return str(exc) or type(exc).__name__
