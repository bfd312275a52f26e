"""Interruptions are not failures, a job that kills its worker is, and no file waits forever.

Issue 13, cases 5 and 6, through the CLI as a user meets them:

- Ctrl+C (or ``kill -9``) of ``run`` during one file's transcode, four times over, used up
  the job's attempts: the file ended FAILED ("gave up after 3 attempts that did not
  finish"). A stop is not an attempt; the file is delivered when ``run`` is let finish.
- A job that really kills what runs it still ends, after ``max_attempts``: an ffmpeg
  killed by a signal (the OOM killer), or a worker process that segfaults (its crash
  record says so), each with a reason that names what happened.
- A job message that is lost (local: ``queues.db`` emptied; aws: the job queue purged
  and the client's own notification queue deleted) left the file "resuming at
  submitted" forever. The client submits the job again and the file is delivered.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cli_harness import DEADLINE, Cli, Proc, make_cli, wait_until
from test_crash_resume import ffmpeg_running, query

from conftest import FFMPEG, Clip

SETTLE = "0.3"
#: Stops during one transcode: one more than the default max_attempts (3).
STOPS = 4


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def slow_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """4 s of 640x360: its webm-vp9 transcode takes seconds here, time to stop it (the test
    polls for its ffmpeg every 50 ms)."""
    path = tmp_path_factory.mktemp("interrupt-media") / "take.mp4"
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=4"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"),
        *("-shortest", str(path)),
    )
    return Clip(path, 4.0, 360, True)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    return drop, out


def _cli(request: pytest.FixtureRequest, tmp_path: Path, backend: str, config: str) -> Cli:
    c = make_cli(request, tmp_path, backend)
    path = tmp_path / "config.toml"
    path.write_text(config)
    c.env["AUTOTRANSCODE_CONFIG"] = str(path)
    return c


@pytest.fixture(params=["local", "aws"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    # The shortest lease on aws: a killed run's job comes back soon.
    c = _cli(request, tmp_path, request.param, "visibility_timeout = 10\n")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def local_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    c = _cli(request, tmp_path, "local", "")
    try:
        yield c
    finally:
        c.close()


# --- the journal and the processes, seen from outside -----------------------------------------


def file_state(state_dir: Path) -> tuple[str, str | None] | None:
    rows = query(state_dir, "SELECT state, reason FROM files")
    if not rows:
        return None
    state, reason = rows[0]
    return str(state), None if reason is None else str(reason)


def transcoding_or_finished(cli: Cli, proc: Proc) -> bool:
    """ffmpeg runs on the file; or the file finished (old versions failed it, not running
    ffmpeg again: the test then sees the failure, not a timeout)."""
    current = file_state(cli.state_dir)
    if current is not None and current[0] in ("CLEANED", "FAILED"):
        return True
    return ffmpeg_running(cli.state_dir, ())


def assert_delivered(cli: Cli, out: Path, clip: Clip, extension: str) -> None:
    from autotranscode.media.probe import probe

    assert file_state(cli.state_dir) == ("CLEANED", None), file_state(cli.state_dir)
    outputs = sorted(p.name for p in out.iterdir())
    assert outputs == [clip.path.stem + extension], outputs
    info = probe(out / outputs[0])
    assert info.duration is not None and abs(info.duration - clip.duration) < 0.5, info


# --- case 5: interruptions ----------------------------------------------------------------------


def test_stopping_run_during_a_transcode_again_and_again_does_not_fail_the_file(
    cli: Cli, folders: tuple[Path, Path], slow_clip: Clip
) -> None:
    """The issue's repro: ``run drop out --preset webm-vp9``, stopped with Ctrl+C
    mid-transcode four times (one more than max_attempts); the fifth run delivers it."""
    stop_again_and_again(cli, folders, slow_clip, "ctrl-c")


def test_killing_run_during_a_transcode_again_and_again_does_not_fail_the_file(
    local_cli: Cli, folders: tuple[Path, Path], slow_clip: Clip
) -> None:
    """The same with kill -9, on the local backend, where a dead process's leases come
    back uncounted. (On aws a kill -9 uses one SQS receive of the job: SQS counts it and
    nobody is left to hand it back; the README says so.)"""
    stop_again_and_again(local_cli, folders, slow_clip, "kill-9")


def stop_again_and_again(cli: Cli, folders: tuple[Path, Path], slow_clip: Clip, how: str) -> None:
    drop, out = folders
    (drop / slow_clip.path.name).write_bytes(slow_clip.path.read_bytes())
    args = ("run", drop, out, "--preset", "webm-vp9", "--settle", SETTLE, "-v")
    for n in range(STOPS):
        proc = cli.start("run", *args)
        wait_until(
            lambda p=proc: transcoding_or_finished(cli, p),  # type: ignore[misc]
            f"transcode {n + 1} to start",
            procs=(proc,),
        )
        if how == "ctrl-c":
            assert proc.stop() == 130, proc  # Ctrl+C's exit status
        else:
            os.kill(proc.popen.pid, signal.SIGKILL)
            assert proc.popen.wait(10) == -signal.SIGKILL
        current = file_state(cli.state_dir)
        assert current is not None and current[0] != "FAILED", (current, str(proc))
    proc = cli.start("run", *args)
    wait_until(
        lambda: (file_state(cli.state_dir) or ("", None))[0] in ("CLEANED", "FAILED"),
        "the file to finish",
        timeout=DEADLINE * 2,
        procs=(proc,),
    )
    assert proc.stop() == 130, proc  # Ctrl+C's exit status
    assert_delivered(cli, out, slow_clip, ".webm")
    cli.assert_no_leftovers()


def _fake_ffmpeg(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-ffmpeg"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def test_an_ffmpeg_killed_by_a_signal_fails_after_max_attempts_saying_so(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """The OOM killer's SIGKILL: counted, retried, then FAILED with the reason, and the job
    in the dead-letter queue (an ffmpeg that failed outright used to fail at once)."""
    fake = _fake_ffmpeg(tmp_path, "kill -KILL $$")
    result = cli.run("transcode", clips["h264.mp4"].path, "-o", tmp_path / "out", "--ffmpeg", fake)
    assert result.returncode == 1, result.stderr
    reason = "gave up after 3 attempts: ffmpeg was killed by SIGKILL (out of memory?)"
    assert f"FAILED  h264.mp4: {reason}" in result.stdout, result.stdout + result.stderr
    assert result.stderr.count("ffmpeg was killed by SIGKILL") >= 3, result.stderr
    assert dead_letters(cli) == [reason]


def test_a_job_that_crashes_its_worker_is_dead_lettered_after_max_attempts(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """An ffmpeg that makes its worker process segfault (here: sends it SIGSEGV): each
    crash leaves a crash record, so each counts; after max_attempts (3) crashes the next
    start dead-letters the job with a reason naming the crash, and the file FAILS."""
    cli = local_cli
    fake = _fake_ffmpeg(tmp_path, "kill -SEGV $PPID\nsleep 10")
    argv = ("transcode", clips["h264.mp4"].path, "-o", tmp_path / "out", "--ffmpeg", fake)
    for n in range(3):
        result = cli.run(*argv)
        assert result.returncode == -signal.SIGSEGV, (n, result.returncode, result.stderr)
        (record,) = (cli.state_dir / "crashes").iterdir()
        assert "Fatal Python error: Segmentation fault" in record.read_text(), record
    result = cli.run(*argv)
    assert result.returncode == 1, result.stdout + result.stderr
    reason = (
        "gave up after 3 attempts: the worker crashed (Segmentation fault) while running this job"
    )
    assert f"FAILED  h264.mp4: {reason}" in result.stdout, result.stdout + result.stderr
    assert dead_letters(cli) == [reason]
    assert list((cli.state_dir / "crashes").iterdir()) == [], "records go once claimed"


def dead_letters(cli: Cli) -> list[str | None]:
    """The reasons the dead-letter queue's messages carry."""
    if cli.backend == "local":
        conn = sqlite3.connect(cli.state_dir / "queues.db")
        try:
            rows = conn.execute("SELECT note FROM messages WHERE queue = 'jobs-dlq'").fetchall()
        finally:
            conn.close()
        return [None if r[0] is None else str(r[0]) for r in rows]
    sqs = boto3.Session(region_name="us-east-1").resource("sqs", endpoint_url=cli.endpoint)
    queue = sqs.get_queue_by_name(QueueName=f"{cli.deployment}-jobs-dlq")
    found: list[str | None] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not found:
        for m in queue.receive_messages(WaitTimeSeconds=1, MessageAttributeNames=["All"]):
            found.append((m.message_attributes or {}).get("reason", {}).get("StringValue"))
            m.delete()
    return found


