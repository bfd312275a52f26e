"""What ``run`` and ``transcode`` take, and what they refuse at start (issue 13: 7, 8, 10, 14).

Only regular files are taken: a FIFO, a socket, a folder or a dangling link with a media
name is reported once as skipped, and never opened (opening a FIFO blocks until a writer
comes). OUT may sit inside DROP or hold it, but not be DROP. Mistakes in the setup (a
state dir or config that cannot be used) are one line and exit 2. A file appended in
bursts is taken whole, and failed pieces of it never come back as duplicates.

Run on the local backend: none of this depends on where objects and queues live.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli, Proc, by_stage, listed, names, open_cli, wait_until

from conftest import Clip, check_output, cli_env

SETTLE = "0.3"
#: For a wait that b4b9859 never ends: far above what the fixed code needs, well below 90 s.
QUICK = 20.0
NOBODY = 65534


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


def start_run(cli: Cli, drop: Path, out: Path, *extra: str) -> Proc:
    proc = cli.start("run", "run", drop, out, "--settle", SETTLE, *extra)
    proc.wait_for_log("watching", timeout=QUICK)
    return proc


def stop(proc: Proc, within: float = 10.0) -> None:
    """Ctrl+C: a clean exit, promptly, without a traceback."""
    started = time.monotonic()
    assert proc.stop(within) == 130, proc  # run's exit status after Ctrl+C
    assert time.monotonic() - started < within
    assert "Traceback" not in proc.stderr, proc


def one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2 and a single ``error: …`` line on stderr, mentioning ``words``."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stdout + result.stderr, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# --- case 7 and 8: only regular files are taken ---------------------------------------------------


def test_a_fifo_socket_folder_or_dangling_link_is_skipped_and_the_watcher_goes_on(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """``mkfifo drop/live.mp4`` while ``run`` watches used to block the watcher in open():
    no later drop was ever taken, and Ctrl+C hung. A dangling link was never reported."""
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    (drop / "dangling.mp4").symlink_to(drop / "nowhere.mp4")  # there at start-up
    run = start_run(cli, drop, out)

    os.mkfifo(drop / "live.mp4")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(drop / "sock.mp4"))
    (drop / "folder.mov").mkdir()
    time.sleep(0.5)  # the watcher has seen them before the good file comes
    shutil.copyfile(clips["h264.mp4"].path, drop / "after.mp4")
    try:
        wait_until(
            lambda: "after.mp4" in names(out), "the drop after the FIFO", QUICK, procs=(run,)
        )
        check_output(out / "after.mp4", clips["h264.mp4"])
        wait_until(lambda: by_stage(cli.status()).get("skipped") == 4, "four skipped entries")
        stop(run)
    finally:
        listener.close()

    status = cli.status()
    assert by_stage(status) == {"done": 1, "skipped": 4}, status
    assert listed(status, "failed") == [], status
    skipped = {Path(s["path"]).name: s["reason"] for s in listed(status, "skipped")}
    assert skipped == {
        "live.mp4": "a FIFO; only regular files are taken",
        "sock.mp4": "a socket; only regular files are taken",
        "folder.mov": "a folder; only regular files are taken",
        "dangling.mp4": "a dangling link; only regular files are taken",
    }, status
    for name in skipped:  # reported once each, not at every look
        assert run.stderr.count(f"{name}: skipped") == 1, run.stderr
    assert names(out) == ["after.mp4"]
    shown = cli.run("status", env={"COLUMNS": "500"})  # no wrapping inside a line
    assert "live.mp4 skipped: a FIFO" in shown.stdout, shown.stdout


def test_transcode_of_a_fifo_fails_at_once(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """It used to hang in open(), deaf to the first SIGTERM."""
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    out = tmp_path / "out"

    started = time.monotonic()
    result = cli.run("transcode", fifo, clips["h264.mp4"].path, "-o", out, timeout=QUICK)

    assert time.monotonic() - started < QUICK
    assert "Traceback" not in result.stdout + result.stderr, result
    assert result.returncode == 1, result
    assert result.stdout.splitlines() == [
        "FAILED  fifo.mp4: not a regular file (a FIFO); only regular files are transcoded",
        "ok      h264.mp4 -> h264.mp4",
        "1 done, 1 failed",
    ], result.stdout
    assert names(out) == ["h264.mp4"]


# --- case 8: OUT and DROP -------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink"])
def test_out_equal_to_drop_is_refused(cli: Cli, tmp_path: Path, spelling: str) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    out: Path = drop
    if spelling == "relative":
        out = Path("drop/../drop")  # cwd is tmp_path
    elif spelling == "symlink":
        out = tmp_path / "link"
        out.symlink_to(drop)

    result = cli.run("run", drop, out, "--settle", SETTLE, timeout=QUICK)

    one_error_line(result, "drop folder itself")
    assert names(drop) == []


def test_drop_inside_out_works(cli: Cli, tmp_path: Path, clips: dict[str, Clip]) -> None:
    """``run media/drop media`` used to take nothing: every path was under the excluded OUT."""
    media = tmp_path / "media"
    drop = media / "drop"
    drop.mkdir(parents=True)
    run = start_run(cli, drop, media)

    shutil.copyfile(clips["h264.mp4"].path, drop / "clip.mp4")
    wait_until(lambda: "clip.mp4" in names(media), "the output beside DROP", QUICK, procs=(run,))
    check_output(media / "clip.mp4", clips["h264.mp4"])
    time.sleep(1.0)  # time enough for an output to be taken back as an input, if it were
    stop(run)

    assert names(media) == ["clip.mp4", "drop"]
    assert names(drop) == ["clip.mp4"]
    assert by_stage(cli.status()) == {"done": 1}


def test_out_inside_drop_works_recursive(cli: Cli, tmp_path: Path, clips: dict[str, Clip]) -> None:
    """Outputs land in a folder DROP holds, and are never taken again as inputs."""
    drop = tmp_path / "drop"
    out = drop / "out"
    (drop / "sub").mkdir(parents=True)
    run = start_run(cli, drop, out, "--recursive")

    shutil.copyfile(clips["h264.mp4"].path, drop / "sub" / "clip.mp4")
    # The tree is kept: sub/clip.mp4 -> out/sub/clip.mp4.
    placed = out / "sub"
    wait_until(
        lambda: placed.is_dir() and "clip.mp4" in names(placed),
        "the output inside DROP",
        QUICK,
        procs=(run,),
    )
    time.sleep(1.0)
    stop(run)

    assert names(out) == ["sub"] and names(placed) == ["clip.mp4"]
    assert by_stage(cli.status()) == {"done": 1}


# --- case 10: mistakes refused at start, one line each --------------------------------------------


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A folder user nobody can reach (pytest's tmp folders are root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="autotranscode-nobody-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_nobody(
    cwd: Path, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as user nobody (root may write anywhere, so a permission test needs another
    user); no --state-dir added."""
    if os.geteuid() != 0:
        pytest.fail("this test must run as root, to become user nobody")
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to run as nobody"
    argv = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    argv += [sys.executable, "-m", "autotranscode", *map(str, args)]
    return subprocess.run(
        argv,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env={**cli_env(), **(env or {})},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=QUICK * 3,
        check=False,
    )


