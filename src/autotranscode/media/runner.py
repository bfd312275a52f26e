"""Run one ffmpeg command: follow its progress, stop it on a cancel, and say why it failed.

Every ffmpeg run of a job goes through ``run``: a whole-file transcode (``transcoder``)
and the parts of a chunked one (``chunks``: a chunk's video, the rest, the join), so
all of them die with their worker, report progress alike and fail with the same telling
reasons.

ffmpeg writes ``key=value`` blocks on ``-progress pipe:1`` about every 0.5 s; we
read ``out_time_us`` from them. Its stderr (``level+info``: every line tagged with its
level) goes to a file, of which a bounded head and tail are kept for the file's log
(``FfmpegRun``). A non-zero exit becomes TranscodeError whose reason is ffmpeg's most
telling line (its first error, not its last: the last is often a consequence, "Nothing
was written into output file").
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError, FfmpegKilled, TranscodeError
from ..text import shown

log = logging.getLogger(__name__)

#: Called with the fraction done (0..1) and ffmpeg's speed factor when it reports one;
#: first with 0.0 as soon as ffmpeg has started.
ProgressFn = Callable[[float, float | None], None]

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


def run(
    ffmpeg_cmd: list[str],
    *,
    duration: float | None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    started: Callable[[int, list[str]], None] | None = None,
    ended: Callable[[int], None] | None = None,
    ran: Callable[[FfmpegRun], None] | None = None,
    output: Path | None = None,
) -> None:
    """Run ``ffmpeg_cmd`` (the executable first, ``-progress pipe:1`` among its options) to
    its end; TranscodeError (FfmpegKilled for a signal) if it fails or ``cancel`` stops it.

    ``duration``: seconds of media it makes, for the fraction ``progress`` is told.
    ``started`` is called with ffmpeg's pid and command line once it runs; ``ended`` with
    its exit status (negative: the signal) once it has ended; ``ran`` with its command line
    and stderr tail, for a log, whether it succeeded or not. ``output``: removed (a file or
    a folder) when the run fails, so nothing half written stays behind.
    """
    ffmpeg = ffmpeg_cmd[0]
    if shutil.which(ffmpeg) is None:
        raise ConfigError(f"cannot run ffmpeg {ffmpeg}: not found or not executable")
    # stderr goes to an unnamed file, read after the exit: no reader thread per job.
    with tempfile.TemporaryFile() as errors:
        try:
            proc = spawn(ffmpeg_cmd, stdout=subprocess.PIPE, stderr=errors)
        except OSError as exc:
            raise ConfigError(f"cannot run ffmpeg {ffmpeg}: {exc}") from exc
        try:
            if started is not None:
                started(proc.pid, ffmpeg_cmd)
            if progress is not None:
                progress(0.0, None)  # started: said once ffmpeg runs, not before
            cancelled = _follow(proc, duration, progress, cancel)
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            if ended is not None:
                ended(proc.returncode)
        done = FfmpegRun(shlex.join(ffmpeg_cmd), proc.returncode, read_stderr(errors))
    if ran is not None:
        ran(done)
    if code == 0 and not cancelled:
        return
    if output is not None:
        remove(output)
    if cancelled:
        raise TranscodeError("transcode cancelled", command=done.command, stderr=done.stderr)
    if code < 0:
        raise FfmpegKilled(_killed(-code), command=done.command, stderr=done.stderr)
    detail = telling_line(done.stderr)
    raise TranscodeError(
        f"ffmpeg failed (exit {code}): {detail or 'no error message'}",
        command=done.command,
        stderr=done.stderr,
    )


class Deadline(threading.Event):
    """A cancel for ``run`` that is set by the job's cancel or by a deadline (``run`` asks
    ``is_set`` about twice a second): a time cap without a timer thread to clean up."""

    def __init__(self, cancel: threading.Event | None, deadline: float) -> None:
        super().__init__()
        self._cancel, self._deadline = cancel, deadline

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._deadline

    def is_set(self) -> bool:
        return (
            super().is_set() or (self._cancel is not None and self._cancel.is_set()) or self.expired
        )


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


def remove(path: Path) -> None:
    """A file or a folder gone, whatever of it was there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _killed(signum: int) -> str:
    """Why ffmpeg died, said so that a user knows where to look."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    hint = " (out of memory?)" if signum == signal.SIGKILL else ""
    return f"ffmpeg was killed by {name}{hint}"


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