# --- case 6: lost jobs --------------------------------------------------------------------------


def test_a_job_lost_from_the_local_queue_is_submitted_again(
    local_cli: Cli, folders: tuple[Path, Path], clips: dict[str, Clip]
) -> None:
    """``run --workers 0``, Ctrl+C, an emptied queues.db, ``run`` again: delivered."""
    cli = local_cli
    drop, out = folders
    clip = clips["h264.mp4"]
    (drop / clip.path.name).write_bytes(clip.path.read_bytes())
    first = cli.start("run", "run", drop, out, "--settle", SETTLE, "--workers", "0", "-v")
    wait_until(
        lambda: (file_state(cli.state_dir) or ("", None))[0] == "SUBMITTED",
        "the job to be submitted",
        procs=(first,),
    )
    assert first.stop() == 130, first  # Ctrl+C's exit status
    lose_the_jobs(cli)
    second = cli.start("run", "run", drop, out, "--settle", SETTLE, "-v")
    wait_until(
        lambda: (file_state(cli.state_dir) or ("", None))[0] in ("CLEANED", "FAILED"),
        "the file to finish",
        timeout=60,
        procs=(second,),
    )
    assert second.stop() == 130, second  # Ctrl+C's exit status
    assert "submitting its job again (1 of 3)" in second.stderr, second.stderr
    assert_delivered(cli, out, clip, ".mp4")
    cli.assert_no_leftovers()


