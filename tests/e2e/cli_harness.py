"""Running the ``autotranscode`` CLI as a subprocess, on either backend, and cleaning up after it.

Not a ``conftest.py``: a second, nested conftest module would shadow ``tests/conftest.py``
for ``from conftest import ...`` (both are the top-level module ``conftest``). Each e2e
module declares a small ``cli`` fixture that yields from ``open_cli``.

Long-running commands (``run``, ``worker``) write stdout/stderr to files rather than
pipes: a test can poll their log for readiness ("watching …") while they run, and a
chatty process can never block on a full pipe that nobody reads until it exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import click
import pytest

from autotranscode.cli import main

from conftest import cli_env

BACKENDS = ["local", "aws"]
#: Upper bound for anything that should take seconds; generous for a busy 2-core machine.
DEADLINE = 90.0
#: A stopped process (SIGINT) must have exited within this.
STOP_TIMEOUT = 15.0
PART_SUFFIX = ".autotranscode-part"


def wait_until(
    condition: Callable[[], Any],
    what: str,
    timeout: float = DEADLINE,
    procs: tuple[Proc, ...] = (),
    interval: float = 0.05,
) -> Any:
    """Poll ``condition`` until it is truthy; fail early if one of ``procs`` has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for p in procs:
            if p.popen.poll() is not None:
                pytest.fail(f"{p.name} exited ({p.popen.returncode}) while waiting for {what}\n{p}")
        if time.monotonic() > deadline:
            details = "\n".join(str(p) for p in procs)
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{details}")
        time.sleep(interval)


def by_stage(status: dict[str, Any]) -> dict[str, int]:
    """``status --json``'s files by stage (replaced failed versions are not counted)."""
    counts: dict[str, int] = status["totals"]["by_stage"]
    return counts


def listed(status: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    """The finished files ``status --json`` lists that ended in ``stage``."""
    return [f for f in status["recent"] if f["stage"] == stage]


def names(folder: Path) -> list[str]:
    """Every entry in ``folder`` (hidden and temporary ones included), sorted."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


class Proc:
    """A CLI process started in its own session, its output going to files under ``logdir``."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path, logdir: Path
    ) -> None:
        self.name = name
        self.argv = argv
        logdir.mkdir(parents=True, exist_ok=True)
        n = len(list(logdir.glob(f"{name}*.err")))
        stem = f"{name}-{n}" if n else name
        self.out_path = logdir / f"{stem}.out"
        self.err_path = logdir / f"{stem}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own process group: ffmpeg children die with it
            )

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = DEADLINE) -> None:
        wait_until(lambda: text in self.stderr, f"{self.name} to log {text!r}", timeout, (self,))

    def interrupt(self) -> None:
        """Ctrl+C: SIGINT to the process itself, as a terminal would send it (once)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.dump_threads()
            self.kill()
            pytest.fail(
                f"{self.name} did not exit within {timeout:.0f}s of SIGINT\n{self}"
                f"\n--- where its threads were:\n{self.thread_dump()[-12000:]}"
            )

    def dump_threads(self) -> None:
        """SIGABRT: faulthandler (PYTHONFAULTHANDLER, see ``cli_env``) writes every thread's
        stack to stderr, so a hang is reported with where it hung."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """Ctrl+C, then the exit status (failing the test if it does not come promptly)."""
        self.interrupt()
        return self.wait_exit(timeout)

    def thread_dump(self) -> str:
        """faulthandler's report: on stderr, or (while workers run in-process) in the state
        dir's crash record for this pid."""
        if "--state-dir" in self.argv:
            record = Path(self.argv[self.argv.index("--state-dir") + 1]) / "crashes"
            with contextlib.suppress(OSError):
                return (record / f"{self.popen.pid}.log").read_text(errors="replace")
        return self.stderr

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def __str__(self) -> str:
        return (
            f"--- {self.name}: {' '.join(self.argv[3:])}\n"
            f"--- stdout:\n{self.stdout[-4000:]}\n--- stderr:\n{self.stderr[-4000:]}"
        )


def options_of(*args: str) -> set[str]:
    """The options of the (sub)command that ``args`` begin with."""
    command: click.Command = main
    for arg in args:
        if not isinstance(command, click.Group) or arg not in command.commands:
            break
        command = command.commands[arg]
    return {opt for param in command.params for opt in param.opts}


