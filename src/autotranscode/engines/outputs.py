"""The pieces of one output's making that the worker puts together: the handoff between
consecutive jobs' ffmpegs, the events of each ffmpeg, progress at a bearable rate, and the
status each output ends with."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..media.probe import MediaInfo
from ..messages import MAX_DETAIL, Job, OutputStatus
from ..stages import OutputAction
from .hooks import WorkerHooks

#: How often a job's PROGRESSING notifications go out, at most.
PROGRESS_INTERVAL_SECONDS = 1.0
HEX_DIGEST = re.compile(r"[0-9a-f]{16,128}")
#: Where throttled progress goes: the job, the fraction of it done, speed, ETA in seconds.
Report = Callable[[Job, float, "float | None", "float | None"], None]


class Handoff:
    """Between one job's ffmpeg and the next, the encoder should idle as briefly as can be.

    When a job's last ffmpeg ends, ``exited`` lets the worker take the next job, while this
    one's output checks (a probe that holds the GIL), upload and notice wait for ``go``:
    set once the next job's ffmpeg runs, when it ends without one, or when no job is
    waiting. The wait is bounded: a next job that must first fetch its input from S3
    does not hold this one's completion for long.
    """

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.exited = threading.Event()
        self.go = threading.Event()

    def ended(self) -> None:
        self.exited.set()
        self.go.wait(self.wait)


class FfmpegEvents:
    """What ``transcode`` says of one ffmpeg, passed on to the hooks and the handoffs: its
    start lets the previous job's checks go, its end lets the worker take the next job."""

    def __init__(
        self,
        hooks: WorkerHooks,
        job: Job,
        output: Path,
        previous: Handoff | None,
        handoff: Handoff | None,
    ) -> None:
        self.hooks, self.job, self.output = hooks, job, output
        self.previous, self.handoff = previous, handoff
        self.pid = 0

    def started(self, pid: int, command: list[str]) -> None:
        self.pid = pid
        try:
            self.hooks.on_ffmpeg_started(job=self.job, pid=pid, command=command, output=self.output)
        finally:
            if self.previous is not None:
                self.previous.go.set()

    def ended(self, returncode: int) -> None:
        try:
            self.hooks.on_ffmpeg_ended(job=self.job, pid=self.pid, returncode=returncode)
        finally:
            if self.handoff is not None:
                self.handoff.ended()


class ThrottledProgress:
    """ffmpeg reports twice a second; clients need at most one PROGRESSING per interval."""

    def __init__(self, report: Report, job: Job, index: int, duration: float | None) -> None:
        self.report, self.job, self.index, self.duration = report, job, index, duration
        self.last = 0.0

    def __call__(self, fraction: float, speed: float | None) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL_SECONDS and fraction < 1.0:
            self.last = now
            overall = (self.index + fraction) / len(self.job.outputs)
            eta = None
            if speed and self.duration:
                # Media seconds still to encode, over media seconds encoded per second.
                eta = (1 - overall) * self.duration * len(self.job.outputs) / speed
            self.report(self.job, overall, speed, eta)


def content_hash(job: Job) -> str | None:
    """The source's content hash the client sent, for the outputs' stamps; a value that is
    not a hex digest is not written into anyone's files."""
    value = job.user_metadata.get("contentHash")
    return value if value and HEX_DIGEST.fullmatch(value) else None


def complete_status(
    key: str,
    preset_id: str,
    info: MediaInfo,
    size: int,
    vmaf: float | None = None,
    crf: float | None = None,
    action: OutputAction | None = None,
    note: str | None = None,
) -> OutputStatus:
    return OutputStatus(
        key=key,
        preset_id=preset_id,
        status="Complete",
        duration=info.duration,
        width=info.width,
        height=info.height,
        size=size,
        vmaf=vmaf,
        crf=crf,
        action=action,
        note=note[:MAX_DETAIL] if note else None,
    )


def one_line(text: str) -> str:
    """A reason as a notification carries it: its first line, cut to fit."""
    return (text.strip().splitlines() or ["failed"])[0][:MAX_DETAIL]


def failures(outputs: Sequence[OutputStatus]) -> str | None:
    """An ERROR's ``messageDetails`` when an output failed: which, and why (every one for
    the same reason: that reason, as for a job that failed as a whole); else None."""
    failed = [o for o in outputs if o.status != "Complete"]
    if not failed:
        return None
    if len(failed) == len(outputs) and len({o.status_detail for o in failed}) == 1:
        return failed[0].status_detail or "the job failed"
    why = "; ".join(f"{o.preset_id}: {o.status_detail}" for o in failed)
    return f"{len(failed)} of {len(outputs)} outputs failed ({why})"[:MAX_DETAIL]