def lose_the_jobs(cli: Cli) -> None:
    """Empty queues.db, as a user cleaning up by hand (or a lost disk) would."""
    conn = sqlite3.connect(cli.state_dir / "queues.db")
    try:
        with conn:
            assert conn.execute("DELETE FROM messages").rowcount == 1
    finally:
        conn.close()


@pytest.fixture
def aws_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    c = _cli(request, tmp_path, "aws", "visibility_timeout = 10\nresubmit_after = 3\n")
    try:
        yield c
    finally:
        c.close()


def test_a_job_lost_on_aws_is_submitted_again_and_the_client_queue_recreated(
    aws_cli: Cli, folders: tuple[Path, Path], clips: dict[str, Clip]
) -> None:
    """The endpoint lost the job (purged) and the client's own notification queue (deleted)
    while ``run`` waited: the client makes its queue again (no ``setup``, no warning every
    2 s), and after ``resubmit_after`` seconds of silence with an empty job queue it sends
    the job again; a worker started later delivers it."""
    cli = aws_cli
    drop, out = folders
    clip = clips["h264.mp4"]
    run = cli.start("run", "run", drop, out, "--settle", SETTLE, "--workers", "0", "-v")
    run.wait_for_log("watching")
    (drop / clip.path.name).write_bytes(clip.path.read_bytes())
    wait_until(
        lambda: (file_state(cli.state_dir) or ("", None))[0] == "SUBMITTED",
        "the job to be submitted",
        procs=(run,),
    )
    sqs = boto3.Session(region_name="us-east-1").resource("sqs", endpoint_url=cli.endpoint)
    jobs = sqs.get_queue_by_name(QueueName=f"{cli.deployment}-jobs")
    taken = wait_until(lambda: jobs.receive_messages(WaitTimeSeconds=1), "the job message")
    for message in taken:
        message.delete()
    (client,) = sqs.queues.filter(QueueNamePrefix=f"{cli.deployment}-client-")
    client.delete()
    worker = cli.start("worker", "worker")
    wait_until(
        lambda: (file_state(cli.state_dir) or ("", None))[0] in ("CLEANED", "FAILED"),
        "the file to finish",
        timeout=60,
        procs=(run, worker),
    )
    assert run.stop() == 130, run  # Ctrl+C's exit status
    assert worker.stop() == 0, worker
    assert "is gone; creating it again" in run.stderr, run.stderr
    assert "autotranscode setup" not in run.stderr, run.stderr
    assert "submitting its job again (1 of 3)" in run.stderr, run.stderr
    assert_delivered(cli, out, clip, ".mp4")
    cli.assert_no_leftovers()


def test_retry_takes_a_stuck_file(
    local_cli: Cli, folders: tuple[Path, Path], clips: dict[str, Clip]
) -> None:
    """A file left waiting for its job (``run --workers 0`` stopped) is one ``retry`` away
    from done; ``retry`` used to say "no failed files to retry"."""
    cli = local_cli
    drop, out = folders
    clip = clips["h264.mp4"]
    (drop / clip.path.name).write_bytes(clip.path.read_bytes())
    first = cli.start("run", "run", drop, out, "--settle", SETTLE, "--workers", "0", "-v")
    wait_until(
        lambda: (file_state(cli.state_dir) or ("", None))[0] == "SUBMITTED",
        "the job to be submitted",
        procs=(first,),
    )
    assert first.stop() == 130, first  # Ctrl+C's exit status
    lose_the_jobs(cli)
    result = cli.run("retry", drop / clip.path.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok      {clip.path.name} -> {clip.path.stem}.mp4" in result.stdout, result.stdout
    assert_delivered(cli, out, clip, ".mp4")
    cli.assert_no_leftovers()
