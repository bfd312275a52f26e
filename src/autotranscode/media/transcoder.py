"""Run ffmpeg for one output, report its progress, and check what it produced.

ffmpeg writes ``key=value`` blocks on ``-progress pipe:1`` about every 0.5 s; we
read ``out_time_us`` from them. Its stderr (``level+info``: every line tagged with its
level) goes to a file, of which a bounded head and tail are kept for the file's log
(``FfmpegRun``). A non-zero exit becomes TranscodeError whose reason is ffmpeg's most
telling line (its first error, not its last: the last is often a consequence, "Nothing
was written into output file"), and an output that does not probe as expected is an
error too, never a delivered file.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import av

from ..errors import ConfigError, FfmpegKilled, TranscodeError
from ..text import shown
from . import hls, recipe, streams
from .presets import Preset, codec_name
from .probe import MediaInfo, probe
from .stamps import Stamp, write_jpeg_comment, write_sidecar

log = logging.getLogger(__name__)

#: Called with the fraction done (0..1) and ffmpeg's speed factor when it reports one;
#: first with 0.0 as soon as ffmpeg has started.
ProgressFn = Callable[[float, float | None], None]

#: An output may differ from its source's duration by this much (seconds or fraction).
DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE_FRACTION = 0.05
#: After a cancel, ffmpeg gets this long to stop on SIGTERM before it is killed.
CANCEL_GRACE_SECONDS = 2.0
#: How soon a cancel is noticed while ffmpeg prints nothing (it reports twice a second
#: while it works); each look costs a wake-up.
CANCEL_POLL_SECONDS = 0.5
#: ffmpeg's stderr kept for a log: its last lines, at most this many and this many bytes
#: (the reason for a failure is picked from what is kept).
STDERR_TAIL_LINES = 300
STDERR_TAIL_BYTES = 64 * 1024
#: And its first lines, where an early error sits when a flood of warnings follows it.
STDERR_HEAD_LINES = 30
STDERR_HEAD_BYTES = 8 * 1024
#: A failure's reason is one line, cut to this many characters.
MAX_REASON_CHARS = 300
#: How ffmpeg is told to talk: each line tagged ``[error]``, ``[warning]``, ``[info]``…,
#: so the error that explains a failure is found by its level, not by guessing.
LOG_ARGS = ("-loglevel", "level+info")


@dataclass(frozen=True)
class FfmpegRun:
    """One ffmpeg run as a log tells it: the exact command line and what it said."""

    #: The command line as a shell would take it (``shlex.join``).
    command: str
    #: The exit status; negative: killed by that signal.
    returncode: int
    #: Its stderr, bounded: the first lines and the last (a marker says what was left out),
    #: each line made printable (``text.shown``).
    stderr: str


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
    if shutil.which(ffmpeg) is None:
        raise ConfigError(f"cannot run ffmpeg {ffmpeg}: not found or not executable")
    # stderr goes to an unnamed file, read after the exit: no reader thread per job.
    with tempfile.TemporaryFile() as errors:
        try:
            proc = spawn(cmd, stdout=subprocess.PIPE, stderr=errors)
        except OSError as exc:
            raise ConfigError(f"cannot run ffmpeg {ffmpeg}: {exc}") from exc
        try:
            if started is not None:
                started(proc.pid, cmd)
            if progress is not None:
                progress(0.0, None)  # started: said once ffmpeg runs, not before
            cancelled = _follow(proc, source.duration, progress, cancel)
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            if ended is not None:
                ended(proc.returncode)
        run = FfmpegRun(shlex.join(cmd), proc.returncode, read_stderr(errors))
        if ran is not None:
            ran(run)
        if cancelled:
            _remove(dst)
            raise TranscodeError("transcode cancelled", command=run.command, stderr=run.stderr)
        if code < 0:
            _remove(dst)
            raise FfmpegKilled(_killed(-code), command=run.command, stderr=run.stderr)
        if code != 0:
            _remove(dst)
            detail = telling_line(run.stderr)
            raise TranscodeError(
                f"ffmpeg failed (exit {code}): {detail or 'no error message'}",
                command=run.command,
                stderr=run.stderr,
            )
    try:
        if preset.kind == "hls":
            _write_master(preset, source, dst)
        if stamp is not None:
            _stamp(preset, dst, stamp)
        return verify(preset, source, dst)
    except BaseException:
        _remove(dst)  # a failed check or stamp (a full disk too) leaves nothing behind
        raise


def _killed(signum: int) -> str:
    """Why ffmpeg died, said so that a user knows where to look."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    hint = " (out of memory?)" if signum == signal.SIGKILL else ""
    return f"ffmpeg was killed by {name}{hint}"


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


def read_stderr(log_file: IO[bytes]) -> str:
    """What a log keeps of ffmpeg's stderr: its first lines and its last, bounded in lines and
    bytes whatever ffmpeg wrote (a damaged input can make it warn for every frame)."""
    size = log_file.seek(0, os.SEEK_END)
    log_file.seek(0)
    if size <= STDERR_HEAD_BYTES + STDERR_TAIL_BYTES:
        lines = log_file.read().decode(errors="replace").splitlines()
        if len(lines) <= STDERR_HEAD_LINES + STDERR_TAIL_LINES:
            return "\n".join(map(shown, lines))
        head, tail = lines[:STDERR_HEAD_LINES], lines[-STDERR_TAIL_LINES:]
    else:
        head = log_file.read(STDERR_HEAD_BYTES).decode(errors="replace").splitlines()
        head = head[: min(STDERR_HEAD_LINES, max(len(head) - 1, 0))]  # the last may be cut
        log_file.seek(size - STDERR_TAIL_BYTES)
        tail = log_file.read().decode(errors="replace").splitlines()[1:]  # the first is cut
        tail = tail[-STDERR_TAIL_LINES:]
    marker = f"[… ffmpeg wrote {size} bytes of messages; lines between these left out …]"
    return "\n".join([*map(shown, head), marker, *map(shown, tail)])


