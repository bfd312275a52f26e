"""The worker's hooks: what it does, told as it happens, for tests and benchmarks.

Like s3transfer's subscribers: a base class whose methods do nothing and accept any
keywords, so a caller overrides the moments it cares about and new keywords break no one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..media.probe import MediaInfo
from ..messages import Job, Notification

__all__ = ["WorkerHooks"]


class WorkerHooks:
    """What a worker does, told as it happens; override what you need (tests, benchmarks).

    Every hook accepts and ignores extra keywords. Hooks run inline on the job's thread:
    one that blocks holds the job there, and one that raises an AutotranscodeError while
    the job runs (received to output checked) fails it as that error would (tests use both
    to set up races and faults).
    """

    def on_job_received(self, *, job: Job, receive_count: int, **kwargs: Any) -> None:
        """``job`` checked out (ours, well formed, attempts left) and is about to be run."""

    def on_source_probed(self, *, job: Job, path: Path, info: MediaInfo, **kwargs: Any) -> None:
        """The worker probed the input itself: the job carried no probe of this very file."""

    def on_ffmpeg_started(
        self, *, job: Job, pid: int, command: list[str], output: Path, **kwargs: Any
    ) -> None:
        """ffmpeg runs as ``pid``, writing ``output`` (a temporary name in the work folder)."""

    def on_ffmpeg_ended(self, *, job: Job, pid: int, returncode: int, **kwargs: Any) -> None:
        """ffmpeg has exited (``returncode`` < 0: killed by that signal); not yet checked."""

    def on_output_checked(self, *, job: Job, output: Path, info: MediaInfo, **kwargs: Any) -> None:
        """``output`` was made, stamped and probed as its preset promises; next, its upload."""

    def on_publishing(self, *, notification: Notification, **kwargs: Any) -> None:
        """``notification`` is about to be published."""

    def on_published(self, *, notification: Notification, **kwargs: Any) -> None:
        """``notification`` was published (COMPLETED and ERROR: the job is answered)."""
