"""A full disk: in the output folder (``run`` waits and retries, then delivers), and in the
state dir (a clear ``error:`` line, or a clear wait that Ctrl+C ends and the next run resumes).

Small filesystems are tmpfs mounts. As root they are mounted here directly (and unmounted
in ``finally``); otherwise a private mount namespace (``unshare --map-root-user --mount``,
held open by a sleeping process) gets them, the CLI runs inside it through ``nsenter``,
and the test looks at them through ``/proc/PID/root``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_harness import DEADLINE, Cli, Proc, by_stage, listed, names, open_cli, wait_until

from conftest import Clip, check_output

#: tmpfs sizes: too small for the output (or the journal, or the input's copy); then roomy.
TOO_SMALL = "100k"
TOO_SMALL_BYTES = 100 * 1024
ROOMY = "20m"
SETTLE = "0.3"
NO_SPACE = "No space left on device"


class Mounts:
    """tmpfs mounts, global as root, else in a private mount namespace of our own."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []
        self.holder: subprocess.Popen[bytes] | None = None
        self.enter: list[str] = []
        if os.geteuid() != 0:
            self.holder = subprocess.Popen(
                ["unshare", "--map-root-user", "--mount", "sleep", "infinity"],
                stdin=subprocess.DEVNULL,
            )
            pid = str(self.holder.pid)
            self.enter = ["nsenter", "-t", pid, "-U", "-m", "--preserve-credentials"]
            # The namespace exists once `sleep` runs in it: until then, nsenter sees the parent's.
            wait_until(
                lambda: os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"),
                "the private mount namespace",
                timeout=10,
            )

    def prefix(self) -> list[str]:
        """What to put before a command so it sees the mounts."""
        return list(self.enter)

    def view(self, path: Path) -> Path:
        """``path`` as this process can see it (through the namespace's root, if any)."""
        if self.holder is None:
            return path
        return Path(f"/proc/{self.holder.pid}/root{path}")

    def _run(self, *argv: str) -> None:
        result = subprocess.run(
            [*self.enter, *argv], capture_output=True, text=True, check=False, timeout=30
        )
        assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr}"

    def mount(self, path: Path, size: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
        self.mounted.append(path)

    def resize(self, path: Path, size: str) -> None:
        self._run("mount", "-o", f"remount,size={size}", str(path))

    def close(self) -> None:
        for path in reversed(self.mounted):
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self._run("umount", "--lazy", str(path))
        self.mounted.clear()
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(10)


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    m = Mounts()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


def start(
    cli: Cli, mounts: Mounts, name: str, *args: str | Path, state: Path | None = None
) -> Proc:
    proc = Proc(
        name,
        [*mounts.prefix(), *cli.argv(*args, state_dir=state)],
        cli.env,
        cli.tmp,
        cli.tmp / "logs",
    )
    cli.procs.append(proc)
    return proc


def status(cli: Cli, mounts: Mounts, state: Path) -> dict[str, Any]:
    """``status --json`` where the mounts are seen (SQLite resolves /proc/PID/root away)."""
    result = subprocess.run(
        [*mounts.prefix(), *cli.argv("status", "--json", "--limit", "50", state_dir=state)],
        capture_output=True,
        encoding="utf-8",
        env=cli.env,
        cwd=cli.tmp,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 0, result
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def journal_states(journal: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return [s for (s,) in conn.execute("SELECT state FROM files")]
    finally:
        conn.close()


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


# --- OUT is full --------------------------------------------------------------------------------


def test_a_full_output_folder_is_waited_out_and_the_file_delivered_once(
    cli: Cli, mounts: Mounts, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    clip = clips["prores 10bit.mov"]  # 1080p ProRes: its web-720p output is ~160 KB
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    mounts.mount(out, TOO_SMALL)
    seen = mounts.view(out)
    shutil.copyfile(clip.path, drop / clip.path.name)
    output = "prores 10bit.mp4"

    proc = start(cli, mounts, "run", "run", drop, out, "--settle", SETTLE)
    # Two failed attempts: the first error, then proof it is retried (backoff 1 s, then 2 s).
    wait_until(
        lambda: len(lines_with(proc.stderr, NO_SPACE)) >= 2, "two ENOSPC retries", procs=(proc,)
    )
    in_out_meanwhile = names(seen)  # between attempts, while the pipeline waits
    first = lines_with(proc.stderr, NO_SPACE)[0]
    states = journal_states(cli.state_dir / "journal.db")
    shown = cli.status()

    assert "Traceback" not in proc.stderr, proc
    assert str(out) in first and "retrying" in first, first
    assert states == ["DOWNLOADING"], states  # unfinished: neither FAILED nor CLEANED
    assert listed(shown, "failed") == [] and by_stage(shown) == {"downloading": 1}, shown

    mounts.resize(out, ROOMY)
    wait_until(
        lambda: journal_states(cli.state_dir / "journal.db") == ["CLEANED"],
        "delivery",
        procs=(proc,),
    )
    assert proc.stop() == 130, proc  # Ctrl+C's exit status
    assert "Traceback" not in proc.stderr, proc

    assert names(seen) == [output]  # exactly one output, no temp or part file
    check_output(seen / output, clip)
    assert (seen / output).stat().st_size > TOO_SMALL_BYTES  # it really did not fit
    shown = cli.status()
    assert by_stage(shown) == {"done": 1}, shown
    cli.assert_no_leftovers()
    assert not in_out_meanwhile, (
        "no partial temp file may stay in OUT between attempts while the disk is full",
        in_out_meanwhile,
    )


# --- the state dir is full ----------------------------------------------------------------------


def test_a_state_dir_too_small_for_the_journal_is_one_clear_error(
    cli: Cli, mounts: Mounts, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    state, out = tmp_path / "state", tmp_path / "out"
    mounts.mount(state, "64k")

    proc = start(
        cli, mounts, "transcode", "transcode", clips["h264.mp4"].path, "-o", out, state=state
    )
    code = proc.popen.wait(DEADLINE)

    assert code == 3, proc
    assert "Traceback" not in proc.stderr + proc.stdout, proc
    [line] = [ln for ln in proc.stderr.splitlines() if not re.match(r"^\S+ \S+ (INFO|DEBUG) ", ln)]
    assert line.startswith("error: "), proc
    assert str(state) in line and "full" in line, line
    assert proc.stdout == "", proc  # nothing was taken, so no summary
    assert not out.exists() or names(out) == []


def test_a_state_dir_that_fills_mid_run_is_waited_on_and_resumed(
    cli: Cli, mounts: Mounts, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """Room for the journal, not for the input's copy in the local store (a different
    filesystem from the input's, so it is copied, not linked): the file waits, unfinished;
    Ctrl+C ends the wait; once there is room, the next run delivers it."""
    clip = clips["h264.mp4"]
    state, out = tmp_path / "state", tmp_path / "out"
    mounts.mount(state, "300k")
    seen = mounts.view(state)

    proc = start(cli, mounts, "transcode", "transcode", clip.path, "-o", out, state=state)
    wait_until(
        lambda: len(lines_with(proc.stderr, "retrying in")) >= 2, "two retries", procs=(proc,)
    )
    store_meanwhile = [
        p.name for p in (seen / "store").rglob("*") if p.is_file() and p.parent.name != "workers"
    ]
    first = lines_with(proc.stderr, "retrying in")[0]
    retries = lines_with(proc.stderr, "retrying in")

    assert NO_SPACE in first, proc
    meanwhile = status(cli, mounts, state)
    assert listed(meanwhile, "failed") == [], meanwhile
    assert by_stage(meanwhile) in ({"queued": 1}, {"uploading": 1}), meanwhile
    assert proc.stop() == 130, proc
    assert "Traceback" not in proc.stderr + proc.stdout, proc
    assert re.search(
        rf"^pending {re.escape(clip.path.name)} \(\w+; resumes on the next run\)$",
        proc.stdout,
        re.M,
    ), proc
    assert not out.exists() or names(out) == []

    mounts.resize(state, ROOMY)
    again = start(cli, mounts, "transcode", "transcode", clip.path, "-o", out, state=state)
    assert again.popen.wait(DEADLINE) == 0, again
    assert "ok      h264.mp4 -> h264.mp4" in again.stdout.splitlines(), again
    assert names(out) == ["h264.mp4"]
    check_output(out / "h264.mp4", clip)
    assert [p for p in (seen / "store").rglob("*") if p.is_file()] == []

    bugs = []
    if store_meanwhile:
        bugs.append(f"a partial copy stays in the store between attempts ({store_meanwhile})")
    if str(state) not in first:
        bugs.append(f"the error does not say where the disk is full: {first!r}")
    if any("journal" in line for line in retries):
        bugs.append("the journal then fails too, hiding the cause")
    assert not bugs, bugs
