"""Ctrl+C at any moment of a command's start-up: a quiet exit, never a traceback."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_harness import STOP_TIMEOUT, Cli, make_cli

#: From our first imports to a running watcher (signal handlers in place). Earlier than
#: ~0.15 s the interpreter is still starting (site, .pth files): a Ctrl+C there is Python's.
DELAYS = (0.2, 0.3, 0.45, 0.6, 0.8, 1.0)


@pytest.mark.parametrize("delay", DELAYS)
def test_ctrl_c_during_start_up_exits_quietly(
    request: pytest.FixtureRequest, tmp_path: Path, delay: float
) -> None:
    cli: Cli = make_cli(request, tmp_path, "local")
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    proc = subprocess.Popen(
        cli.argv("run", drop, out),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli.env,
        cwd=tmp_path,
        start_new_session=True,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("run did not stop on Ctrl+C during its start-up")
    # Before Python installs its own handler, SIGINT ends the process as it would any other
    # (a shell shows 130 for that too).
    assert proc.returncode in (0, 130, -signal.SIGINT), (proc.returncode, stderr)
    assert b"Traceback" not in stderr, stderr.decode(errors="replace")
