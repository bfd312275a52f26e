"""The progress displays, driven through their hooks with a clock the test moves.

What a terminal shows is checked end to end in tests/e2e/test_progress_display.py;
here each rule is checked alone, in a few milliseconds, including the ones a real run
goes through too fast to see (a transcoding line with its speed and ETA).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from autotranscode.journal import FileState
from autotranscode.progress import LogReporter, RichReporter
from autotranscode.stages import Stage

FULL_BAR = "━" * 24


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reporter(clock: Clock) -> RichReporter:
    console = Console(file=io.StringIO(), width=140, height=40, force_terminal=True)
    return RichReporter(console, clock=clock)


def view(reporter: RichReporter) -> list[str]:
    """The live part as a terminal would show it now: an escape sequence that came through
    acts (and vanishes), as it would on the screen."""
    with reporter.console.capture() as capture:
        reporter.console.print(reporter)
    return [line.rstrip() for line in Text.from_ansi(capture.get()).plain.splitlines()]


def printed(reporter: RichReporter) -> list[str]:
    """What was printed above the live part (finished files), as a terminal would show it."""
    out = reporter.console.file
    assert isinstance(out, io.StringIO)
    return [line.rstrip() for line in Text.from_ansi(out.getvalue()).plain.splitlines()]


def line_of(lines: list[str], name: str) -> str:
    found = [line for line in lines if name in line]
    assert len(found) == 1, lines
    return found[0]


def test_the_clock_runs_from_first_sight_through_every_stage(
    reporter: RichReporter, clock: Clock
) -> None:
    path = Path("/drop/a.mov")
    reporter.on_seen(path=path)
    assert "copying in" in line_of(view(reporter), "a.mov")
    clock.now += 5
    reporter.on_state(path=path, state=FileState.DISCOVERED)
    reporter.on_state(path=path, state=FileState.UPLOADING, size=1000)
    reporter.on_progress(path=path, stage="uploading", fraction=1.0)
    assert "uploading 100 %" in line_of(view(reporter), "a.mov")
    clock.now += 2
    reporter.on_state(path=path, state=FileState.SUBMITTED)
    line = line_of(view(reporter), "a.mov")
    assert "waiting for a worker" in line
    assert "0:00:07" in line
    assert "100" not in line and FULL_BAR not in line, line
    clock.now += 65
    assert "0:01:12" in line_of(view(reporter), "a.mov")


def test_transcoding_shows_percent_speed_and_eta(reporter: RichReporter) -> None:
    path = Path("/drop/b.mp4")
    reporter.on_state(path=path, state=FileState.TRANSCODING)
    reporter.on_progress(path=path, stage="transcoding", fraction=0.42, speed="2.50", eta="75")
    line = line_of(view(reporter), "b.mp4")
    assert "transcoding 42 % · 2.5× · ETA 0:01:15" in line
    assert "━" * 10 in line and FULL_BAR not in line


def test_finished_files_leave_the_live_part_as_one_line_and_count_in_the_totals(
    reporter: RichReporter, clock: Clock, tmp_path: Path
) -> None:
    out = tmp_path / "a.mp4"
    out.write_bytes(b"x" * 400_000)
    done, failed, busy, waiting = (Path(f"/drop/{n}") for n in ("a.mov", "b.mov", "c.mov", "d"))
    for p in (done, failed, busy, waiting):
        reporter.on_state(path=p, state=FileState.DISCOVERED)
    reporter.on_state(path=done, state=FileState.UPLOADING, size=1_500_000)
    reporter.on_state(path=busy, state=FileState.UPLOADING, size=10)
    clock.now += 3
    reporter.on_state(path=done, state=FileState.CLEANED, detail="a.mp4", outputs=(str(out),))
    reporter.on_state(path=failed, state=FileState.FAILED, detail="the file is empty")

    above = printed(reporter)
    assert len(above) == 2, above
    assert above[0].startswith("✓ a.mov → a.mp4 · 1.5 MB → 400.0 kB · 0:00:03"), above
    assert above[1].startswith("✗ b.mov failed: the file is empty"), above
    lines = view(reporter)
    assert not [line for line in lines if "a.mov" in line or "b.mov" in line], lines
    assert lines[-1] == "done 1 · failed 1 · in flight 1 · queued 1 · saved 1.1 MB", lines


def test_late_hooks_of_a_finished_file_do_not_bring_it_back(reporter: RichReporter) -> None:
    """Hooks come from several threads: a step's "waiting for a worker" can arrive after the
    listener's "done" (seen under load); only a new version (queued, seen) starts over."""
    path = Path("/drop/a.mov")
    reporter.on_state(path=path, state=FileState.DISCOVERED)
    reporter.on_state(path=path, state=FileState.CLEANED)
    reporter.on_state(path=path, state=FileState.SUBMITTED)
    reporter.on_progress(path=path, stage="transcoding", fraction=0.5)
    reporter.on_state(path=path, state=FileState.CLEANED)  # a duplicate "done" counts once
    lines = view(reporter)
    assert not [line for line in lines if "a.mov" in line], lines
    assert lines[-1].startswith("done 1 · failed 0 · in flight 0 · queued 0"), lines
    reporter.on_state(path=path, state=FileState.DISCOVERED)  # retried, or dropped again
    reporter.on_state(path=path, state=FileState.SUBMITTED)
    assert "waiting for a worker" in line_of(view(reporter), "a.mov")


