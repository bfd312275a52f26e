"""The command's quick exit, taken only when nothing is left to finish; log lines.

Each case runs ``entry`` with a command of its own in a fresh interpreter, as the
console script does; an ``atexit`` handler tells the quick exit (it never runs) from the
interpreter's ordinary one.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autotranscode.cli.logs import LOG_FILE_BYTES, JsonFormatter, Logs, TextFormatter
from autotranscode.cli.options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, plural
from autotranscode.text import shown

ORDINARY_EXIT = "ordinary exit"


def run_entry(command_body: str) -> subprocess.CompletedProcess[str]:
    """``entry(command)`` in a child process, ``command`` made of ``command_body``."""
    body = textwrap.indent(textwrap.dedent(command_body).strip(), "    ")
    code = "\n".join(
        [
            "import atexit, sys, threading",
            "from autotranscode.cli import entry",
            f"atexit.register(lambda: print({ORDINARY_EXIT!r}, flush=True))",
            "def command():",
            body,
            "entry(command)",
        ]
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("code", [EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED])
def test_a_finished_command_exits_at_once_with_its_code(code: int) -> None:
    done = run_entry(
        f"""
        sys.stdout.write("summary line\\n")  # buffered: a pipe, not a terminal
        raise SystemExit({code})
        """
    )
    assert done.returncode == code
    assert done.stdout == "summary line\n", "flushed before the exit, and no ordinary exit"


def test_a_command_that_returns_exits_at_once_with_0() -> None:
    done = run_entry("pass")
    assert (done.returncode, done.stdout) == (EXIT_OK, "")


def test_a_running_thread_gets_the_ordinary_exit() -> None:
    """os._exit would kill it mid-work; the interpreter's exit waits for it."""
    done = run_entry(
        """
        def work():
            threading.Event().wait(0.5)
            print("thread finished", flush=True)

        threading.Thread(target=work).start()
        raise SystemExit(0)
        """
    )
    assert done.returncode == EXIT_OK
    assert done.stdout == f"thread finished\n{ORDINARY_EXIT}\n"


def test_a_daemon_thread_does_not_hold_the_exit() -> None:
    """The interpreter would not wait for it either."""
    done = run_entry("threading.Thread(target=threading.Event().wait, daemon=True).start()")
    assert (done.returncode, done.stdout) == (EXIT_OK, "")


def test_a_message_exit_gets_the_ordinary_exit() -> None:
    done = run_entry('raise SystemExit("a message, not a code")')
    assert done.returncode == 1
    assert "a message, not a code" in done.stderr
    assert done.stdout == f"{ORDINARY_EXIT}\n"


def test_ctrl_c_while_a_command_starts_is_one_line_and_130() -> None:
    done = run_entry("raise KeyboardInterrupt")
    assert done.returncode == EXIT_INTERRUPTED
    assert done.stderr == "interrupted\n"
    assert done.stdout == ""


# --- log lines: text and json -------------------------------------------------------------------


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "autotranscode.pipeline", "levelno": logging.INFO, "levelname": "INFO"}
        | {"msg": msg, "args": args, **extra}
    )


HOSTILE = "a\x1b[31mred\nline.mp4"


def test_a_json_log_line_has_the_fields_and_shows_control_characters_once() -> None:
    line = JsonFormatter().format(record("%s: %s", HOSTILE, "queued", file=HOSTILE, job_id="j1"))
    assert "\n" not in line and "\x1b" not in line
    data = json.loads(line)
    assert set(data) == {"time", "level", "logger", "message", "file", "job_id"}
    assert data["message"] == "a\\x1b[31mred\\nline.mp4: queued"  # visible, escaped once
    assert data["file"] == "a\\x1b[31mred\\nline.mp4"
    assert (data["level"], data["logger"], data["job_id"]) == (
        "INFO",
        "autotranscode.pipeline",
        "j1",
    )
    assert data["time"].endswith("+00:00")


def test_a_json_log_line_takes_names_already_shown_as_they_are() -> None:
    """A part that logged ``shown(name)`` already: no second round of backslashes."""
    data = json.loads(JsonFormatter().format(record("%s", shown(HOSTILE))))
    assert data["message"] == shown(HOSTILE)


def test_a_text_log_line_is_one_visible_line() -> None:
    line = TextFormatter("%(levelname)s %(message)s").format(record("%s: done", HOSTILE))
    assert line == "INFO a\\x1b[31mred\\nline.mp4: done"


@pytest.mark.parametrize(
    ("logs", "least", "level"),
    [
        (Logs(), 0, logging.WARNING),
        (Logs(verbose=1), 0, logging.INFO),
        (Logs(verbose=2), 0, logging.DEBUG),
        (Logs(quiet=True), 0, logging.ERROR),
        (Logs(), 1, logging.INFO),  # worker
        (Logs(quiet=True), 1, logging.ERROR),
    ],
)
def test_log_levels(logs: Logs, least: int, level: int) -> None:
    assert logs.level(least) == level


def test_counted_nouns() -> None:
    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]


def test_a_log_file_is_rotated(tmp_path: Path) -> None:
    """In a child process: logging is the process's own (the root logger's handlers)."""
    log = tmp_path / "service.log"
    code = textwrap.dedent(
        f"""
        import logging
        from pathlib import Path
        from autotranscode.cli.logs import LOG_FILE_BYTES, Logs, start_logging
        start_logging(Logs(format="json", file=Path({str(log)!r})))
        line = "x" * 1000
        for _ in range(LOG_FILE_BYTES // 1000 + 100):
            logging.getLogger("autotranscode.test").warning(line)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "log lines go to the file only"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["service.log", "service.log.1"]
    assert log.stat().st_size < LOG_FILE_BYTES
    last = json.loads(log.read_text().splitlines()[-1])
    assert (last["level"], last["logger"]) == ("WARNING", "autotranscode.test")