class Cli:
    """The CLI on one backend, with its own state dir (and deployment name on aws)."""

    def __init__(
        self,
        backend: str,
        tmp: Path,
        endpoint: str | None = None,
        deployment: str | None = None,
        aws_env: dict[str, str] | None = None,
    ) -> None:
        self.backend = backend
        self.tmp = tmp
        self.state_dir = tmp / "state"
        self.endpoint = endpoint
        self.deployment = deployment
        self.env = cli_env(aws_env)
        self.procs: list[Proc] = []
        self._set_up = False

    def backend_args(self) -> list[str]:
        if self.backend == "aws":
            assert self.endpoint and self.deployment
            return ["--backend", "aws", "--endpoint-url", self.endpoint, "--name", self.deployment]
        return ["--backend", "local"]

    def argv(
        self, *args: str | Path, state_dir: Path | None = None, common: bool = True
    ) -> list[str]:
        """``python -m autotranscode ARGS`` plus (when ``common``) the state dir and backend
        options that the command takes (``status`` takes no --backend, ``setup`` no
        --state-dir)."""
        argv = [sys.executable, "-m", "autotranscode", *map(str, args)]
        if common:
            taken = options_of(*map(str, args))
            pairs = ["--state-dir", str(state_dir or self.state_dir), *self.backend_args()]
            for option, value in zip(pairs[::2], pairs[1::2], strict=True):
                if option in taken:
                    argv += [option, value]
        return argv

    def run(
        self,
        *args: str | Path,
        state_dir: Path | None = None,
        common: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = DEADLINE,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion, capturing its output."""
        return subprocess.run(
            self.argv(*args, state_dir=state_dir, common=common),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            encoding="utf-8",
            errors="replace",
            env={**self.env, **(env or {})},
            cwd=self.tmp,
            timeout=timeout,
            check=False,
        )

    def setup(self) -> None:
        """``autotranscode setup``, once: on aws a worker uses a deployment, never creates one."""
        if self.backend == "aws" and not self._set_up:
            result = self.run("setup")
            assert result.returncode == 0, f"setup failed:\n{result.stdout}\n{result.stderr}"
            self._set_up = True

    def start(self, name: str, *args: str | Path, state_dir: Path | None = None) -> Proc:
        """Start a long-running command (``run``, ``worker``); it is killed at teardown if alive.

        A ``worker`` on aws gets the deployment set up first, as an operator would.
        """
        if args and args[0] == "worker":
            self.setup()
        proc = Proc(
            name, self.argv(*args, state_dir=state_dir), self.env, self.tmp, self.tmp / "logs"
        )
        self.procs.append(proc)
        return proc

    def status(self, state_dir: Path | None = None) -> dict[str, Any]:
        result = self.run("status", "--json", "--limit", "50", state_dir=state_dir)
        assert result.returncode == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()

    # -- leftovers -------------------------------------------------------------------------------

    def assert_no_leftovers(self, timeout: float = 15.0) -> None:
        """Nothing left in the object store or in any queue once every file is finished."""
        if self.backend == "aws":
            _assert_aws_clean(self.endpoint, self.deployment, timeout)
        else:
            _assert_local_clean(self.state_dir)


def make_cli(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Cli:
    if backend == "aws":
        aws_env = request.getfixturevalue("aws_env")
        return Cli(
            "aws",
            tmp_path,
            endpoint=request.getfixturevalue("moto_endpoint"),
            deployment=request.getfixturevalue("deployment_name"),
            aws_env=aws_env,
        )
    return Cli("local", tmp_path)


def open_cli(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Iterator[Cli]:
    """The body of a module's ``cli`` fixture: a Cli, closed (processes stopped) after."""
    c = make_cli(request, tmp_path, backend)
    try:
        yield c
    finally:
        c.close()


def _assert_local_clean(state_dir: Path) -> None:
    store = state_dir / "store"
    # Workers' heartbeats are not a file's leftovers (a killed worker's stays, stale).
    left = [p for p in store.rglob("*") if p.is_file() and p.parent.name != "workers"]
    assert left == [], f"objects left in the local store: {left}"
    db = state_dir / "queues.db"
    if db.exists():
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT queue, COUNT(*) FROM messages GROUP BY queue").fetchall()
        finally:
            conn.close()
        assert rows == [], f"messages left in the local queues: {rows}"


def _assert_aws_clean(endpoint: str | None, deployment: str | None, timeout: float) -> None:
    assert endpoint and deployment
    session = boto3.Session(region_name="us-east-1")
    s3 = session.resource("s3", endpoint_url=endpoint)
    sqs = session.resource("sqs", endpoint_url=endpoint)
    buckets = [b for b in s3.buckets.all() if b.name.startswith(f"{deployment}-")]
    assert len(buckets) == 2, [b.name for b in buckets]
    for bucket in buckets:
        objects = [o.key for o in bucket.objects.all() if not o.key.startswith("workers/")]
        assert objects == [], f"objects left in {bucket.name}: {objects}"
        uploads = [u.key for u in bucket.multipart_uploads.all()]
        assert uploads == [], f"multipart uploads left in {bucket.name}: {uploads}"
    queues = list(sqs.queues.filter(QueueNamePrefix=deployment))
    assert len(queues) >= 2, [q.url for q in queues]  # the job queue and its dead-letter queue

    def counts() -> dict[str, int]:
        found = {}
        for queue in queues:
            queue.reload()  # resources cache attributes from their first load
            attrs = queue.attributes
            found[queue.url.rsplit("/", 1)[-1]] = int(
                attrs.get("ApproximateNumberOfMessages", 0)
            ) + int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
        return found

    # moto's approximate counts can lag a deletion a little: poll, with a deadline.
    deadline = time.monotonic() + timeout
    while any((found := counts()).values()):
        assert time.monotonic() < deadline, f"messages left in the queues: {found}"
        time.sleep(0.2)
