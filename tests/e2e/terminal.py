"""A CLI process on a pseudo-terminal, and the screen a user would see (pyte emulates it).

A real pty, not FORCE_COLOR: the CLI decides on a live display from ``isatty``, rich
sizes it from the terminal, and escape sequences (a file name's, or rich's own cursor
moves) act on the emulated screen as they would on the user's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyte
import pytest

COLUMNS, LINES = 140, 60


class Terminal:
    """``argv`` running with its stdin, stdout and stderr on one pty of COLUMNS x LINES."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.argv = argv
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
        env.pop("FORCE_COLOR", None)
        env.pop("TTY_COMPATIBLE", None)
        try:
            self.popen = subprocess.Popen(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own process group: ffmpeg children die with it
            )
        finally:
            os.close(slave)
        self._master = master
        self._screen = pyte.Screen(COLUMNS, LINES)
        self._stream = pyte.ByteStream(self._screen)
        self._raw = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every writer has closed the pty (the process exited)
                data = b""
            if not data:
                return
            with self._lock:
                self._raw += data
                self._stream.feed(data)

    @property
    def raw(self) -> bytes:
        """Every byte the process wrote to the terminal."""
        with self._lock:
            return bytes(self._raw)

    def lines(self) -> list[str]:
        """The screen now, one string per row, trailing blanks cut, empty rows left out."""
        with self._lock:
            rows = [line.rstrip() for line in self._screen.display]
        return [r for r in rows if r]

    def text(self) -> str:
        return "\n".join(self.lines())

    def wait_for(
        self, condition: Callable[[list[str]], object], what: str, timeout: float = 90.0
    ) -> object:
        """Poll the screen until ``condition(lines)`` is truthy; fail if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition(self.lines())
            if value:
                return value
            if self.popen.poll() is not None:
                self._reader.join(5)
                value = condition(self.lines())
                if value:
                    return value
                pytest.fail(f"exited ({self.popen.returncode}) while waiting for {what}\n{self}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}\n{self}")
            time.sleep(0.05)

    def line_with(self, text: str) -> str | None:
        """The first screen row holding ``text``."""
        return next((line for line in self.lines() if text in line), None)

    def interrupt(self) -> None:
        """Ctrl+C: SIGINT to the process, as the terminal would send it."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            pytest.fail(f"did not exit within {timeout:.0f}s\n{self}")
        self._reader.join(5)  # the last bytes it wrote are on the screen
        return code

    def close(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        self._reader.join(5)
        with contextlib.suppress(OSError):
            os.close(self._master)

    def __str__(self) -> str:
        return f"--- {' '.join(self.argv[3:])}\n--- screen:\n{self.text()}"
