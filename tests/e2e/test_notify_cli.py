"""``--notify-url`` and ``--on-done`` through the CLI: a real HTTP server on loopback
receives each finished file's notification, a real command runs with the output paths,
and neither a receiver that fails nor a command that fails changes a file's outcome
(each failure is written in the file's log)."""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cli_harness import Cli, open_cli
from test_web_cli import free_port

from autotranscode import messages

from conftest import Clip

#: The --on-done command: writes its arguments and the file's variables as a JSON line.
RECORDER = """\
import json, os, sys
with open(sys.argv[1], "a") as f:
    env = {k: v for k, v in os.environ.items() if k.startswith("AUTOTRANSCODE_")}
    f.write(json.dumps({"args": sys.argv[2:], "env": env}) + "\\n")
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


class Receiver:
    """An HTTP server on loopback that keeps each POST's body; it answers 503 to the
    first ``failures`` of them (a receiver restarting)."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[bytes] = []
        self.tries = 0
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.tries += 1
                if receiver.tries <= receiver.failures:
                    self.send_response(503)
                else:
                    receiver.bodies.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-receiver")
        self.thread.start()

    def notifications(self) -> list[messages.Notification]:
        return [msgspec.json.decode(b, type=messages.Notification) for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def recorder(tmp_path: Path) -> tuple[str, Path]:
    """The --on-done command line, and the file its runs are recorded in."""
    script, record = tmp_path / "record.py", tmp_path / "runs.jsonl"
    script.write_text(RECORDER)
    return shlex.join([sys.executable, str(script), str(record)]), record


def runs(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def file_log(cli: Cli, name: str) -> str:
    (f,) = [f for f in cli.status()["recent"] if f["name"] == name]
    path = cli.state_dir / "logs" / f"{f['id']}.log"
    return path.read_text() if path.exists() else ""


def test_each_finished_file_is_posted_and_the_command_gets_its_outputs(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip], media_dir: Path, receiver: Receiver
) -> None:
    command, record = recorder(tmp_path)
    out = tmp_path / "out"
    good, bad = clips["h264.mp4"].path, media_dir / "empty.mov"
    result = cli.run(
        *("transcode", good, bad, "-o", out),
        *("--preset", "web-720p", "--preset", "audio-aac"),
        *("--notify-url", receiver.url, "--on-done", command),
    )
    assert result.returncode == 1, result  # one failed: as without notifications
    by_source = {Path(n.user_metadata["source"]).name: n for n in receiver.notifications()}
    assert set(by_source) == {"h264.mp4", "empty.mov"}, receiver.bodies

    done = by_source["h264.mp4"]
    assert done.state is messages.State.COMPLETED and done.error_code is None
    assert done.user_metadata["source"] == str(good)
    assert {o.preset_id: (o.status, Path(o.key).name) for o in done.outputs} == {
        "web-720p": ("Complete", "h264.web-720p.mp4"),
        "audio-aac": ("Complete", "h264.audio-aac.m4a"),
    }
    assert all(o.size and o.duration for o in done.outputs)
    assert done.user_metadata["stage"] == "done"
    assert done.user_metadata["output.web-720p"] == str(out / "h264.web-720p.mp4")
    assert done.user_metadata["output.audio-aac"] == str(out / "h264.audio-aac.m4a")
    failed = by_source["empty.mov"]
    assert failed.state is messages.State.ERROR and failed.outputs == ()
    assert failed.message_details and "empty" in failed.message_details
    statuses = {f["name"]: f for f in cli.status()["recent"]}
    assert done.user_metadata["fileId"] == statuses["h264.mp4"]["id"]

    by_stage = {r["env"]["AUTOTRANSCODE_STAGE"]: r for r in runs(record)}
    assert set(by_stage) == {"done", "failed"}
    assert sorted(by_stage["done"]["args"]) == sorted(
        [str(out / "h264.web-720p.mp4"), str(out / "h264.audio-aac.m4a")]
    )
    assert by_stage["done"]["env"]["AUTOTRANSCODE_FILE_ID"] == statuses["h264.mp4"]["id"]
    assert by_stage["done"]["env"]["AUTOTRANSCODE_SOURCE"] == str(good)
    assert by_stage["failed"]["args"] == []
    assert "empty" in by_stage["failed"]["env"]["AUTOTRANSCODE_REASON"]
    assert "notify:" not in file_log(cli, "h264.mp4")


def test_a_receiver_that_fails_a_while_is_asked_again(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    receiver = Receiver(failures=2)
    try:
        result = cli.run(
            "transcode",
            clips["h264.mp4"].path,
            "-o",
            tmp_path / "out",
            "--notify-url",
            receiver.url,
        )
    finally:
        receiver.close()
    assert result.returncode == 0, result
    assert receiver.tries == 3
    (note,) = receiver.notifications()
    assert note.state is messages.State.COMPLETED


def test_failures_to_notify_are_in_the_files_log_and_change_nothing(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    command, record = recorder(tmp_path)
    nobody = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    out = tmp_path / "out"
    result = cli.run(
        *("transcode", clips["h264.mp4"].path, "-o", out),
        *("--notify-url", nobody, "--on-done", command),
        env={"EXIT_WITH": "3"},
    )
    assert result.returncode == 0, result  # the file is done, whatever the hooks did
    assert (out / "h264.mp4").is_file()
    assert len(runs(record)) == 1
    log = file_log(cli, "h264.mp4")
    assert f"notification to {nobody} not delivered after 5 tries" in log, log
    assert "exited with 3" in log, log
    assert "Traceback" not in result.stderr


def test_a_notify_url_that_is_no_url_is_one_line_and_exit_2(cli: Cli, tmp_path: Path) -> None:
    result = cli.run("transcode", tmp_path, "-o", tmp_path / "out", "--notify-url", "ftp://x")
    assert result.returncode == 2, result
    (line,) = result.stderr.strip().splitlines()
    assert "--notify-url" in line and "http://" in line
