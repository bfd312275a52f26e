"""``kill -9`` at every step of a file's flow, then a restart: each input gives one output, once.

A process is started on real files; the test polls the journal (read-only) until some file
has reached the target state and then SIGKILLs the process. The kill lands at or after that
state — wherever it lands is a crash point the guarantees must hold for. The process is
killed alone (not its process group), as the OOM killer would: its ffmpeg child must die
with it by itself. After a restart on the same folders and state dir, OUT holds exactly one
valid output per input (no ``name (1).mp4``, no temp files), every file is CLEANED, and
nothing is left in the object store or the queues.

On aws a killed process's job lease has to run out before another worker may take the job,
so every command gets a config file with the shortest lease (``visibility_timeout = 10``);
on local, leases held by dead processes are taken back at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import pathname2url

import boto3
import pytest
from cli_harness import BACKENDS, PART_SUFFIX, Cli, Proc, by_stage, make_cli, names, wait_until

from conftest import FFMPEG, Clip, check_output

SETTLE = "0.3"
#: Lease of a job message on aws (the minimum the settings allow).
VISIBILITY = 10
#: Resuming after a kill may wait for a lease (VISIBILITY), then transcodes: generous.
RESUME_DEADLINE = 120.0
#: Leftovers may wait for a redelivered notification or job (one lease each) to be handled.
LEFTOVER_DEADLINE = 60.0
#: Bytes/s from the endpoint for the aws DOWNLOADING case: ~0.4 s to download the LONG output.
DOWNLOAD_RATE = 8 * 1024 * 1024
#: ffmpeg gets this long to die with its killed parent (it takes milliseconds). Short, as an
#: ffmpeg that outlived its parent would finish its job and vanish by itself within seconds.
ORPHAN_DEADLINE = 1.0

SMALL = ("h264.mp4", "mjpeg.avi", "vp9.mkv")
LONG = "long take.mov"  # transcoding takes a couple of seconds: a wide TRANSCODING window
BIG = "big raw.mov"  # ~46 MB: s3transfer uploads it in parts (multipart threshold 16 MB)

# (backend, state to kill at or after, the file that must have reached it; None: any file).
# TRANSCODING waits for LONG's ffmpeg: a kill early in a long transcode leaves an ffmpeg that
# would go on for a while if it outlived its parent, which the test would see.
# Not run, for time (each aws case waits out one 10 s lease): aws × SUBMITTED, where the kill
# lands where it does in aws × UPLOADING (other files mid-upload) and aws × TRANSCODING (a job
# leased by the dead process's worker).
CASES = [
    ("local", "UPLOADING", None),
    ("local", "SUBMITTED", None),
    ("local", "TRANSCODING", LONG),
    ("local", "COMPLETED", None),
    ("local", "DOWNLOADING", None),
    ("local", "DONE", None),
    ("aws", "UPLOADING", BIG),  # killed during its multipart upload
    ("aws", "TRANSCODING", LONG),
    ("aws", "COMPLETED", None),
    ("aws", "DOWNLOADING", None),  # over a slow link: killed while s3transfer writes
    ("aws", "DONE", None),
]

# --- media ----------------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """10 s of 720p H.264 + AAC: its web-720p transcode takes a couple of seconds here."""
    path = tmp_path_factory.mktemp("crash-media") / LONG
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=10"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"),
        *("-shortest", str(path)),
    )
    return Clip(path, 10.0, 720, True)


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """4 s of uncompressed 360p video (~46 MB, made in a blink, transcoded in a blink)."""
    path = tmp_path_factory.mktemp("crash-media") / BIG
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=4"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4"),
        *("-c:v", "rawvideo", "-pix_fmt", "uyvy422", "-c:a", "pcm_s16le"),
        *("-shortest", str(path)),
    )
    assert path.stat().st_size > 32 * 1024 * 1024  # more than two 16 MB parts
    return Clip(path, 4.0, 360, True)


@pytest.fixture
def media(clips: dict[str, Clip], long_clip: Clip, big_clip: Clip) -> dict[str, Clip]:
    return {**{n: clips[n] for n in SMALL}, LONG: long_clip, BIG: big_clip}


# --- the journal, read from outside ---------------------------------------------------------------


def query(state_dir: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows from the journal, read-only; none while it does not exist yet or is busy."""
    db = state_dir / "journal.db"
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{pathname2url(str(db))}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return []