@pytest.mark.parametrize("command", ["run", "transcode", "status", "worker"])
def test_an_unwritable_state_dir_is_one_line(
    world_dir: Path, clips: dict[str, Clip], command: str
) -> None:
    locked = world_dir / "locked"
    locked.mkdir(mode=0o755)  # root's; nobody may not write in it
    drop = world_dir / "drop"
    drop.mkdir()
    drop.chmod(0o777)
    shutil.copyfile(clips["h264.mp4"].path, drop / "clip.mp4")
    args: list[str | Path] = {
        "run": ["run", drop, world_dir / "out"],
        "transcode": ["transcode", drop / "clip.mp4", "-o", world_dir / "out"],
        "status": ["status"],
        "worker": ["worker"],
    }[command]

    result = as_nobody(world_dir, *args, "--state-dir", locked / "state")

    if command == "status":  # status only reads a state dir: it never makes one
        one_error_line(result, str(locked / "state"), "does not exist", "--state-dir")
    else:
        one_error_line(result, str(locked / "state"), "Permission denied", "--state-dir")


@pytest.mark.parametrize(
    "where", ["/proc/autotranscode-state", "/proc/self/autotranscode", "under-a-file"]
)
def test_an_impossible_state_dir_is_one_line(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip], where: str
) -> None:
    state = Path(where) if where.startswith("/") else tmp_path / where / "state"
    if not where.startswith("/"):
        state.parent.write_text("not a folder\n")

    result = cli.run("transcode", clips["h264.mp4"].path, "-o", tmp_path / "out", state_dir=state)

    one_error_line(result, str(state), "--state-dir")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("what", ["folder", "file"])
