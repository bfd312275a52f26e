"""Progress hooks (do-nothing base, like s3transfer's subscribers) and the two displays.

The pipeline reports every state change and progress tick to a Subscriber; the
CLI picks rich bars on a terminal and plain log lines otherwise.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .journal import FileState

if TYPE_CHECKING:  # rich is imported only when bars are shown: ~20 ms off every start
    from rich.console import Console
    from rich.progress import TaskID

log = logging.getLogger("autotranscode")


class Subscriber:
    """Override what you need; every hook accepts and ignores extra keywords."""

    def on_state(
        self, *, path: Path, state: FileState, detail: str | None = None, **kwargs: Any
    ) -> None:
        pass

    def on_progress(self, *, path: Path, stage: str, fraction: float, **kwargs: Any) -> None:
        pass


class Fanout(Subscriber):
    def __init__(self, *subscribers: Subscriber) -> None:
        self.subscribers = subscribers

    def on_state(self, **kwargs: Any) -> None:
        for s in self.subscribers:
            s.on_state(**kwargs)

    def on_progress(self, **kwargs: Any) -> None:
        for s in self.subscribers:
            s.on_progress(**kwargs)


_SHOWN = {
    FileState.DISCOVERED: "queued",
    FileState.UPLOADING: "uploading",
    FileState.SUBMITTED: "waiting for a worker",
    FileState.TRANSCODING: "transcoding",
    FileState.DOWNLOADING: "downloading",
    FileState.CLEANED: "done",
    FileState.FAILED: "failed",
}


class LogReporter(Subscriber):
    """One log line per milestone: what a log file or a pipe should get."""

    def on_state(
        self, *, path: Path, state: FileState, detail: str | None = None, **kwargs: Any
    ) -> None:
        if state == FileState.FAILED:
            log.error("%s: failed: %s", path.name, detail)
        elif state == FileState.CLEANED:
            log.info("%s: done -> %s", path.name, detail)
        elif state in (FileState.DISCOVERED, FileState.TRANSCODING):
            log.info("%s: %s", path.name, _SHOWN[state])


class RichReporter(Subscriber):
    """One bar per file: stage and percent, on a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Column

        self.progress = Progress(
            TextColumn(
                "{task.fields[name]}", style="bold", table_column=Column(min_width=24, no_wrap=True)
            ),
            BarColumn(bar_width=24),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[stage]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[Path, TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _task(self, path: Path) -> TaskID:
        with self._lock:
            if path not in self._tasks:
                self._tasks[path] = self.progress.add_task(
                    "", total=1.0, name=_short(path.name), stage="queued"
                )
            return self._tasks[path]

    def on_state(
        self, *, path: Path, state: FileState, detail: str | None = None, **kwargs: Any
    ) -> None:
        task = self._task(path)
        if state == FileState.FAILED:
            self.progress.update(task, stage=f"[red]failed: {detail}")
            self.progress.stop_task(task)
        elif state == FileState.CLEANED:
            self.progress.update(task, completed=1.0, stage=f"[green]done → {detail}")
            self.progress.stop_task(task)
        elif state in _SHOWN:
            self.progress.update(task, stage=_SHOWN[state])

    def on_progress(self, *, path: Path, stage: str, fraction: float, **kwargs: Any) -> None:
        label = stage
        speed, eta = kwargs.get("speed"), kwargs.get("eta")
        if speed:
            label = f"{stage} {speed}×"
        if eta:
            label += f", {eta}s left"
        self.progress.update(self._task(path), completed=fraction, stage=label)


def _short(name: str, width: int = 32) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
