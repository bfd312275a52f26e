"""Run ffmpeg for one output and check what it produced.

The run itself (progress, cancel, dying with the worker, the telling reason of a failure)
is ``runner``'s, shared with a chunked file's runs (``chunks``); here is the command for a
whole output and the check of what it made: an output that does not probe as expected is
an error too, never a delivered file.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import av

from ..errors import ConfigError, TranscodeError
from . import hls, recipe, streams
from .presets import Preset, codec_name
from .probe import MediaInfo, probe

# What callers and tests have always found here, now ``runner``'s.
from .runner import LOG_ARGS, FfmpegRun, ProgressFn, remove, run
from .stamps import Stamp, write_jpeg_comment, write_sidecar

log = logging.getLogger(__name__)

#: An output may differ from its source's duration by this much (seconds or fraction).
DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE_FRACTION = 0.05


def find_ffmpeg(override: str | None = None) -> str:
    """The ffmpeg to run: ``--ffmpeg`` if given, else imageio-ffmpeg's choice.

    That is ``IMAGEIO_FFMPEG_EXE`` if set, else the binary bundled in its wheel, else a
    conda or system ffmpeg. It checks its pick with ``ffmpeg -version`` once per process
    (~20 ms), a price paid for not depending on the package's private layout.
    """
    if override:
        found = shutil.which(override)
        if not found:
            raise ConfigError(f"ffmpeg {override!r} not found or not executable")
        return found
    import imageio_ffmpeg

    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        raise ConfigError(
            f"no ffmpeg available ({exc}); install one and pass --ffmpeg PATH"
        ) from exc


def command(
    ffmpeg: str,
    preset: Preset,
    source: MediaInfo,
    src: Path,
    dst: Path,
    stamp: Stamp | None = None,
    *,
    remux: bool = False,
) -> list[str]:
    """The exact command line a worker runs (also what ``presets show`` prints)."""
    tags = stamp.tags() if stamp else None
    args = recipe.ffmpeg_args(preset, source, src, dst, tags, remux=remux)
    return [ffmpeg, *LOG_ARGS, "-progress", "pipe:1", "-nostats", *args]


def transcode(
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
    remux: bool = False,
) -> MediaInfo:
    """Transcode ``src`` into ``dst``, returning the probed output; ``dst`` goes on failure.

    ``started`` is called with ffmpeg's pid and command line once it runs; ``ended`` with
    its exit status (negative: the signal) once it has ended, before its output is checked
    (a worker starts its next ffmpeg then, and may hold the check until it runs); ``ran``
    with its command line and stderr tail, for a log, whether it succeeded or not.
    ``stamp``: what the output is to say it was made from (see ``stamps``). A failed run's
    TranscodeError carries the command line and stderr tail too. ``remux``: the streams
    copied instead (``remux``), checked the same way.
    """
    cmd = command(ffmpeg, preset, source, src, dst, stamp, remux=remux)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("running %s", subprocess.list2cmdline(cmd))
    if preset.folder:
        dst.mkdir(parents=True, exist_ok=True)
    run(
        cmd,
        duration=source.duration,
        progress=progress,
        cancel=cancel,
        started=started,
        ended=ended,
        ran=ran,
        output=dst,
    )
    try:
        if preset.kind == "hls":
            _write_master(preset, source, dst)
        if stamp is not None:
            _stamp(preset, dst, stamp)
        return verify(preset, source, dst)
    except BaseException:
        remove(dst)  # a failed check or stamp (a full disk too) leaves nothing behind
        raise


def _write_master(preset: Preset, source: MediaInfo, folder: Path) -> None:
    """The master playlist, measured from what ffmpeg wrote (``hls.write_master``)."""
    try:
        hls.write_master(preset, source, folder)
    except (ValueError, IndexError, av.FFmpegError) as exc:
        raise TranscodeError(f"output check failed: {exc}") from exc


def _stamp(preset: Preset, dst: Path, stamp: Stamp) -> None:
    """Stamp the outputs whose formats ffmpeg cannot tag: a picture, a folder.

    An OSError (a full disk) goes up as it is: the worker tries the job again later.
    """
    if preset.folder:
        write_sidecar(dst, stamp)
    elif preset.kind == "image":
        try:
            write_jpeg_comment(dst, stamp)
        except ValueError as exc:
            raise TranscodeError(f"output check failed: {exc}") from exc


def verify(preset: Preset, source: MediaInfo, output: Path) -> MediaInfo:
    """Probe the output and check it is what the preset promises; returns the main picture's
    facts (the largest rendition of a ladder, the first of a series of thumbnails)."""
    problems: list[str] = []
    if preset.kind == "hls":
        info = _verify_hls(preset, source, output, problems)
    elif preset.kind == "thumbnails":
        pictures = sorted(output.glob("*.jpg"))
        if not pictures:
            raise TranscodeError("output check failed: no thumbnails were written")
        info = probe(pictures[0], rotation=False)
        _check_picture(preset, source, info, problems)
    else:
        info = probe(output, rotation=False)
        if preset.kind == "image":
            _check_picture(preset, source, info, problems)
        else:
            _check_av(preset, source, info, problems, preset.output_size(source))
    if problems:
        raise TranscodeError(f"output check failed: {'; '.join(problems)}")
    return info


def _check_av(
    preset: Preset,
    source: MediaInfo,
    info: MediaInfo,
    problems: list[str],
    size: tuple[int, int] | None,
) -> None:
    if preset.audio_only:
        if not info.has_audio or info.has_video:
            problems.append("expected audio only")
    else:
        if info.video_codec != _decoder_name(preset.video_codec):
            problems.append(f"video codec {info.video_codec}, expected {preset.video_codec}")
        if (info.width, info.height) != size:
            problems.append(f"size {info.width}x{info.height}, expected {size}")
    wanted_audio = _decoder_name(preset.audio_codec) if source.has_audio else None
    if wanted_audio and info.audio_codec != wanted_audio:
        problems.append(f"audio codec {info.audio_codec}, expected {preset.audio_codec}")
    wanted_tracks = len(streams.audio_tracks(preset, source))
    if wanted_tracks > 1 and len(info.audio_tracks) != wanted_tracks:
        problems.append(f"{len(info.audio_tracks)} audio tracks, expected {wanted_tracks}")
    if source.duration and info.duration is not None:
        tolerance = max(DURATION_TOLERANCE_S, source.duration * DURATION_TOLERANCE_FRACTION)
        if abs(info.duration - source.duration) > tolerance:
            problems.append(f"duration {info.duration:.2f}s, source {source.duration:.2f}s")


def _check_picture(preset: Preset, source: MediaInfo, info: MediaInfo, problems: list[str]) -> None:
    if info.video_codec != "mjpeg":
        problems.append(f"picture codec {info.video_codec}, expected mjpeg")
    if (info.width, info.height) != preset.output_size(source):
        problems.append(
            f"picture {info.width}x{info.height}, expected {preset.output_size(source)}"
        )


def _verify_hls(preset: Preset, source: MediaInfo, folder: Path, problems: list[str]) -> MediaInfo:
    if not (folder / "master.m3u8").is_file():
        raise TranscodeError("output check failed: no master playlist")
    master = (folder / hls.MASTER).read_text()
    if "#EXT-X-INDEPENDENT-SEGMENTS" not in master:
        problems.append("the master playlist does not say its segments are independent")
    grouped = hls.audio_grouped(preset, source)
    # Grouped audio is in renditions of its own, checked one by one below.
    pictures = replace(source, audio_codec=None, tracks=()) if grouped else source
    infos = []
    for n, size in enumerate(preset.rendition_sizes(source)):
        if f"{n}/{hls.PLAYLIST}" not in master:
            problems.append(f"the master playlist does not list rendition {n}")
        info = probe(folder / str(n) / hls.PLAYLIST, rotation=False)
        _check_av(preset, pictures, info, problems, size)
        infos.append(info)
    if grouped:
        for k, _ in enumerate(streams.audio_tracks(preset, source)):
            sound = probe(folder / hls.audio_folder(k) / hls.PLAYLIST, rotation=False)
            if sound.audio_codec != _decoder_name(preset.audio_codec):
                problems.append(f"audio rendition {k}: codec {sound.audio_codec}")
    for k, _ in enumerate(hls.subtitle_tracks(preset, source)):
        uri = f"{hls.subtitle_folder(k)}/{hls.PLAYLIST}"
        playlist = folder / uri
        if f'URI="{uri}"' not in master or not playlist.is_file() or not hls.segments(playlist):
            problems.append(f"subtitle rendition {k} is missing")
    return infos[0]


def _decoder_name(encoder: str | None) -> str | None:
    return codec_name(encoder)