def test_an_unreadable_config_is_one_line(world_dir: Path, what: str) -> None:
    """XDG_CONFIG_HOME (or ~/.config) that may not be looked into, or a config file that may
    not be read: one line, exit 2 (a traceback from stat() before)."""
    config_home = world_dir / "config"
    (config_home / "autotranscode").mkdir(parents=True)
    (config_home / "autotranscode" / "config.toml").write_text("workers = 1\n")
    if what == "folder":
        config_home.chmod(0o700)  # root's alone
    else:
        config_home.chmod(0o755)
        (config_home / "autotranscode").chmod(0o755)
        (config_home / "autotranscode" / "config.toml").chmod(0o600)
    state = world_dir / "state"
    state.mkdir()
    state.chmod(0o777)

    result = as_nobody(
        world_dir,
        "status",
        "--state-dir",
        state,
        env={"XDG_CONFIG_HOME": str(config_home)},
    )

    one_error_line(result, "config", "Permission denied")


def test_on_success_move_failing_after_delivery_is_a_warning(
    world_dir: Path, clips: dict[str, Clip]
) -> None:
    """A read-only DROP: the output is delivered, the source cannot be moved. The file is
    done, with a warning; not FAILED (then ``retry`` made ``clip1 (1).mp4``)."""
    drop, out, state = world_dir / "drop", world_dir / "out", world_dir / "state"
    drop.mkdir(mode=0o755)  # root's: nobody may read, not rename
    for d in (out, state):
        d.mkdir()
        d.chmod(0o777)  # mkdir's mode passes through the umask
    shutil.copyfile(clips["h264.mp4"].path, drop / "clip1.mp4")
    (drop / "clip1.mp4").chmod(0o644)
    common = ("--state-dir", state, "--backend", "local")

    result = as_nobody(
        world_dir, "transcode", drop / "clip1.mp4", "-o", out, "--on-success", "move", *common
    )

    assert "Traceback" not in result.stdout + result.stderr, result
    assert result.returncode == 0, result
    first, totals = result.stdout.splitlines()
    assert first.startswith("ok      clip1.mp4 -> clip1.mp4 (warning: "), first
    assert "could not be moved into done/" in first and "Permission denied" in first, first
    assert totals == "1 done, 0 failed"
    assert names(drop) == ["clip1.mp4"]
    assert names(out) == ["clip1.mp4"]
    check_output(out / "clip1.mp4", clips["h264.mp4"])

    shown = as_nobody(world_dir, "status", "--json", "--state-dir", state)
    status: dict[str, Any] = json.loads(shown.stdout)
    assert by_stage(status) == {"done": 1}, status
    assert listed(status, "failed") == [], status
    [recent] = status["recent"]
    assert "could not be moved" in recent["warning"], status
    view = as_nobody(world_dir, "status", "--state-dir", state, env={"COLUMNS": "500"})
    [line] = [ln for ln in view.stdout.splitlines() if "clip1.mp4 →" in ln]
    assert "warning: " in line and "could not be moved" in line, view.stdout

    retried = as_nobody(world_dir, "retry", "--all-failed", *common)
    assert retried.returncode == 0, retried
    assert retried.stdout.strip() == "no failed or unfinished files to retry", retried
    assert names(out) == ["clip1.mp4"]


# --- case 14: a file still being appended ---------------------------------------------------------


def append_in_bursts(path: Path, data: bytes, parts: int, pause: float) -> None:
    """open, append, close; pause; again: the way a recorder or a slow copy tool writes."""
    step = -(-len(data) // parts)
    for i in range(0, len(data), step):
        with path.open("ab") as fh:
            fh.write(data[i : i + step])
        time.sleep(pause)


def test_a_file_appended_in_bursts_is_taken_whole_and_retry_makes_no_duplicates(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """Five bursts 1.2 s apart used to give five FAILED partial versions, and ``retry
    --all-failed`` then made ``reopen (1)…(5).mp4``. Now at most the first piece is taken
    (nothing told it from a whole file yet); it fails, and the whole version supersedes it."""
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    clip = clips["h264.mp4"]
    run = start_run(cli, drop, out)

    append_in_bursts(drop / "reopen.mp4", clip.path.read_bytes(), parts=5, pause=1.2)
    wait_until(lambda: "reopen.mp4" in names(out), "the whole file's output", procs=(run,))
    check_output(out / "reopen.mp4", clip)
    stop(run)

    status = cli.status()
    assert by_stage(status) == {"done": 1}, status  # the path once: its latest version
    story = json.loads(cli.run("status", "--json", drop / "reopen.mp4").stdout)
    [file] = story["files"]
    for earlier in file["earlier_versions"]:  # a piece taken before the rhythm showed
        assert earlier["stage"] == "skipped", story
        assert earlier["reason"].startswith("superseded by a later version"), story

    retried = cli.run("retry", "--all-failed")
    assert retried.returncode == 0, retried
    assert retried.stdout.strip() == "no failed or unfinished files to retry", retried
    assert names(out) == ["reopen.mp4"]
