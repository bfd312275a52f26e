"""``transcode --chunk-seconds`` as a user runs it, with two workers: one long file cut into
chunks (at scene changes where near, ``--chunk-scenes``), made by both, joined into one
output as an unchunked run makes it; the file's log tells the parts and the scene pass;
nothing is left in the store or the queues."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from cli_harness import Cli, names, open_cli, wait_until
from test_crash_resume import assert_nothing_outlives, kill_alone, processes_mentioning

from conftest import FFMPEG, make_long_clip

SECONDS = 20


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """The local backend: test_chunked_jobs runs the same flow on aws (moto), for time."""
    yield from open_cli(request, tmp_path, "local")


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chunked-cli") / "talk.mp4"
    return make_long_clip(path, SECONDS, 330)


def test_transcode_with_chunk_seconds_and_two_workers(
    cli: Cli, long_video: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = cli.run(
        *("transcode", long_video, "--out", out, "--chunk-seconds", "5", "--chunk-scenes"),
        *("--workers", "2"),
    )
    assert result.returncode == 0, result.stderr
    assert names(out) == ["talk.mp4"]
    with av.open(str(out / "talk.mp4")) as container:
        assert container.streams.audio, "the rest part's audio was joined in"
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == SECONDS * 25
    [log_file] = (cli.state_dir / "logs").glob("*.log")
    text = log_file.read_text()
    split = re.search(r"split into (\d+) chunks", text)
    assert split and int(split[1]) >= 3 and f"joined from {split[1]} chunks" in text
    assert "c0002:" in text and "rest" in text  # every part's log is in the file's
    assert re.search(r"scene changes: \d+ found in .* over the whole video; \d+ of", text)
    cli.assert_no_leftovers()


@pytest.fixture(params=["local", "aws"])
def any_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, request.param)


@pytest.fixture(scope="module")
def forty_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chunked-40") / "lecture.mp4"
    return make_long_clip(path, 40, 550)


def _facts(path: Path) -> tuple[int, float, float]:
    """Frames decoded, and the video's and the audio's durations (s)."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        lengths = [float(s.duration * s.time_base) for s in (video, audio)]
        frames = sum(1 for _ in container.decode(video=0))
    return frames, lengths[0], lengths[1]


def _psnr(made: Path, source: Path) -> float:
    inputs = ("-i", str(made), "-i", str(source))
    run = subprocess.run(
        [FFMPEG, "-hide_banner", *inputs, "-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"PSNR .* average:([0-9.]+)", run.stderr)
    assert found, run.stderr[-500:]
    return float(found[1])


def test_forty_seconds_in_five_second_chunks_on_two_worker_processes_equal_the_whole_encode(
    any_cli: Cli, forty_seconds: Path, tmp_path: Path
) -> None:
    """Issue 19's own case, on both backends: two ``worker`` processes, a client without
    workers of its own; the chunked output against an unchunked one of the same file."""
    cli = any_cli
    workers = [cli.start(f"worker{n}", "worker", "--workers", "1") for n in (1, 2)]
    chunked, whole = tmp_path / "chunked", tmp_path / "whole"
    made = cli.run(
        *("transcode", forty_seconds, "--out", chunked, "--chunk-seconds", "5", "--workers", "0")
    )
    assert made.returncode == 0, made.stderr
    again = cli.run("transcode", forty_seconds, "--out", whole, "--workers", "0", "--force")
    assert again.returncode == 0, again.stderr
    out, reference = chunked / "lecture.mp4", whole / "lecture.mp4"
    frames, video, audio = _facts(out)
    expected = _facts(reference)
    assert frames == expected[0] == 40 * 25
    assert abs(video - expected[1]) <= 0.04, "within one frame"
    assert abs((audio - video) - (expected[2] - expected[1])) <= 0.03, "in sync as the whole"
    assert abs(_psnr(out, forty_seconds) - _psnr(reference, forty_seconds)) <= 0.2
    logs = sorted((cli.state_dir / "logs").glob("*.log"), key=lambda p: p.stat().st_mtime)
    text = "\n".join(p.read_text() for p in logs)
    assert re.search(r"split into ([89]|1\d) chunks", text), "40 s in chunks of about 5 s"
    for w in workers:
        w.stop()
    cli.assert_no_leftovers()


def _ancestors(pid: int) -> set[int]:
    """``pid``'s parent, grandparent… (a death wrapper may stand between worker and ffmpeg)."""
    found = set()
    with contextlib.suppress(OSError, ValueError, IndexError):
        for _ in range(4):
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rpartition(")")[2].split()[1])
            found.add(pid)
    return found


def _gone(pid: int) -> bool:
    """Exited (a zombie no parent reaped yet has exited too)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def test_a_worker_killed_mid_chunk_has_that_chunk_made_again(
    cli: Cli, long_video: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    workers = [cli.start(f"worker{n}", "worker", "--workers", "1") for n in (1, 2)]
    client = cli.start(
        "transcode", "transcode", long_video, "--out", out, "--chunk-seconds", "3", "--workers", "0"
    )
    victim, chunk, encoder = None, None, 0
    deadline = time.monotonic() + 60
    while victim is None:
        assert time.monotonic() < deadline, "no chunk's ffmpeg was seen"
        for pid, cmd in processes_mentioning("-frames:v").items():
            named = re.search(r"-(c\d{4})-[0-9a-f]{8}-\d+\.mkv", cmd)
            owner = [w for w in workers if w.popen.pid in _ancestors(pid)]
            if named and owner:
                victim, chunk, encoder = owner[0], named[1], pid
                break
        time.sleep(0.005)
    kill_alone(victim)  # mid-chunk: its ffmpeg dies with it, its lease is taken back
    wait_until(lambda: _gone(encoder), "its ffmpeg to die with it", 10)
    assert client.wait_exit(120) == 0, client
    assert names(out) == ["talk.mp4"]
    with av.open(str(out / "talk.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == SECONDS * 25
    [log_file] = (cli.state_dir / "logs").glob("*.log")
    assert len(re.findall(rf"{chunk}: \d", log_file.read_text())) == 1  # made once, in the end
    for w in workers:
        if w is not victim:
            w.stop()
    cli.assert_no_leftovers()


def test_transcode_killed_while_its_file_is_in_parts_resumes_to_one_output(
    cli: Cli, long_video: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ("transcode", long_video, "--out", out, "--chunk-seconds", "3", "--workers", "2")
    first = cli.start("transcode", *args)
    store = cli.state_dir / "store"
    deadline = time.monotonic() + 60
    while not any(p.name.startswith("c0000") for p in store.rglob("parts/*")):
        assert time.monotonic() < deadline and first.popen.poll() is None, first
        time.sleep(0.01)
    kill_alone(first)  # its in-process workers die with it, some parts stored, some not
    assert_nothing_outlives(cli.state_dir)
    result = cli.run(*args)
    assert result.returncode == 0, result.stderr
    assert names(out) == ["talk.mp4"]
    with av.open(str(out / "talk.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == SECONDS * 25
    cli.assert_no_leftovers()
