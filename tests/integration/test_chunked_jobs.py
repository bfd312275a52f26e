"""Chunked jobs (``engines.parts``) on both backends: a long file split across workers, joined
into the output an unchunked job makes, exactly once, with nothing left behind; forged parts
refused; a part killed or sent twice made once more, never twice over; a chunk the join's
check names made again alone, never delivered."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import msgspec
import pytest
from test_worker import answers, detected, fetched, make_worker, send_job, serving

from autotranscode import keys
from autotranscode.backends import Backend
from autotranscode.deploy import open_backend
from autotranscode.engines import parts, plans
from autotranscode.engines.workers import WorkersEngine
from autotranscode.errors import FfmpegKilled, JoinError
from autotranscode.media import chunks, join
from autotranscode.media.transcoder import find_ffmpeg
from autotranscode.messages import Job, Part, State, parse_job
from autotranscode.settings import Settings

from conftest import backend_settings, make_long_clip

#: The clip: long enough for a few chunks of 3 s (keyframes every 2 s), encoded in a blink.
SECONDS = 12
CHUNK_SECONDS = 3.0


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chunked") / "long clip.mp4"
    return make_long_clip(path, SECONDS, 440)


@pytest.fixture(params=["local", "aws"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return backend_settings(request, tmp_path, request.param)


@pytest.fixture
def local(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return backend_settings(request, tmp_path, "local")


@pytest.fixture
def backend(settings: Settings) -> Iterator[Backend]:
    opened = open_backend(settings)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def local_backend(local: Settings) -> Iterator[Backend]:
    opened = open_backend(local)
    try:
        yield opened
    finally:
        opened.close()


def send_chunked(backend: Backend, path: Path, seconds: float | None = CHUNK_SECONDS) -> Job:
    """A job as the client sends it with ``--chunk-seconds`` (sent again with the field set:
    call it before the workers start)."""
    job = send_job(backend, path, detected=detected(path))
    taken = backend.jobs.receive(wait=5)
    assert len(taken) == 1
    backend.jobs.delete(taken[0])
    chunked = msgspec.structs.replace(job, chunk_seconds=seconds)
    backend.jobs.send(chunked.to_json())
    return chunked


def frames_and_duration(path: Path) -> tuple[int, float, float]:
    """Video frames decoded, the video's duration and the audio's (seconds)."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        lengths = [float(s.duration * s.time_base) for s in (video, audio)]
        frames = sum(1 for _ in container.decode(video=0))
    return frames, lengths[0], lengths[1]