def test_a_stop_marks_what_is_unfinished_interrupted(reporter: RichReporter) -> None:
    path = Path("/drop/a.mov")
    with reporter:
        reporter.on_state(path=path, state=FileState.SUBMITTED)
    assert "interrupted · waiting for a worker" in line_of(view(reporter), "a.mov")
    reporter.on_state(path=path, state=FileState.TRANSCODING)  # a late hook changes nothing
    assert "interrupted · waiting for a worker" in line_of(view(reporter), "a.mov")


def test_a_file_the_watcher_does_not_hand_on_leaves_the_display(reporter: RichReporter) -> None:
    skipped, taken = Path("/drop/old.mov"), Path("/drop/new.mov")
    for p in (skipped, taken):
        reporter.on_seen(path=p)
    reporter.on_state(path=taken, state=FileState.DISCOVERED)
    for p in (skipped, taken):
        reporter.on_settled(path=p)
    lines = view(reporter)
    assert not [line for line in lines if "old.mov" in line], lines
    assert "queued" in line_of(lines, "new.mov")


HOSTILE = [
    "[bold red]x.mp4",
    "[@click=quit]y.mov",
    "e\x1b[31mvil.mp4",
    "new\nline.mp4",
    ":smile:.mp4",
]


def literal(name: str) -> str:
    return name.encode("unicode_escape").decode("ascii")


def test_names_and_reasons_are_shown_literally(reporter: RichReporter) -> None:
    for name in HOSTILE:
        reporter.on_state(path=Path("/drop") / name, state=FileState.SUBMITTED)
    reporter.on_state(path=Path("/drop/z.mp4"), state=FileState.FAILED, detail="[blink]bad\x1b[5m")
    lines = view(reporter)
    for name in HOSTILE:
        assert "waiting for a worker" in line_of(lines, literal(name))
    assert printed(reporter)[0].startswith("✗ z.mp4 failed: [blink]bad\\x1b[5m ·")


def test_log_lines_one_per_stage_literal_names(caplog: pytest.LogCaptureFixture) -> None:
    reporter = LogReporter()
    path = Path("/drop/e\x1b[31mvil\n.mp4")
    with caplog.at_level(logging.INFO, logger="autotranscode"):
        reporter.on_state(path=path, state=FileState.DISCOVERED)
        reporter.on_state(path=path, state=FileState.UPLOADING, size=10)
        for i in range(10):
            reporter.on_progress(path=path, stage="uploading", fraction=i / 10)
        reporter.on_state(path=path, state=FileState.UPLOADED)
        reporter.on_state(path=path, state=FileState.SUBMITTED)
        for i in range(10):
            reporter.on_progress(path=path, stage="transcoding", fraction=i / 10, speed="3")
        reporter.on_state(path=path, state=FileState.FAILED, detail="no\x1b[2Jway")
    name = "e\\x1b[31mvil\\n.mp4"
    assert [r.getMessage() for r in caplog.records] == [
        f"{name}: queued",
        f"{name}: uploading",
        f"{name}: waiting for a worker",
        f"{name}: transcoding",
        f"{name}: failed: no\\x1b[2Jway (after 0:00:00)",
    ]


def test_a_partly_done_file_shows_its_failed_outputs_and_counts_apart(
    reporter: RichReporter, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "a.web-720p.mp4"
    out.write_bytes(b"x" * 400_000)
    path = Path("/drop/a.mov")
    reason = "preset audio-aac needs an audio stream\x1b[2J and the input has none"
    hooks = {
        "path": path,
        "state": FileState.CLEANED,
        "detail": out.name,
        "outputs": (str(out),),
        "stage": Stage.PARTLY_DONE,
        "failed_outputs": (("audio-aac", reason),),
    }
    reporter.on_state(path=path, state=FileState.UPLOADING, size=1_000_000)
    clock.now += 4
    reporter.on_state(**hooks)
    line = " ".join(printed(reporter))  # one line, wrapped at the console's width
    assert line.startswith(
        "◐ a.mov partly done → a.web-720p.mp4 · not made: audio-aac (preset audio-aac needs an"
        " audio stream\\x1b[2J and the input has none) · 1.0 MB → 400.0 kB · 0:00:04"
    ), line
    assert view(reporter)[-1] == (
        "done 0 · partly done 1 · failed 0 · in flight 0 · queued 0 · saved 600.0 kB"
    )

    logs = LogReporter()
    with caplog.at_level(logging.INFO, logger="autotranscode"):
        logs.on_state(**hooks)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "a.mov: partly done -> a.web-720p.mp4; not made: audio-aac (preset audio-aac needs an"
        " audio stream\\x1b[2J and the input has none)"
    ), record.getMessage()
