"""What is inside a media file, read with PyAV (imageio-ffmpeg ships no ffprobe)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av

from . import isobmff
from .errors import ProbeError

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


@dataclass(frozen=True)
class MediaInfo:
    """The facts about a file that presets and output checks depend on."""

    duration: float | None
    format_name: str
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    audio_codec: str | None = None
    #: Degrees a player turns the picture (phone recordings); ffmpeg applies it when decoding.
    rotation: int = 0

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


def probe(path: Path | str, *, rotation: bool = True) -> MediaInfo:
    """Read stream facts; raises ProbeError when the file is not decodable media.

    Reading the rotation decodes the first frame where the headers cannot tell (not an
    MP4/MOV), most of a probe's cost; ``rotation=False`` skips it (reported as 0), e.g. for
    our own outputs.
    """
    try:
        info = _probe(path, rotation, headers_only=True)
        if info is None:
            info = _probe(path, rotation, headers_only=False)
    except ProbeError:
        raise
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise ProbeError(f"not a readable media file ({_reason(exc)})") from exc
    assert info is not None
    return info


#: FFmpeg's stream probing decodes a first picture of each video stream, a third of a
#: probe's cost, for facts we do not use (pixel format) where the headers give the size.
_HEADERS_ONLY = {"skip_frame": "all"}


def _probe(path: Path | str, rotation: bool, headers_only: bool) -> MediaInfo | None:
    """``None`` when headers alone left the picture size unknown (e.g. an HLS playlist)."""
    options = _HEADERS_ONLY if headers_only else None
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
        audio = next(iter(container.streams.audio), None)
        if video is None and audio is None:
            raise ProbeError("no audio or video stream found")
        if (
            video is not None
            and headers_only
            and not (video.codec_context.width and video.codec_context.height)
        ):
            return None
        duration = _duration(container, video or audio)
        return MediaInfo(
            duration=duration,
            format_name=container.format.name,
            video_codec=_codec(video),
            width=video.codec_context.width or None if video else None,
            height=video.codec_context.height or None if video else None,
            audio_codec=_codec(audio),
            rotation=_rotation(path, container, video) if video and rotation else 0,
        )


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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return str(exc) or type(exc).__name__