def psnr(made: Path, source: Path) -> float:
    """The average PSNR (dB) of ``made`` against ``source``, frame by frame."""
    run = subprocess.run(
        [
            find_ffmpeg(),
            "-hide_banner",
            "-i",
            str(made),
            "-i",
            str(source),
            "-lavfi",
            "[0:v][1:v]psnr",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"PSNR .* average:([0-9.]+)", run.stderr)
    assert found, run.stderr[-2000:]
    return float(found[1])


def left_over(backend: Backend, job: Job) -> list[str]:
    """What a chunked job left in the store beyond its outputs and its log."""
    store = backend.store
    wanted = {o.key for o in job.outputs} | {keys.log_key(job.job_id)}
    return [k for k in store.keys(store.output_bucket, keys.OUTPUT_PREFIX) if k not in wanted]


class Runs:
    """Every ffmpeg run of the parts, by what it made; ``fail`` makes chosen runs fail."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[str] = []
        self.lock = threading.Lock()
        self.fail: dict[str, BaseException] = {}
        #: Called with each command line before it runs.
        self.before: Callable[[list[str]], None] | None = None
        real = chunks.run

        def run(cmd: list[str], **kw: Any) -> None:
            name = Path(cmd[-1]).name
            with self.lock:
                self.made.append(name)
                failure = next((k for k in self.fail if k in name), None)
                error = self.fail.pop(failure) if failure else None
            if error is not None:
                raise error
            if self.before is not None:
                self.before(cmd)
            real(cmd, **kw)

        monkeypatch.setattr(chunks, "run", run)

    def count(self, part: str) -> int:
        return sum(1 for name in self.made if f"-{part}-" in name)


def test_a_chunked_file_ends_as_the_unchunked_one_with_nothing_left(
    settings: Settings, backend: Backend, long_clip: Path, tmp_path: Path
) -> None:
    chunked = send_chunked(backend, long_clip)
    whole = send_job(backend, long_clip, detected=detected(long_clip))
    with serving(settings, backend, workers=2):
        found = answers(backend, 2)
    note, plain = found[chunked.job_id], found[whole.job_id]
    assert (note.state, plain.state) == (State.COMPLETED, State.COMPLETED), note.reason
    assert [o.key for o in note.outputs] == [o.key for o in chunked.outputs]
    made = fetched(backend, note.outputs[0].key, tmp_path / "chunked.mp4")
    reference = fetched(backend, plain.outputs[0].key, tmp_path / "whole.mp4")
    frames, video, audio = frames_and_duration(made)
    expected = frames_and_duration(reference)
    assert frames == expected[0] == SECONDS * 25
    assert abs(video - expected[1]) <= 0.001 and abs(audio - expected[2]) <= 0.03
    # Its quality against the source is the unchunked encode's (issue 19: within 0.2 dB).
    assert abs(psnr(made, long_clip) - psnr(reference, long_clip)) <= 0.2
    log_text = fetched(backend, keys.log_key(chunked.job_id), tmp_path / "log").read_text()
    split = re.search(r"split into (\d+) chunks", log_text)
    assert split and int(split[1]) >= 3 and f"joined from {split[1]} chunks" in log_text
    # On aws a chunk reads its range of the input by a presigned URL, never logged.
    assert "Signature" not in log_text
    assert ("-i 's3://" in log_text) == (settings.backend == "aws")
    assert all(whole.job_id in key for key in left_over(backend, chunked))
    assert backend.jobs.count() == 0 and backend.dead_letters.count() == 0


def test_forged_parts_are_refused_and_stale_ones_dropped(
    local: Settings, local_backend: Backend, long_clip: Path
) -> None:
    backend = local_backend
    job = send_chunked(backend, long_clip)
    worker = make_worker(local, backend)
    [split] = backend.jobs.receive(wait=5)
    worker.handle(split)
    count = backend.jobs.count() - 1  # the chunks, and the rest
    assert count >= 3
    # A chunk whose times are not the plan's: dead-lettered, never made.
    forged = msgspec.structs.replace(job, part=Part(kind="chunk", index=1, count=count, start=0.5))
    backend.jobs.withdraw(job.job_id)
    backend.jobs.send(forged.to_json())
    [message] = backend.jobs.receive(wait=5)
    worker.handle(message)
    assert backend.dead_letters.count() == 1 and backend.jobs.count() == 0
    prefix = keys.parts_prefix(job.job_id)
    assert backend.store.keys(backend.store.output_bucket, prefix) == [
        f"{prefix}plan.json",
        f"{prefix}split.log",
    ]
    # The file is over (its objects removed): its parts are dropped, nothing is stored.
    backend.store.delete_prefix(backend.store.output_bucket, prefix)
    stale = msgspec.structs.replace(job, part=Part(kind="rest", count=count))
    backend.jobs.send(stale.to_json())
    [message] = backend.jobs.receive(wait=5)
    worker.handle(message)
    assert backend.jobs.count() == 0 and backend.dead_letters.count() == 1
    assert backend.store.keys(backend.store.output_bucket, prefix) == []


def test_a_killed_chunk_is_made_again_once_and_a_redelivered_one_not_at_all(
    local: Settings, local_backend: Backend, long_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = local_backend
    runs = Runs(monkeypatch)
    runs.fail["c0002"] = FfmpegKilled("ffmpeg was killed by SIGKILL (out of memory?)")
    job = send_chunked(backend, long_clip)
    worker = make_worker(local, backend)
    [split] = backend.jobs.receive(wait=5)
    worker.handle(split)
    # Each part taken in turn, and chunk 1's message delivered twice (a lost delete): its
    # copy finds it stored and sends the join again, which finds the outputs stored.
    duplicated = False
    notes = []
    while batch := backend.jobs.receive(wait=0.2):
        [message] = batch
        part = parse_job(message.body).part
        assert part is not None
        if part.name == "c0001" and not duplicated:
            backend.jobs.send(message.body)
            duplicated = True
        worker.handle(message)
        for got in backend.notifications.receive(wait=0, max_messages=10):
            backend.notifications.delete(got)
            read = WorkersEngine(backend).read(got.body)
            if read.state != State.PROGRESSING:
                notes.append(read)
    assert [n.state for n in notes] == [State.COMPLETED, State.COMPLETED], notes[0].reason
    assert runs.count("c0001") == 1 and runs.count("c0002") == 2 and runs.count("c0000") == 1
    assert backend.jobs.count() == 0 and backend.dead_letters.count() == 0
    assert left_over(backend, job) == []


def test_a_chunk_failing_the_join_check_is_made_again_never_delivered(
    settings: Settings,
    backend: Backend,
    long_clip: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    runs = Runs(monkeypatch)
    corrupted: list[Path] = []

    def corrupt(cmd: list[str]) -> None:
        """Before the first join: chunk 2, downloaded for it, loses half its frames."""
        dst = Path(cmd[-1])
        if dst.name.startswith("joined-") and not corrupted:
            chunk = dst.parent / f"c0002.o0{plans.PART_EXTENSION}"
            cut = chunk.with_name("cut.mkv")
            cmd = [find_ffmpeg(), "-loglevel", "error", "-i", str(chunk)]
            subprocess.run([*cmd, "-frames:v", "10", "-c", "copy", str(cut)], check=True)
            cut.replace(chunk)
            corrupted.append(chunk)

    runs.before = corrupt
    job = send_chunked(backend, long_clip)
    with serving(settings, backend, workers=2):
        [note] = answers(backend, 1).values()
    assert note.state == State.COMPLETED, note.reason
    assert runs.count("c0002") == 2 and runs.count("c0001") == 1
    frames, _, _ = frames_and_duration(fetched(backend, note.outputs[0].key, tmp_path / "o.mp4"))
    assert frames == SECONDS * 25
    log_text = fetched(backend, keys.log_key(job.job_id), tmp_path / "log").read_text()
    assert corrupted and "chunk c0002 failed the check" in log_text
    assert left_over(backend, job) == []
    assert backend.jobs.count() == 0 and backend.dead_letters.count() == 0


def test_a_chunk_failing_every_time_fails_the_file(
    local: Settings, local_backend: Backend, long_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = local_backend

    def verify(joined: Path, source: Any, expected: int | None, **kw: Any) -> None:
        raise JoinError("joined output check failed (chunk 0): too short", bad_chunk=0)

    monkeypatch.setattr(join, "verify_join", verify)
    send_chunked(backend, long_clip)
    with serving(local, backend, workers=2):
        [note] = answers(backend, 1).values()
    assert note.state == State.ERROR
    assert f"failed the join's check {parts.MAX_CHUNK_REDOS + 1} times" in note.reason
    assert backend.jobs.count() == 0


def test_outputs_that_do_not_chunk_are_made_whole_beside_the_chunked_one(
    local: Settings, local_backend: Backend, long_clip: Path, tmp_path: Path
) -> None:
    backend = local_backend
    job = send_job(backend, long_clip, ("web-720p", "hls", "audio-aac"), detected=None)
    [taken] = backend.jobs.receive(wait=5)
    backend.jobs.delete(taken)
    backend.jobs.send(msgspec.structs.replace(job, chunk_seconds=CHUNK_SECONDS).to_json())
    with serving(local, backend, workers=2):
        [note] = answers(backend, 1).values()
    assert note.state == State.COMPLETED, note.reason
    video, hls, audio = note.outputs
    assert video.duration and abs(video.duration - SECONDS) < 0.05 and video.height == 240
    assert hls.size and audio.size
    store = backend.store
    assert any(k.endswith(".m3u8") for k in store.keys(store.output_bucket, f"{hls.key}/"))
    text = fetched(backend, keys.log_key(job.job_id), tmp_path / "log").read_text()
    assert f"{hls.key}: not chunked (HLS" in text and f"{audio.key}: not chunked (audio" in text
    assert left_over(backend, job) == [k for k in left_over(backend, job) if hls.key in k]
    assert backend.jobs.count() == 0


def test_a_split_taken_again_sends_only_the_parts_not_stored(
    local: Settings, local_backend: Backend, long_clip: Path
) -> None:
    backend = local_backend
    job = send_chunked(backend, long_clip)
    worker = make_worker(local, backend)
    [split] = backend.jobs.receive(wait=5)
    worker.handle(split)
    [first] = backend.jobs.receive(wait=5)
    part = parse_job(first.body).part
    assert part is not None and part.name == "rest", "the audio first: the floor of the time"
    worker.handle(first)
    taken = [backend.jobs.receive(wait=5)[0] for _ in range(backend.jobs.count())]
    assert names_of(taken)[0] == "c0000"
    backend.jobs.send(job.to_json())  # the file's job again (a resubmit, a lost delete)
    [again] = backend.jobs.receive(wait=5)
    worker.handle(again)
    again_sent = backend.jobs.receive(wait=5, max_messages=10)
    assert names_of(again_sent) == names_of(taken) and "rest" not in names_of(again_sent)


def names_of(messages: list[Any]) -> list[str]:
    """The part names of job messages, in order."""
    found = [parse_job(m.body).part for m in messages]
    return [p.name for p in found if p is not None]


@pytest.mark.parametrize("forgery", ["garbage", "an output it does not have", "past the end"])
def test_a_damaged_plan_fails_the_file_at_once_with_its_reason(
    local: Settings, local_backend: Backend, long_clip: Path, forgery: str, tmp_path: Path
) -> None:
    """A plan.json damaged or forged in the store (its bytes, an output index past the job's,
    a chunk outside the source) fails the file with a one-line reason on its first attempt:
    never an IndexError out of the worker, never a chunk made from it, never retried."""
    backend = local_backend
    job = send_chunked(backend, long_clip)
    worker = make_worker(local, backend)
    [split] = backend.jobs.receive(wait=5)
    worker.handle(split)
    store, key = backend.store, f"{keys.parts_prefix(job.job_id)}{plans.PLAN}"
    path = tmp_path / plans.PLAN
    store.download(store.output_bucket, key, path)
    plan = msgspec.json.decode(path.read_bytes(), type=plans.Plan)
    if forgery == "garbage":
        path.write_bytes(b"\x00\xff{not a plan")
    elif forgery == "an output it does not have":
        path.write_bytes(msgspec.json.encode(msgspec.structs.replace(plan, chunked=(99,))))
    else:
        last = msgspec.structs.replace(plan.chunks[-1], start=SECONDS * 40.0)
        forged = msgspec.structs.replace(plan, chunks=(*plan.chunks[:-1], last))
        path.write_bytes(msgspec.json.encode(forged))
    store.put(path, store.output_bucket, key)
    while batch := backend.jobs.receive(wait=0.2):
        worker.handle(batch[0])  # every part: none raises, none is made from the plan
    notes = []
    while got := backend.notifications.receive(wait=0, max_messages=10):
        notes += [WorkersEngine(backend).read(m.body) for m in got]
        for m in got:
            backend.notifications.delete(m)
    ended = [n for n in notes if n.state != State.PROGRESSING]
    assert ended and all(n.state == State.ERROR for n in ended)
    assert all("plan" in (n.reason or "") and "\n" not in (n.reason or "") for n in ended)


def test_a_long_video_with_one_keyframe_says_why_it_is_not_chunked(
    local: Settings, local_backend: Backend, tmp_path: Path
) -> None:
    """12 s with a single keyframe cannot be cut at 3 s: made whole, and the file's log says
    so (not "too short", which it is not)."""
    src = tmp_path / "one keyframe.mp4"
    subprocess.run(
        [
            *(find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"),
            *("-i", f"testsrc2=size=160x120:rate=25:duration={SECONDS}", "-c:v", "libx264"),
            *("-preset", "ultrafast", "-x264-params", "keyint=1000:min-keyint=1000:scenecut=0"),
            *("-pix_fmt", "yuv420p", str(src)),
        ],
        check=True,
    )
    backend = local_backend
    job = send_chunked(backend, src)
    worker = make_worker(local, backend)
    [message] = backend.jobs.receive(wait=5)
    worker.handle(message)
    [note] = answers(backend, 1).values()
    assert note.state == State.COMPLETED, note.reason
    text = fetched(backend, keys.log_key(job.job_id), tmp_path / "log").read_text()
    assert "not chunked: too few keyframes to cut into chunks of 3s" in text, text


def test_sound_that_starts_late_keeps_its_place_in_a_chunked_output(
    local: Settings, local_backend: Backend, tmp_path: Path
) -> None:
    """Audio starting 3 s into the video (leading silence not stored): the rest keeps that
    start and the join must too; it was joined at 0 and the file failed its check
    ("audio ends at 9.04s, video at 12.00s") though it transcodes whole."""
    src = tmp_path / "late sound.mp4"
    subprocess.run(
        [
            *(find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"),
            *("-i", f"testsrc2=size=160x120:rate=25:duration={SECONDS}", "-itsoffset", "3"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS - 3}"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", str(src)),
        ],
        check=True,
    )
    backend = local_backend
    send_chunked(backend, src)
    with serving(local, backend, workers=1):
        [note] = answers(backend, 1).values()
    assert note.state == State.COMPLETED, note.reason
    made = fetched(backend, note.outputs[0].key, tmp_path / "made.mp4")
    with av.open(str(made)) as container:
        audio = container.streams.audio[0]
        assert audio.start_time is not None and audio.time_base is not None
        assert abs(float(audio.start_time * audio.time_base) - 3) < 0.05
