"""The worker service on its own, on both backends: jobs sent as a client sends them, answers
read as a client reads them, real ffmpeg; its moments seen through ``WorkerHooks``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from autotranscode import keys
from autotranscode.backends import Backend
from autotranscode.deploy import open_backend
from autotranscode.engines.hooks import WorkerHooks
from autotranscode.engines.worker import Worker, WorkerPool
from autotranscode.engines.workers import WorkersEngine
from autotranscode.errors import FfmpegKilled, TranscodeError
from autotranscode.media import presets
from autotranscode.media.probe import MediaInfo, probe
from autotranscode.media.transcoder import find_ffmpeg
from autotranscode.messages import (
    MAX_DETAIL,
    DetectedProperties,
    Input,
    Job,
    JobOutput,
    Notification,
    State,
)
from autotranscode.settings import Settings

from conftest import Clip, backend_settings, check_output

WAIT = 60


@pytest.fixture(params=["local", "aws"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return backend_settings(request, tmp_path, request.param)


@pytest.fixture
def backend(settings: Settings) -> Iterator[Backend]:
    """The client's side of a deployment: its notification queue exists before any job."""
    opened = open_backend(settings)
    try:
        assert opened.notifications.count() == 0
        yield opened
    finally:
        opened.close()


def make_worker(
    s: Settings, backend: Backend, name: str = "w", hooks: WorkerHooks | None = None, **kw: Any
) -> Worker:
    options: dict[str, Any] = {
        "visibility": s.visibility_timeout,
        "max_attempts": s.max_attempts,
        **kw,
    }
    workdir = s.state_dir / "work" / name
    return Worker(backend, find_ffmpeg(), workdir, name=name, hooks=hooks, **options)


@contextmanager
def serving(
    s: Settings, backend: Backend, hooks: WorkerHooks | None = None, workers: int = 1, **kw: Any
) -> Iterator[WorkerPool]:
    pool = WorkerPool([make_worker(s, backend, f"w{i}", hooks, **kw) for i in range(workers)])
    pool.start()
    try:
        yield pool
    finally:
        pool.stop()


def send_job(
    backend: Backend,
    path: Path,
    preset_ids: tuple[str, ...] = ("web-720p",),
    *,
    detected: DetectedProperties | None = None,
    upload: bool = True,
    specs: dict[str, dict[str, Any]] | None = None,
) -> Job:
    """Store ``path`` and queue a job for it, as a client does; the job. ``specs``: custom
    presets (by id) that travel with the job."""
    specs = specs or {}
    job_id = uuid.uuid4().hex
    store = backend.store
    key = keys.input_key(job_id, path)
    if upload:
        store.upload(path, store.input_bucket, key)
    outputs = tuple(
        JobOutput(
            key=keys.output_key(
                job_id, path.stem, p, presets.DEFAULT_CATALOG.resolve(p, specs.get(p)).extension
            ),
            preset_id=p,
            preset_spec=specs.get(p),
        )
        for p in preset_ids
    )
    client = backend.client_id
    job = Job(
        job_id=job_id,
        pipeline_id="test",
        input=Input(bucket=store.input_bucket, key=key, detected=detected),
        output_bucket=store.output_bucket,
        outputs=outputs,
        topic=backend.topic.arn,
        user_metadata={"clientId": client} if client else {},
    )
    backend.jobs.send(job.to_json())
    return job


def answers(backend: Backend, count: int) -> dict[str, Notification]:
    """The first ``count`` answers (COMPLETED or ERROR) by job id, read as a client reads them."""
    engine = WorkersEngine(backend)
    found: dict[str, Notification] = {}
    deadline = time.monotonic() + WAIT
    while len(found) < count:
        assert time.monotonic() < deadline, f"answers so far: {found}"
        for message in backend.notifications.receive(wait=1, max_messages=10):
            note = engine.read(message.body)
            backend.notifications.delete(message)
            if note.state != State.PROGRESSING:
                found[note.job_id] = note
    return found


def fetched(backend: Backend, key: str, dest: Path) -> Path:
    backend.store.download(backend.store.output_bucket, key, dest)
    return dest


def detected(path: Path, info: MediaInfo | None = None) -> DetectedProperties:
    return DetectedProperties.of(info or probe(path), path.stat().st_size)