def reached(state_dir: Path, state: str) -> set[str]:
    """Names of the files that have been in ``state`` (now or before)."""
    rows = query(
        state_dir,
        "SELECT DISTINCT f.path FROM events e JOIN files f ON f.id = e.file_id WHERE e.state = ?",
        (state,),
    )
    return {Path(str(path)).name for (path,) in rows}


def states(state_dir: Path) -> dict[str, str]:
    """Each file's current state, by name."""
    return {Path(str(p)).name: str(s) for p, s in query(state_dir, "SELECT path, state FROM files")}


def no_failures(state_dir: Path) -> None:
    """Inside a wait: a FAILED file will never give its output; say so at once."""
    failed = query(state_dir, "SELECT path, reason FROM files WHERE state = 'FAILED'")
    if failed:
        pytest.fail(f"files failed: {failed}")


def all_cleaned(state_dir: Path, count: int) -> bool:
    no_failures(state_dir)
    current = states(state_dir)
    return len(current) == count and set(current.values()) == {"CLEANED"}


# --- processes ------------------------------------------------------------------------------------


def processes_mentioning(marker: str, exclude: Collection[int] = ()) -> dict[int, str]:
    """Live processes whose command line contains ``marker`` (zombies have none): pid → cmdline."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        if marker in cmdline:
            found[int(entry.name)] = cmdline
    return found


def ffmpeg_running(state_dir: Path, exclude: Collection[int]) -> bool:
    """An ffmpeg working on this state dir's files (the local store, or a worker's workdir)."""
    return any(
        os.path.basename(cmd.split(" ", 1)[0]).startswith("ffmpeg")
        for cmd in processes_mentioning(str(state_dir), exclude).values()
    )


def kill_alone(proc: Proc) -> None:
    """SIGKILL to the process itself (not its group): its children must not outlive it."""
    assert proc.popen.poll() is None, f"{proc.name} exited before the kill\n{proc}"
    os.kill(proc.popen.pid, signal.SIGKILL)
    assert proc.popen.wait(10) == -signal.SIGKILL


def assert_nothing_outlives(state_dir: Path, alive: tuple[Proc, ...] = ()) -> None:
    """After a kill, no process works on the state dir but the ones still meant to run."""
    keep = {p.popen.pid for p in alive}
    deadline = time.monotonic() + ORPHAN_DEADLINE
    while left := processes_mentioning(str(state_dir), keep):
        if time.monotonic() > deadline:
            pytest.fail(f"processes outlived the kill: {left}")
        time.sleep(0.05)


def wait_for_no_leftovers(cli: Cli, procs: tuple[Proc, ...]) -> None:
    """Cleanup is eventually complete: redelivered messages take a lease to come back."""
    deadline = time.monotonic() + LEFTOVER_DEADLINE
    while True:
        try:
            cli.assert_no_leftovers(timeout=1.0)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        for p in procs:
            assert p.popen.poll() is None, f"{p.name} exited\n{p}"
        time.sleep(0.5)


# --- a slow link to the endpoint ------------------------------------------------------------------


class SlowLink:
    """A TCP proxy to the endpoint that passes what the server sends at ``rate`` bytes/s.

    Downloads over it take a while, so a kill can land while s3transfer is writing one
    (moto serves a few MB in milliseconds: no poll would ever see that moment).
    """

    def __init__(self, endpoint: str, rate: int) -> None:
        target = urlsplit(endpoint)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.rate = rate
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name="slow-link", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            self.sockets += [client, server]
            self._spawn(self._pump, client, server, None)
            self._spawn(self._pump, server, client, self.rate)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, rate: int | None) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(64 * 1024):
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        for sock in (src, dst):  # one side is gone: so is the other
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.stopped.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(5)
        for sock in [self.server, *self.sockets]:
            sock.close()


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    return drop, out


def make(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Iterator[Cli]:
    """The CLI with a config file giving the shortest job lease, for every command it runs
    (the environment's AUTOTRANSCODE_CONFIG is the ``--config`` of each, the harness's own
    ``setup`` and ``status`` included)."""
    c = make_cli(request, tmp_path, backend)
    config = tmp_path / "config.toml"
    config.write_text(f"visibility_timeout = {VISIBILITY}\n")
    c.env["AUTOTRANSCODE_CONFIG"] = str(config)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def local_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from make(request, tmp_path, "local")


@pytest.fixture
def aws_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from make(request, tmp_path, "aws")


@pytest.fixture(params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from make(request, tmp_path, request.param)


def temp_files(out: Path) -> list[str]:
    """What a download writes before its output is in place (hidden, or a part file)."""
    return [n for n in names(out) if n.startswith(".") or PART_SUFFIX in n]


def multipart_uploads(cli: Cli) -> list[str]:
    s3 = boto3.Session(region_name="us-east-1").resource("s3", endpoint_url=cli.endpoint)
    return [
        upload.key
        for bucket in s3.buckets.all()
        if bucket.name.startswith(f"{cli.deployment}-")
        for upload in bucket.multipart_uploads.all()
    ]


def output_of(source: str) -> str:
    return Path(source).stem + ".mp4"


def assert_exactly_once(cli: Cli, out: Path, sources: dict[str, Clip]) -> None:
    """One valid output per input and nothing else in OUT; the journal agrees."""
    assert names(out) == sorted(output_of(s) for s in sources), names(out)
    assert temp_files(out) == []
    for source, clip in sources.items():
        check_output(out / output_of(source), clip)
    status = cli.status()
    assert by_stage(status) == {"done": len(sources)}, status
    recorded = {
        Path(str(path)).name: list(json.loads(str(outputs)).values())
        for path, outputs in query(cli.state_dir, "SELECT path, outputs FROM files")
    }
    assert recorded == {s: [str(out.resolve() / output_of(s))] for s in sources}, recorded


# --- run, killed at each step ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cli", "target", "watch"), CASES, ids=[f"{b}-{s}" for b, s, _ in CASES], indirect=["cli"]
)
def test_run_killed_at_any_step_resumes_each_file_exactly_once(
    request: pytest.FixtureRequest,
    cli: Cli,
    folders: tuple[Path, Path],
    media: dict[str, Clip],
    target: str,
    watch: str | None,
) -> None:
    drop, out = folders
    wanted = (*SMALL, LONG) + ((BIG,) if watch == BIG else ())
    sources = {name: media[name] for name in wanted}
    for name, clip in sources.items():
        shutil.copyfile(clip.path, drop / name)
    state = cli.state_dir
    slow = cli.backend == "aws" and target == "DOWNLOADING"
    if slow:
        link = SlowLink(cli.endpoint or "", DOWNLOAD_RATE)
        request.addfinalizer(link.close)
        cli.endpoint = link.url
    args = ("run", drop, out, "--settle", SETTLE)

    run = cli.start("run", *args)
    pid = {run.popen.pid}

    def at_target() -> bool:
        if slow and any(f"{PART_SUFFIX}." in n for n in temp_files(out)):
            return True  # s3transfer is writing its temp file: a download under way
        no_failures(state)
        hit = reached(state, target)
        if slow:  # (the slow link makes every download last long enough to be seen)
            return len(reached(state, "DONE")) == len(sources)
        if not hit or (watch is not None and watch not in hit):
            return False
        return target != "TRANSCODING" or ffmpeg_running(state, pid)

    wait_until(at_target, f"a file to reach {target}", procs=(run,), interval=0.005)
    kill_alone(run)
    at_kill = states(state)
    print(f"states at the kill: {at_kill}; temp files in OUT: {temp_files(out)}")
    if cli.backend == "aws" and target == "UPLOADING":
        print(f"multipart uploads left by the kill: {multipart_uploads(cli)}")
    assert_nothing_outlives(state)
    assert set(at_kill.values()) != {"CLEANED"}, "the kill came too late to test anything"

    again = cli.start("run-again", *args)
    wait_until(
        lambda: all_cleaned(state, len(sources)),
        "every file to be CLEANED after the restart",
        timeout=RESUME_DEADLINE,
        procs=(again,),
        interval=0.2,
    )
    wait_for_no_leftovers(cli, (again,))
    assert_exactly_once(cli, out, sources)
    assert again.stop() == 130, again  # Ctrl+C's exit status
    assert "Traceback" not in again.stderr, again
    assert_exactly_once(cli, out, sources)
    cli.assert_no_leftovers()


# --- a separate worker, killed mid-transcode ------------------------------------------------------


def test_a_killed_worker_s_job_is_finished_once_by_another(
    cli: Cli, folders: tuple[Path, Path], media: dict[str, Clip]
) -> None:
    drop, out = folders
    sources = {LONG: media[LONG], SMALL[0]: media[SMALL[0]]}
    for name, clip in sources.items():
        shutil.copyfile(clip.path, drop / name)
    state = cli.state_dir

    worker_a = cli.start("worker-a", "worker")
    worker_a.wait_for_log("waiting for jobs")
    run_args = ("run", drop, out, "--settle", SETTLE, "--workers", "0")
    run = cli.start("run", *run_args)
    wait_until(
        lambda: LONG in reached(state, "TRANSCODING") and ffmpeg_running(state, {run.popen.pid}),
        f"worker A's ffmpeg at work on {LONG}",
        procs=(run, worker_a),
        interval=0.01,
    )
    kill_alone(worker_a)
    print(f"states at the kill: {states(state)}")
    assert_nothing_outlives(state, alive=(run,))
    assert set(states(state).values()) != {"CLEANED"}, "the kill came too late to test anything"

    worker_b = cli.start("worker-b", "worker")
    wait_until(
        lambda: all_cleaned(state, len(sources)),
        "every file to be CLEANED by worker B",
        timeout=RESUME_DEADLINE,
        procs=(run, worker_b),
        interval=0.2,
    )
    assert "completed" in worker_b.stderr, worker_b  # B did what A left
    wait_for_no_leftovers(cli, (run, worker_b))
    assert_exactly_once(cli, out, sources)
    assert run.stop() == 130, run  # Ctrl+C's exit status
    assert worker_b.stop() == 0, worker_b
    for proc in (run, worker_b):
        assert "Traceback" not in proc.stderr, proc
    cli.assert_no_leftovers()


# --- transcode, killed mid-way and run again ------------------------------------------------------


def test_transcode_killed_mid_way_finishes_the_rest_once_when_run_again(
    local_cli: Cli, tmp_path: Path, media: dict[str, Clip]
) -> None:
    cli = local_cli
    out = tmp_path / "out"
    sources = {name: media[name] for name in (*SMALL, LONG)}
    files = [clip.path for clip in sources.values()]
    state = cli.state_dir

    first = cli.start("transcode", "transcode", *files, "--out", out)

    def mid_way() -> bool:
        no_failures(state)
        now = states(state)
        return "CLEANED" in now.values() and set(now.values()) != {"CLEANED"}

    wait_until(mid_way, "some files done and some not", procs=(first,), interval=0.005)
    kill_alone(first)
    print(f"states at the kill: {states(state)}")
    assert_nothing_outlives(state)

    result = cli.run("transcode", *files, "--out", out, timeout=RESUME_DEADLINE)
    assert result.returncode == 0, result
    assert "Traceback" not in result.stderr, result.stderr
    assert f"{len(sources)} done, 0 failed" in result.stdout, result.stdout
    assert_exactly_once(cli, out, sources)
    cli.assert_no_leftovers()


# --- the short lease the aws cases rely on --------------------------------------------------------


def test_the_config_file_sets_the_job_lease(aws_cli: Cli, folders: tuple[Path, Path]) -> None:
    """visibility_timeout has no flag: only the config file sets it (else a killed worker's
    job would wait the default 60 s for another worker, and the aws cases above with it)."""
    drop, out = folders
    cli = aws_cli
    run = cli.start("run", "run", drop, out, "--settle", SETTLE)
    run.wait_for_log("watching")
    sqs = boto3.Session(region_name="us-east-1").resource("sqs", endpoint_url=cli.endpoint)
    queue = sqs.get_queue_by_name(QueueName=f"{cli.deployment}-jobs")
    assert queue.attributes["VisibilityTimeout"] == str(VISIBILITY)
    assert run.stop() == 130, run  # Ctrl+C's exit status