#: ``[libx264 @ 0x55c7…] [enc:libx264 @ 0x…] [error] text``: the contexts, then the level
#: (none from an ffmpeg told otherwise, given with --ffmpeg).
_LINE = re.compile(r"^(?:\[[^\]]* @ 0x[0-9a-f]+\] )*(?:\[(?P<level>[a-z]+)\] )?(?P<text>.*)$")
_ERROR_LEVELS = frozenset({"error", "fatal", "panic"})
#: For an ffmpeg that does not tag its lines (one given with --ffmpeg, told otherwise).
_ERRORISH = re.compile(
    r"error|invalid|not found|unknown|unrecognized|unsupported|failed|cannot|could not"
    r"|no such|denied|not supported|does not",
    re.IGNORECASE,
)
#: The banner and stream description: they may say "error" (``-err_detect``) without one.
_BANNER = re.compile(
    r"^(?:\s|ffmpeg version|built with|configuration:|lib[a-z]+\s|Input #|Output #"
    r"|Stream mapping|Press \[q\]|frame=|size=|video:)"
)


def telling_line(stderr: str) -> str:
    """The line that best says why ffmpeg failed: its first error, one line, at most
    MAX_REASON_CHARS, printable; "" if it said nothing.

    The first, not the last: ffmpeg reports a cause, then its consequences ("Error parsing
    option 'level'…", then "Error while opening encoder", …, "Nothing was written into
    output file"). Tagged lines are judged by their level; untagged ones by their words,
    the banner and stream lines aside; failing both, the last line said.
    """
    texts = []
    for line in stderr.splitlines():
        parts = _LINE.match(line)
        assert parts is not None  # it matches any line
        if parts["level"] in _ERROR_LEVELS:
            return _one_line(parts["text"])
        if parts["text"].strip():
            texts.append(parts["text"])
    errorish = (t for t in texts if _ERRORISH.search(t) and not _BANNER.match(t))
    return _one_line(next(errorish, texts[-1] if texts else ""))


def _one_line(text: str) -> str:
    line = shown(text.strip())
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 1] + "…"


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``cmd`` started (``subprocess.Popen``, stdin from /dev/null) so that it dies with
    this process, even when we are killed with -9: no ffmpeg runs on, orphaned, after its
    worker; every ffmpeg a worker starts goes through here."""
    wrapper = _death_wrapper()
    if not wrapper:
        _load_prctl()  # loaded before the fork: the child only calls it
    return subprocess.Popen(
        [*wrapper, *cmd] if wrapper else cmd,
        preexec_fn=None if wrapper else _die_with_parent,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


@functools.cache
def _load_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only where setpriv cannot do it

    try:
        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_PR_SET_PDEATHSIG = 1


@functools.cache
def _death_wrapper() -> tuple[str, ...]:
    """``setpriv --pdeathsig KILL --``, where util-linux has it, else nothing.

    It sets the same PR_SET_PDEATHSIG as ``_die_with_parent``; a preexec_fn makes
    subprocess fork() this whole process, ~3 ms of every job, where a wrapper lets it vfork().
    setpriv before util-linux 2.33 lacks the option; its option table, read from the binary,
    tells without running it (which would delay the first job).
    """
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if setpriv is None:
        return ()
    try:
        knows = b"pdeathsig" in Path(setpriv).read_bytes()
    except OSError:
        return ()
    return (setpriv, "--pdeathsig", "KILL", "--") if knows else ()


def _die_with_parent() -> None:
    """In the child before exec: if we are killed (even with -9), ffmpeg dies too.

    ``spawn`` loads prctl before forking; the child only calls it.
    """
    prctl = _load_prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _follow(
    proc: subprocess.Popen[bytes],
    duration: float | None,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
) -> bool:
    """Report progress until ffmpeg closes its output; True if ``cancel`` stopped it first.

    A cancel is seen within CANCEL_POLL_SECONDS even while ffmpeg prints nothing (blocked
    in an open or a read), without a watcher thread per job.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    block: dict[str, str] = {}
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            if cancel is not None and cancel.is_set():
                stop(proc)
                return True
            if not selector.select(CANCEL_POLL_SECONDS if cancel is not None else None):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return False
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                key, _, value = line.decode(errors="replace").strip().partition("=")
                block[key] = value
                if key != "progress":
                    continue
                if progress is not None:
                    progress(_fraction(block, duration, value == "end"), _speed(block))
                block = {}


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ended as a cancel ends ffmpeg: asked (SIGTERM, it closes its output), then killed."""
    proc.terminate()  # ffmpeg ignores it while blocked in a read or open
    try:
        proc.wait(CANCEL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()


def _fraction(block: dict[str, str], duration: float | None, ended: bool) -> float:
    if ended:
        return 1.0
    try:
        done = int(block.get("out_time_us", "0")) / 1e6
    except ValueError:
        return 0.0
    if not duration:
        return 0.0
    return max(0.0, min(done / duration, 0.999))


def _speed(block: dict[str, str]) -> float | None:
    try:
        return float(block.get("speed", "").rstrip("x"))
    except ValueError:
        return None


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


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _decoder_name(encoder: str | None) -> str | None:
    return codec_name(encoder)
