"""What a user sees while files go through: ``run`` and ``transcode`` on a pseudo-terminal,
the screen read back through a terminal emulator, and the log lines without a terminal.

The display's promises: each file in flight has one line with its stage and a clock
that runs from the file's first sight; no full bar while a file waits for a worker; a
finished file becomes one line above the live part, which ends with a totals line;
Ctrl+C marks what was in flight "interrupted"; and a file name (markup, ESC, newline)
is shown as the characters it holds, never obeyed by rich or the terminal.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli, open_cli
from terminal import Terminal

from conftest import Clip

SETTLE = "0.3"
FULL_BAR = "━" * 24
CLOCK = re.compile(r"\b(\d+):(\d\d):(\d\d)\b")
#: Distinct content for each (identity is content: a copy of one clip would be skipped).
HOSTILE = {
    "[bold red]x.mp4": "h264.mp4",
    "[@click=quit]y.mov": "mjpeg.avi",
    "e\x1b[31mvil.mp4": "vp9.mkv",
    "new\nline.mp4": "no audio.mp4",
}
#: Empty, so it fails: its name must show literally on the failure line too.
HOSTILE_FAILING = "[red]bad\x1b]0;pwned\x07.mp4"


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """The display does not depend on the backend: local only."""
    yield from open_cli(request, tmp_path, "local")


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    yield started
    for t in started:
        t.close()


def on_terminal(cli: Cli, terminals: list[Terminal], *args: str | Path) -> Terminal:
    t = Terminal(cli.argv(*args), cli.env, cli.tmp)
    terminals.append(t)
    return t


def literal(name: str) -> str:
    """How a name must appear: its control characters as Python escapes, nothing else changed."""
    return name.encode("unicode_escape").decode("ascii")


def seconds(line: str) -> int:
    match = CLOCK.search(line)
    assert match, line
    h, m, s = map(int, match.groups())
    return h * 3600 + m * 60 + s


def file_line(t: Terminal, name: str, stage: str) -> str | None:
    return next((line for line in t.lines() if name in line and stage in line), None)


def hostile_files(folder: Path, clips: dict[str, Clip]) -> list[Path]:
    folder.mkdir()
    for name, source in HOSTILE.items():
        shutil.copyfile(clips[source].path, folder / name)
    (folder / HOSTILE_FAILING).write_bytes(b"")
    return sorted(folder.iterdir())


def test_run_shows_a_file_copying_in_then_waiting_with_a_running_clock_then_interrupted(
    cli: Cli, terminals: list[Terminal], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    # No workers: the file stays "waiting for a worker", the stage that showed a full bar.
    t = on_terminal(cli, terminals, "run", drop, out, "--settle", SETTLE, "--workers", "0")
    t.wait_for(lambda lines: any("watching" in line for line in lines), "run to start watching")

    data = clips["h264.mp4"].path.read_bytes()
    with (drop / "slow.mp4").open("wb") as writer:  # a copy still being written
        writer.write(data[: len(data) // 2])
        writer.flush()
        t.wait_for(lambda _: file_line(t, "slow.mp4", "copying in"), "the file copying in")
        time.sleep(1.5)
        writer.write(data[len(data) // 2 :])

    waiting = t.wait_for(
        lambda _: file_line(t, "slow.mp4", "waiting for a worker"), "the file waiting for a worker"
    )
    assert isinstance(waiting, str)
    # The clock started when the file was first seen, not when it was taken.
    first = seconds(waiting)
    assert first >= 1, t
    assert "100" not in waiting and FULL_BAR not in waiting, t
    time.sleep(2.5)
    later = file_line(t, "slow.mp4", "waiting for a worker")
    assert later is not None, t
    assert seconds(later) >= first + 2, t
    assert "100" not in later and FULL_BAR not in later, t
    assert t.lines()[-1].startswith("done 0 · failed 0 · in flight 1 · queued 0"), t

    t.interrupt()
    t.wait_exit()
    stopped = file_line(t, "slow.mp4", "interrupted")
    assert stopped is not None and "waiting for a worker" in stopped, t
    assert len([line for line in t.lines() if "slow.mp4" in line]) == 1, t


def test_run_collapses_each_finished_file_to_one_line_and_counts_them(
    cli: Cli, terminals: list[Terminal], tmp_path: Path, clips: dict[str, Clip], media_dir: Path
) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    t = on_terminal(cli, terminals, "run", drop, out, "--settle", SETTLE)
    t.wait_for(lambda lines: any("watching" in line for line in lines), "run to start watching")
    good = ["mjpeg.avi", "h264.mp4"]
    for name in good:
        shutil.copyfile(clips[name].path, drop / name)
    shutil.copyfile(media_dir / "notes.mp4", drop / "notes.mp4")  # text: fails

    totals = t.wait_for(
        lambda lines: next(
            (line for line in lines if line.startswith("done 2 · failed 1 · in flight 0")), None
        ),
        "the totals of the batch",
    )
    assert isinstance(totals, str)
    lines = t.lines()
    assert lines[-1] == totals, t  # the live part holds only the totals now
    for name in good:
        mine = [line for line in lines if name in line]
        assert len(mine) == 1 and mine[0].startswith(f"✓ {name} → "), t
    mine = [line for line in lines if "notes.mp4" in line]
    assert len(mine) == 1 and mine[0].startswith("✗ notes.mp4 failed: "), t

    saved = sum(clips[n].path.stat().st_size for n in good) - sum(
        p.stat().st_size for p in out.iterdir()
    )
    match = re.search(r"queued 0 · saved (-?[\d.]+) (bytes|kB|MB)$", totals)
    assert match, totals
    unit = {"bytes": 1, "kB": 1000, "MB": 1000_000}[match[2]]
    assert abs(float(match[1]) * unit - saved) <= 0.05 * unit + 1, (totals, saved)

    t.interrupt()
    t.wait_exit()


def test_transcode_on_a_terminal_shows_hostile_names_literally(
    cli: Cli, terminals: list[Terminal], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    files = hostile_files(tmp_path / "in", clips)
    t = on_terminal(cli, terminals, "transcode", *files, "-o", tmp_path / "out")
    assert t.wait_exit(90) == 1, t  # one failed
    lines = t.lines()
    for name in HOSTILE:
        assert any(line.startswith(f"✓ {literal(name)} → ") for line in lines), (name, t)
    failed = f"✗ {literal(HOSTILE_FAILING)} failed: the file is empty"
    assert any(line.startswith(failed) for line in lines), t
    assert any(line.startswith("done 4 · failed 1 · in flight 0 · queued 0") for line in lines), t


def test_log_lines_without_a_terminal_one_per_stage_and_literal(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    files = hostile_files(tmp_path / "in", clips)
    result = cli.run("transcode", *files, "-o", tmp_path / "out")
    assert result.returncode == 1, result.stderr
    log = result.stderr
    assert "\x1b" not in log and "\x07" not in log, log
    for name in HOSTILE:
        shown = literal(name)
        for stage in ("queued", "uploading", "waiting for a worker", "done -> "):
            assert log.count(f" {shown}: {stage}") == 1, (name, stage, log)
        assert log.count(f" {shown}: transcoding") <= 1, log  # never one per percent
    assert f" {literal(HOSTILE_FAILING)}: failed: the file is empty" in log, log
