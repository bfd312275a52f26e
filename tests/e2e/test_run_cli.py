"""``autotranscode run DROP OUT`` as a user runs it: a subprocess watching a folder until Ctrl+C.

Files are dropped the ways real programs drop them (a copy written in place, a rename
from elsewhere, a slow writer), the process is stopped with SIGINT and started again,
and the output folder, the journal (``status --json``) and the cloud side are checked.

What the watcher decides (when a file is whole, a missing DROP) does not depend on the
backend: those tests run on the local one only, for time; the batch across restarts runs on
both.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import (
    BACKENDS,
    PART_SUFFIX,
    Cli,
    Proc,
    by_stage,
    listed,
    names,
    open_cli,
    wait_until,
)

from conftest import UNICODE_NAME, Clip, check_output

SETTLE = "0.3"
#: What ``run`` logs for a file it finds done before (see Pipeline.add).
SKIPPED = "done before; skipped"


@pytest.fixture(params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, request.param)


@pytest.fixture
def local_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """For the watcher's own behaviour, which does not depend on the backend."""
    yield from open_cli(request, tmp_path, "local")


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    return drop, out


def start_run(cli: Cli, drop: Path, out: Path, *extra: str, name: str = "run") -> Proc:
    """``run`` started and ready: its watcher is up and Ctrl+C is handled from here on."""
    proc = cli.start(name, "run", drop, out, "--settle", SETTLE, *extra)
    proc.wait_for_log("watching")
    return proc


def stop(proc: Proc) -> None:
    assert proc.stop() == 130, proc  # Ctrl+C's exit status
    assert "Traceback" not in proc.stderr, proc


def outputs_for(clips: dict[str, Clip], *sources: str) -> dict[str, Clip]:
    return {Path(s).stem + ".mp4": clips[s] for s in sources}


def fail_fast_on_failures(cli: Cli) -> bool:
    """For a wait: a file that FAILED will never give its output; say so at once."""
    status = cli.status()
    assert not listed(status, "failed"), listed(status, "failed")
    return False


def test_dropped_files_are_transcoded_once_across_restarts(
    cli: Cli, tmp_path: Path, folders: tuple[Path, Path], clips: dict[str, Clip]
) -> None:
    drop, out = folders
    expected = outputs_for(clips, "h264.mp4", "mjpeg.avi", "vp9.mkv", "no audio.mp4")
    # Two files are there before it starts: the start-up scan takes them.
    for name in ("h264.mp4", "mjpeg.avi"):
        shutil.copyfile(clips[name].path, drop / name)

    run = start_run(cli, drop, out)
    # Two more while it runs: one renamed in from elsewhere, one written in place.
    staging = tmp_path / "staging"
    staging.mkdir()
    shutil.copyfile(clips["vp9.mkv"].path, staging / "vp9.mkv")
    os.rename(staging / "vp9.mkv", drop / "vp9.mkv")
    shutil.copyfile(clips["no audio.mp4"].path, drop / "no audio.mp4")
    # Not media, and hidden (real media, content of its own, as identity is content): ignored.
    (drop / "notes.txt").write_text("shopping list\n")
    shutil.copyfile(clips[UNICODE_NAME].path, drop / ".hidden.mp4")

    wait_until(lambda: set(expected) <= set(names(out)), "the four outputs in OUT", procs=(run,))
    for name, clip in expected.items():
        check_output(out / name, clip)
    stop(run)

    assert names(out) == sorted(expected)  # nothing else: no part files, nothing for ignored ones
    assert not any(n.endswith(PART_SUFFIX) for n in names(out))
    status = cli.status()
    assert by_stage(status) == {"done": 4}, status
    assert sorted(Path(r["path"]).name for r in status["recent"]) == sorted(
        ["h264.mp4", "mjpeg.avi", "vp9.mkv", "no audio.mp4"]
    )
    cli.assert_no_leftovers()
    inodes = {n: (out / n).stat().st_ino for n in expected}

    # Started again on the same folders and state: nothing is done twice.
    again = start_run(cli, drop, out, name="run-again")
    # The start-up scan hands each file on after the settle period; give it that time, and
    # leave early once the four "already done" lines show it has looked at all of them.
    deadline = time.monotonic() + 3.0
    while again.stderr.count(SKIPPED) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert names(out) == sorted(expected)
    assert by_stage(cli.status()) == {"done": 4}
    stop(again)
    assert names(out) == sorted(expected)
    assert {n: (out / n).stat().st_ino for n in expected} == inodes
    assert by_stage(cli.status()) == {"done": 4}
    cli.assert_no_leftovers()


def test_a_file_moved_or_linked_into_drop_is_taken_once_settled(
    local_cli: Cli, tmp_path: Path, folders: tuple[Path, Path], clips: dict[str, Clip]
) -> None:
    """The atomic ways to drop a file: nothing is written in DROP, so no close event follows.

    The deadline is far above the settle time (0.3 s) and below both the 30 s rescan and the
    60 s open-writer fallback: it tells "taken once settled" from "taken by a fallback".
    """
    drop, out = folders
    staging = tmp_path / "staging"
    staging.mkdir()
    shutil.copyfile(clips["h264.mp4"].path, staging / "moved.mp4")

    run = start_run(local_cli, drop, out)
    os.rename(staging / "moved.mp4", drop / "moved.mp4")
    os.link(clips["mjpeg.avi"].path, drop / "linked.avi")

    wait_until(
        lambda: {"moved.mp4", "linked.mp4"} <= set(names(out)),
        "the outputs of the moved and the linked file",
        timeout=15,
        procs=(run,),
    )
    check_output(out / "moved.mp4", clips["h264.mp4"])
    check_output(out / "linked.mp4", clips["mjpeg.avi"])
    stop(run)


def test_a_file_still_being_written_is_not_taken_early(
    local_cli: Cli, folders: tuple[Path, Path], clips: dict[str, Clip]
) -> None:
    """Written in five parts with pauses longer than the settle time: taken only once complete."""
    drop, out = folders
    clip = clips["h264.mp4"]
    data = clip.path.read_bytes()
    step = -(-len(data) // 5)

    run = start_run(local_cli, drop, out)
    with (drop / "slow.mp4").open("wb") as fh:
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            time.sleep(0.5)

    wait_until(
        lambda: "slow.mp4" in names(out) or fail_fast_on_failures(local_cli),
        "the output of the slowly written file",
        procs=(run,),
        interval=0.2,
    )
    check_output(out / "slow.mp4", clip)
    stop(run)

    assert names(out) == ["slow.mp4"]
    status = local_cli.status()
    assert by_stage(status) == {"done": 1}, status
    local_cli.assert_no_leftovers()


def test_a_missing_drop_folder_is_a_clear_error(local_cli: Cli, tmp_path: Path) -> None:
    drop = tmp_path / "no such folder"

    result = local_cli.run("run", drop, tmp_path / "out", "--settle", SETTLE)

    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if str(drop) in ln]
    assert line.lower().startswith("error") and "does not exist" in line, result.stderr
    assert not (tmp_path / "out").exists()