class Recorder(WorkerHooks):
    """Every moment, in order: (hook name without ``on_``, its keywords)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def on_job_received(self, **kwargs: Any) -> None:
        self.events.append(("job_received", kwargs))

    def on_source_probed(self, **kwargs: Any) -> None:
        self.events.append(("source_probed", kwargs))

    def on_ffmpeg_started(self, **kwargs: Any) -> None:
        self.events.append(("ffmpeg_started", kwargs))

    def on_ffmpeg_ended(self, **kwargs: Any) -> None:
        self.events.append(("ffmpeg_ended", kwargs))

    def on_output_checked(self, **kwargs: Any) -> None:
        self.events.append(("output_checked", kwargs))

    def on_publishing(self, **kwargs: Any) -> None:
        self.events.append(("publishing", kwargs))

    def on_published(self, **kwargs: Any) -> None:
        self.events.append(("published", kwargs))

    def names(self) -> list[str]:
        """The hooks called, progress notices left out (how many depends on the clock)."""
        return [
            name
            for name, kw in self.events
            if "notification" not in kw or kw["notification"].state != State.PROGRESSING
        ]

    def of(self, hook: str) -> list[dict[str, Any]]:
        return [kw for name, kw in self.events if name == hook]


def test_a_job_is_transcoded_stored_and_answered_and_each_moment_is_told(
    settings: Settings, backend: Backend, clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["h264.mp4"]
    hooks = Recorder()
    with serving(settings, backend, hooks):
        job = send_job(backend, clip.path, ("web-720p", "audio-aac"))
        [note] = answers(backend, 1).values()
    assert note.state == State.COMPLETED, note.reason
    assert [o.key for o in note.outputs] == [o.key for o in job.outputs]
    video, audio = note.outputs
    assert (video.height, video.size) == (240, backend.store.size(job.output_bucket, video.key))
    check_output(fetched(backend, video.key, tmp_path / "v.mp4"), clip)
    made = fetched(backend, audio.key, tmp_path / "a.m4a")
    check_output(made, Clip(made, clip.duration, None, True, has_video=False))
    assert backend.jobs.count() == 0 and backend.dead_letters.count() == 0
    per_output = ["ffmpeg_started", "ffmpeg_ended", "output_checked"]
    assert hooks.names() == [
        "job_received",
        "source_probed",
        *per_output,
        *per_output,
        "publishing",
        "published",
    ]
    started, ended = hooks.of("ffmpeg_started"), hooks.of("ffmpeg_ended")
    assert all(kw["command"][0] == find_ffmpeg() and kw["pid"] > 0 for kw in started)
    assert [kw["returncode"] for kw in ended] == [0, 0]
    assert [kw["pid"] for kw in ended] == [kw["pid"] for kw in started]
    [published] = [kw["notification"] for kw in hooks.of("published")][-1:]
    assert published == note


def test_broken_media_is_answered_with_an_error_at_once(
    settings: Settings, backend: Backend, broken: dict[str, Path]
) -> None:
    """Retrying cannot help: one attempt, an ERROR, and the job is gone (no dead letter)."""
    with serving(settings, backend):
        job = send_job(backend, broken["notes.mp4"])
        note = answers(backend, 1)[job.job_id]
    assert note.state == State.ERROR
    assert "not a readable media file" in note.reason
    assert backend.jobs.count() == 0 and backend.dead_letters.count() == 0


def test_an_output_that_cannot_be_made_fails_alone_and_the_others_are_stored(
    settings: Settings, backend: Backend, clips: dict[str, Clip], tmp_path: Path
) -> None:
    """An audio preset on a file without audio: that output is in "Error" with its reason,
    the video is made and stored, and the job is in ERROR (as Elastic Transcoder's was)."""
    clip = clips["no audio.mp4"]
    with serving(settings, backend):
        job = send_job(backend, clip.path, ("audio-aac", "web-720p"))
        note = answers(backend, 1)[job.job_id]
    assert note.state == State.ERROR
    audio, video = note.outputs
    assert (audio.status, video.status) == ("Error", "Complete")
    assert audio.status_detail == "preset audio-aac needs an audio stream and the input has none"
    assert note.message_details is not None and "1 of 2 outputs failed" in note.message_details
    assert note.made == (video,)
    store = backend.store
    stored = store.keys(job.output_bucket, f"{keys.OUTPUT_PREFIX}{job.job_id}/")
    assert sorted(stored) == sorted([video.key, keys.log_key(job.job_id)])  # and the job's log
    assert (video.height, video.size) == (240, store.size(job.output_bucket, video.key))
    check_output(fetched(backend, video.key, tmp_path / "v.mp4"), clip)
    assert backend.jobs.count() == 0 and backend.dead_letters.count() == 0
    assert note.log_key == keys.log_key(job.job_id) and note.log_tail is not None
    assert f"{audio.key}: failed: {audio.status_detail}" in note.log_tail
    assert f"{video.key}: stored (" in note.log_tail


def test_a_probe_in_the_job_spares_the_worker_a_second_one(
    settings: Settings, backend: Backend, clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["prores 10bit.mov"]
    hooks = Recorder()
    with serving(settings, backend, hooks):
        job = send_job(backend, clip.path, detected=detected(clip.path))
        note = answers(backend, 1)[job.job_id]
    assert note.state == State.COMPLETED, note.reason
    assert "source_probed" not in hooks.names()
    check_output(fetched(backend, note.outputs[0].key, tmp_path / "o.mp4"), clip)


def test_a_probe_for_another_file_size_is_not_trusted(
    settings: Settings, backend: Backend, clips: dict[str, Clip], tmp_path: Path
) -> None:
    """A lie that would break the output (no video, 1 s) if the worker believed it."""
    clip = clips["h264.mp4"]
    lie = MediaInfo(1.0, "mov,mp4,m4a,3gp,3g2,mj2", None, None, None, "aac")
    hooks = Recorder()
    with serving(settings, backend, hooks):
        job = send_job(backend, clip.path, detected=DetectedProperties.of(lie, 1))
        note = answers(backend, 1)[job.job_id]
    assert note.state == State.COMPLETED, note.reason
    assert hooks.names().count("source_probed") == 1
    check_output(fetched(backend, note.outputs[0].key, tmp_path / "o.mp4"), clip)


class _Overlap(WorkerHooks):
    """The first output's check holds until a second ffmpeg runs."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.second_started = threading.Event()

    def on_ffmpeg_started(self, *, pid: int, **kwargs: Any) -> None:
        self.started.append(pid)
        if len(self.started) == 2:
            self.second_started.set()

    def on_output_checked(self, **kwargs: Any) -> None:
        if len(self.started) == 1:
            assert self.second_started.wait(WAIT), "the next ffmpeg waited for this output check"


def test_a_worker_starts_its_next_ffmpeg_while_the_last_output_is_checked(
    settings: Settings, backend: Backend, clips: dict[str, Clip]
) -> None:
    """Serial handling (check, upload and notice before the next job) would hang here."""
    hooks = _Overlap()
    jobs = [send_job(backend, clips[n].path) for n in ("h264.mp4", "vp9.mkv")]
    with serving(settings, backend, hooks):
        found = answers(backend, 2)
    assert [found[j.job_id].state for j in jobs] == [State.COMPLETED] * 2
    assert hooks.second_started.is_set()


class _Order(WorkerHooks):
    """ffmpeg starts and output checks in order; the second job is slow to start."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.checked = threading.Event()

    def on_job_received(self, **kwargs: Any) -> None:
        if self.events:
            # The second job: a check that does not wait for its ffmpeg comes meanwhile.
            self.checked.wait(1)

    def on_ffmpeg_started(self, **kwargs: Any) -> None:
        self.events.append("ffmpeg")

    def on_output_checked(self, **kwargs: Any) -> None:
        self.events.append("check")
        self.checked.set()


def test_an_output_is_checked_only_once_the_next_ffmpeg_runs(
    settings: Settings, backend: Backend, clips: dict[str, Clip]
) -> None:
    """The check probes the output holding the GIL: done while the next job is being
    started, it kept the encoder idle longer."""
    hooks = _Order()
    jobs = [send_job(backend, clips[n].path) for n in ("h264.mp4", "vp9.mkv")]
    with serving(settings, backend, hooks, handoff_wait=WAIT):
        found = answers(backend, 2)
    assert [found[j.job_id].state for j in jobs] == [State.COMPLETED] * 2
    assert hooks.events == ["ffmpeg", "ffmpeg", "check", "check"]


def test_an_output_check_waits_for_no_next_job_that_is_not_there_or_fails(
    settings: Settings, backend: Backend, clips: dict[str, Clip]
) -> None:
    """With an endless handoff wait, a lone job and a job followed by one that fails before
    its ffmpeg must still complete: the worker says at once that no ffmpeg is coming."""
    with serving(settings, backend, handoff_wait=3600):
        lone = send_job(backend, clips["h264.mp4"].path)
        assert answers(backend, 1)[lone.job_id].state == State.COMPLETED
    first = send_job(backend, clips["vp9.mkv"].path)
    gone = send_job(backend, clips["no audio.mp4"].path, upload=False)
    with serving(settings, backend, handoff_wait=3600):
        found = answers(backend, 2)
    assert found[first.job_id].state == State.COMPLETED
    assert found[gone.job_id].state == State.ERROR
    assert "the input is gone" in found[gone.job_id].reason


class _Slow(WorkerHooks):
    def __init__(self) -> None:
        self.started: list[int] = []

    def on_ffmpeg_started(self, *, pid: int, **kwargs: Any) -> None:
        self.started.append(pid)
        time.sleep(3)  # the job now outlasts its 1 s lease three times over


def test_a_job_that_outlasts_its_lease_is_not_run_twice(
    settings: Settings, backend: Backend, clips: dict[str, Clip]
) -> None:
    """The lease must be renewed while the job runs, or the second (idle) worker receives
    the job again and runs a second ffmpeg."""
    hooks = _Slow()
    with serving(settings, backend, hooks, workers=2, visibility=1):
        job = send_job(backend, clips["h264.mp4"].path)
        assert answers(backend, 1)[job.job_id].state == State.COMPLETED
    assert len(hooks.started) == 1, "the job was handed to the second worker while it ran"
    assert backend.jobs.count() == 0


class _Failing(WorkerHooks):
    def on_ffmpeg_started(self, **kwargs: Any) -> None:
        raise TranscodeError("ffmpeg failed (exit 1): " + "x" * 10_000)


def test_a_failure_with_a_very_long_message_still_reaches_the_client(
    settings: Settings, backend: Backend, clips: dict[str, Clip]
) -> None:
    """ERROR notifications carry at most MAX_DETAIL characters of reason: a longer one
    would be refused by the client as malformed, leaving the file waiting forever."""
    with serving(settings, backend, _Failing()):
        job = send_job(backend, clips["h264.mp4"].path)
        note = answers(backend, 1)[job.job_id]
    assert note.state == State.ERROR
    assert note.reason.startswith("ffmpeg failed (exit 1): xxx")
    assert len(note.reason) == MAX_DETAIL


def test_malformed_jobs_go_to_the_dead_letter_queue_and_the_worker_goes_on(
    settings: Settings, backend: Backend, clips: dict[str, Clip]
) -> None:
    with serving(settings, backend):
        backend.jobs.send("{not json")
        backend.jobs.send(json.dumps({"jobId": "../../etc", "outputs": []}))
        job = send_job(backend, clips["h264.mp4"].path)
        assert answers(backend, 1)[job.job_id].state == State.COMPLETED
        deadline = time.monotonic() + WAIT
        while backend.dead_letters.count() < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert backend.jobs.count() == 0


class _Outputs(WorkerHooks):
    def __init__(self) -> None:
        self.outputs: list[Path] = []

    def on_ffmpeg_started(self, *, output: Path, **kwargs: Any) -> None:
        self.outputs.append(output)


def test_two_copies_of_one_job_in_one_worker_write_apart(
    settings: Settings, backend: Backend, clips: dict[str, Clip]
) -> None:
    """A redelivered copy of a job (its lease ran out, e.g. in an outage) can reach the worker
    still finishing the first: the two attempts must not share a temp file (they did)."""
    send_job(backend, clips["h264.mp4"].path)
    [first] = backend.jobs.receive(wait=WAIT)
    backend.jobs.release(first)
    [second] = backend.jobs.receive(wait=WAIT)
    hooks = _Outputs()
    worker = make_worker(settings, backend, hooks=hooks)
    worker.workdir.mkdir(parents=True)
    copies = [threading.Thread(target=worker.handle, args=(m,)) for m in (first, second)]
    for t in copies:
        t.start()
    for t in copies:
        t.join()
    assert len(set(hooks.outputs)) == 2, hooks.outputs
    assert {n.state for n in answers(backend, 1).values()} == {State.COMPLETED}


#: A custom preset with an option ffmpeg takes from the command line but rejects when it
#: opens the encoder: its last words ("Nothing was written into output file…") hide the cause.
BAD_LEVEL = {"extends": "web-720p", "extra_args": ["-level", "9.9"]}


def test_an_error_answer_gives_ffmpeg_s_first_error_and_the_job_s_log(
    settings: Settings, backend: Backend, clips: dict[str, Clip], tmp_path: Path
) -> None:
    with serving(settings, backend):
        job = send_job(
            backend, clips["h264.mp4"].path, ("bad-level",), specs={"bad-level": BAD_LEVEL}
        )
        note = answers(backend, 1)[job.job_id]
    assert note.state == State.ERROR
    assert "Error parsing option 'level' with value '9.9'" in note.reason, note.reason
    assert "Nothing was written" not in note.reason
    assert note.log_key == keys.log_key(job.job_id)
    assert note.log_tail is not None
    assert "[error] Error parsing option 'level' with value '9.9'" in note.log_tail
    assert "failed: ffmpeg failed (exit" in note.log_tail
    log = fetched(backend, note.log_key, tmp_path / "job.log").read_text()
    assert log.endswith(note.log_tail)
    assert f"job {job.job_id} received, attempt 1 of {settings.max_attempts}" in log
    assert "-level 9.9" in log and "-progress pipe:1" in log  # the command line ran


def test_a_completed_answer_names_the_job_s_log_which_tells_every_ffmpeg_run(
    settings: Settings, backend: Backend, clips: dict[str, Clip], tmp_path: Path
) -> None:
    with serving(settings, backend):
        job = send_job(backend, clips["h264.mp4"].path, ("web-720p", "audio-aac"))
        note = answers(backend, 1)[job.job_id]
    assert note.state == State.COMPLETED, note.reason
    assert note.log_key == keys.log_key(job.job_id) and note.log_tail is None
    log = fetched(backend, note.log_key, tmp_path / "job.log").read_text()
    runs = [line for line in log.splitlines() if "ffmpeg exited with status 0: " in line]
    assert len(runs) == 2
    assert all(find_ffmpeg() in line and "-loglevel level+info" in line for line in runs)
    assert "    [info] Stream mapping:" in log  # what ffmpeg said, indented under its run
    for output in job.outputs:
        assert f"{output.key}: checked (" in log and f"{output.key}: stored (" in log
    assert log.rstrip().endswith(f"job {job.job_id} completed")


class _KilledOnce(WorkerHooks):
    """The first output check finds ffmpeg "killed": an attempt that is tried again."""

    def __init__(self) -> None:
        self.checks = 0

    def on_output_checked(self, **kwargs: Any) -> None:
        self.checks += 1
        if self.checks == 1:
            raise FfmpegKilled("ffmpeg was killed by SIGKILL (out of memory?)")


def test_a_retried_job_s_log_tells_each_attempt(
    settings: Settings, backend: Backend, clips: dict[str, Clip], tmp_path: Path
) -> None:
    with serving(settings, backend, _KilledOnce()):
        job = send_job(backend, clips["h264.mp4"].path)
        note = answers(backend, 1)[job.job_id]
    assert note.state == State.COMPLETED, note.reason
    assert note.log_key is not None
    log = fetched(backend, note.log_key, tmp_path / "job.log").read_text()
    told = [line.partition(": ")[2] for line in log.splitlines() if not line.startswith(" ")]
    attempts = settings.max_attempts

    def at(start: str) -> list[int]:
        return [n for n, line in enumerate(told) if line.startswith(start)]

    [first] = at(f"job {job.job_id} received, attempt 1 of {attempts}")
    [failed] = at("attempt 1 failed (ffmpeg was killed by SIGKILL (out of memory?)); it will")
    [second] = at(f"job {job.job_id} received, attempt 2 of {attempts}")
    runs = at("ffmpeg exited with status 0: ")
    assert first < runs[0] < failed < second < runs[1] and len(runs) == 2, told
    assert told[-1] == f"job {job.job_id} completed", told


def test_a_picture_subtitle_left_out_is_said_in_the_file_s_log(
    settings: Settings, backend: Backend, stream_clips: dict[str, Path], tmp_path: Path
) -> None:
    with serving(settings, backend):
        job = send_job(backend, stream_clips["pictures.mkv"])
        note = answers(backend, 1)[job.job_id]
    assert note.state == State.COMPLETED, note.reason
    assert note.log_key is not None
    log = fetched(backend, note.log_key, tmp_path / "job.log").read_text()
    (output,) = job.outputs
    said = f"{output.key}: subtitle track 3 (hdmv_pgs_subtitle, eng) is made of pictures"
    assert said in log
    stored = fetched(backend, output.key, tmp_path / "o.mp4")
    assert len(probe(stored).audio_tracks) == 2
