"""The whole flow of a file, in-process, on both backends: real ffmpeg, SQLite and moto."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest

from autotranscode import keys
from autotranscode.backends import Backend
from autotranscode.engines.worker import Worker
from autotranscode.journal import FileState, Journal, TransitionError
from autotranscode.media.probe import probe, read_stamp
from autotranscode.media.transcoder import find_ffmpeg
from autotranscode.messages import parse_job
from autotranscode.pipeline import Pipeline
from autotranscode.service import Service
from autotranscode.settings import Settings

from conftest import Clip, backend_settings, check_output

WAIT = 60


@pytest.fixture(autouse=True)
def only_moves_the_flow_makes(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every state change these runs make is one ``journal.TRANSITIONS`` allows. A step's
    TransitionError is caught where steps fail (the file fails as an internal error, with
    a traceback in the log), so the log is where to look for one."""
    yield
    illegal = [
        r.getMessage()
        for r in caplog.records
        if r.exc_info and isinstance(r.exc_info[1], TransitionError)
    ]
    assert not illegal, illegal


@pytest.fixture(params=["local", "aws"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return backend_settings(request, tmp_path, request.param)


@contextmanager
def running(
    s: Settings,
    out: Path,
    presets: tuple[str, ...] = ("web-720p",),
    workers: int = 1,
    on_success: str = "keep",
) -> Iterator[tuple[Pipeline, Backend, Journal]]:
    """The client as the CLI runs it, with its pipeline started."""
    s = msgspec.structs.replace(s, preset=presets, workers=workers, on_success=on_success)
    with Service(s, out) as service:
        service.pipeline.start()
        yield service.pipeline, service.backend, service.journal


def submitted(pipe: Pipeline, journal: Journal, path: Path) -> str:
    """Add a file and wait until its job is on the queue; its id."""
    fid = pipe.add(path)
    assert fid
    deadline = time.monotonic() + WAIT
    while journal.get(fid).state != FileState.SUBMITTED:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return fid


def assert_no_leftovers(backend: Backend) -> None:
    store = backend.store
    assert store.keys(store.input_bucket) == []
    assert store.keys(store.output_bucket, keys.OUTPUT_PREFIX) == []  # not workers' beats
    assert backend.jobs.count() == 0
    assert backend.dead_letters.count() == 0
    assert backend.notifications.count() == 0


def test_every_clip_is_transcoded_and_broken_files_fail_cleanly(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip], broken: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    videos = {n: c for n, c in clips.items() if c.has_video}
    with running(settings, out) as (pipe, backend, _journal):
        fids = {name: pipe.add(c.path) for name, c in videos.items()}
        bad = {name: pipe.add(p) for name, p in broken.items()}
        assert pipe.wait([*fids.values(), *bad.values()], timeout=WAIT)  # type: ignore[list-item]
        for name, fid in fids.items():
            outcome = pipe.outcome(fid)  # type: ignore[arg-type]
            assert outcome.state == FileState.CLEANED, outcome
            check_output(out / (Path(name).stem + ".mp4"), videos[name])
        reasons = {name: pipe.outcome(fid).detail for name, fid in bad.items()}  # type: ignore[arg-type]
        assert all(pipe.outcome(f).state == FileState.FAILED for f in bad.values())  # type: ignore[arg-type]
        assert "empty" in reasons["empty.mov"]
        assert "not a readable media file" in reasons["notes.mp4"]
        assert_no_leftovers(backend)
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(n).stem + ".mp4" for n in videos)


def test_several_presets_give_several_outputs(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    out = tmp_path / "out"
    clip = clips["h264.mp4"]
    with running(settings, out, presets=("web-720p", "audio-aac")) as (pipe, backend, _):
        fid = pipe.add(clip.path)
        assert fid and pipe.wait([fid], timeout=WAIT)
        assert pipe.outcome(fid).state == FileState.CLEANED
        assert_no_leftovers(backend)
    check_output(out / "h264.web-720p.mp4", clip)
    audio = Clip(out / "h264.audio-aac.m4a", clip.duration, None, True, has_video=False)
    check_output(audio.path, audio)


def test_existing_output_is_never_overwritten_and_done_files_are_not_redone(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "h264.mp4").write_bytes(b"the user's own file")
    clip = clips["h264.mp4"]
    with running(settings, out) as (pipe, _backend, journal):
        fid = pipe.add(clip.path)
        assert fid and pipe.wait([fid], timeout=WAIT)
        assert pipe.add(clip.path) == fid
        assert pipe.wait([fid], timeout=1)
        ((submitted,),) = journal.db.query(
            "SELECT COUNT(*) FROM events WHERE file_id = ? AND state = 'SUBMITTED'", (fid,)
        )
        assert submitted == 1
    assert (out / "h264.mp4").read_bytes() == b"the user's own file"
    check_output(out / "h264 (1).mp4", clip)


def test_restart_resumes_a_submitted_file_exactly_once(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    out = tmp_path / "out"
    clip = clips["vp9.mkv"]
    with running(settings, out, workers=0) as (pipe, backend, journal):
        fid = submitted(pipe, journal, clip.path)
        assert backend.jobs.count() == 1
    # A new process: same state dir, workers this time.
    with running(settings, out) as (pipe, backend, journal):
        assert pipe.wait([fid], timeout=WAIT)
        assert pipe.outcome(fid).state == FileState.CLEANED
        assert_no_leftovers(backend)
    assert [p.name for p in out.iterdir()] == ["vp9.mp4"]
    check_output(out / "vp9.mp4", clip)


def test_the_clients_probe_travels_in_the_job(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """So a worker need not decode a first frame again for the rotation (test_worker.py)."""
    clip = clips["prores 10bit.mov"]
    with running(settings, tmp_path / "out", workers=0) as (pipe, backend, journal):
        submitted(pipe, journal, clip.path)
        [message] = backend.jobs.receive(wait=5)
        detected = parse_job(message.body).input.detected
        backend.jobs.release(message)
    assert detected is not None
    assert detected.file_size == clip.path.stat().st_size
    hint, actual = detected.media_info(), probe(clip.path)
    assert hint.duration == pytest.approx(actual.duration, abs=0.001)
    # What Elastic Transcoder's detectedProperties hold travels; the rest (every stream,
    # colour) a worker reads in its own detailed probe.
    shape = ("format_name", "video_codec", "width", "height", "audio_codec", "rotation")
    assert {f: getattr(hint, f) for f in shape} == {f: getattr(actual, f) for f in shape}


@pytest.mark.parametrize("on_success", ["move", "delete"])
def test_the_source_goes_only_once_its_output_is_on_disk(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    clips: dict[str, Clip],
    monkeypatch: pytest.MonkeyPatch,
    on_success: str,
) -> None:
    """--on-success move|delete: the output and OUT's entry for it are fsynced first, or a
    power cut could leave an empty output and no source."""
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    source = drop / "clip.mp4"
    shutil.copyfile(clips["h264.mp4"].path, source)
    synced: list[tuple[Path, bool]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((Path(os.readlink(f"/proc/self/fd/{fd}")), source.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    s = backend_settings(request, tmp_path, "local")
    with running(s, out, on_success=on_success) as (pipe, _, _):
        fid = pipe.add(source)
        assert fid and pipe.wait([fid], timeout=WAIT)
        assert pipe.outcome(fid).state == FileState.CLEANED
    check_output(out / "clip.mp4", clips["h264.mp4"])
    assert (out / "clip.mp4", True) in synced, "the output was not flushed before its source went"
    assert (out, True) in synced, "OUT's entry for the output was not flushed"
    assert not source.exists()
    moved = drop / "done" / "clip.mp4"
    assert moved.is_file() if on_success == "move" else not moved.exists()


def test_a_file_still_fails_when_cleaning_up_after_it_breaks(
    settings: Settings,
    tmp_path: Path,
    broken: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected error while failing a file must not leave it (and ``wait``) hanging."""
    with running(settings, tmp_path / "out") as (pipe, backend, _):

        def delete_prefix(bucket: str, prefix: str) -> int:
            raise RuntimeError("the store broke while cleaning up")

        monkeypatch.setattr(backend.store, "delete_prefix", delete_prefix)
        fid = pipe.add(next(iter(broken.values())))
        assert fid and pipe.wait([fid], timeout=WAIT)
        assert pipe.outcome(fid).state == FileState.FAILED


def test_notifications_for_other_jobs_are_ignored(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    out = tmp_path / "out"
    stranger = {
        "state": "COMPLETED",
        "jobId": "feedface",
        "pipelineId": "x",
        "input": {"bucket": "b", "key": "inputs/abc/x.mov"},
        "outputs": [{"key": "outputs/feedface/x.web-720p.mp4", "presetId": "web-720p"}],
    }
    with running(settings, out) as (pipe, backend, _):
        backend.topic.publish(json.dumps(stranger))
        backend.topic.publish("garbage")
        fid = pipe.add(clips["h264.mp4"].path)
        assert fid and pipe.wait([fid], timeout=WAIT)
        deadline = time.monotonic() + WAIT
        while backend.notifications.count():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert [p.name for p in out.iterdir()] == ["h264.mp4"]


def test_an_answer_with_outputs_in_a_bad_status_is_refused(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """Answers for our own job, addressed as a worker addresses them, whose outputs say
    what their state does not allow (an Error in a COMPLETED, an unknown word in an
    ERROR): refused, never acted on; the file still waits for its job's answer."""
    out = tmp_path / "out"
    with running(settings, out, ("audio-aac", "web-720p"), workers=0) as (pipe, backend, journal):
        fid = submitted(pipe, journal, clips["h264.mp4"].path)
        record = journal.get(fid)
        assert record is not None and record.job_id and record.input_key
        audio, video = record.outputs
        for state, statuses in (
            ("COMPLETED", ("Error", "Complete")),
            ("ERROR", ("Done", "Complete")),
        ):
            forged = {
                "state": state,
                "jobId": record.job_id,
                "pipelineId": settings.name,
                "input": {"bucket": backend.store.input_bucket, "key": record.input_key},
                "outputs": [
                    {"key": key, "presetId": preset, "status": status}
                    for key, preset, status in zip(
                        (audio, video), record.presets, statuses, strict=True
                    )
                ],
                "userMetadata": {"fileId": fid, "clientId": backend.client_id or ""},
            }
            backend.topic.publish(json.dumps(forged), client=backend.client_id)
        deadline = time.monotonic() + WAIT
        while backend.notifications.count():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = journal.get(fid)
        assert after is not None and after.state == FileState.SUBMITTED, after
        assert journal.story.outputs_of(fid) == []
    assert list(out.iterdir()) == []


def test_folder_outputs_arrive_whole_as_folders(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    out = tmp_path / "out"
    clip = clips["h264.mp4"]
    with running(settings, out, presets=("hls", "thumbnails", "poster")) as (pipe, backend, _):
        fid = pipe.add(clip.path)
        assert pipe.wait([fid], timeout=WAIT)
        assert pipe.outcome(fid).state == FileState.CLEANED, pipe.outcome(fid)
        assert_no_leftovers(backend)
    assert sorted(p.name for p in out.iterdir()) == [
        "h264.hls",
        "h264.poster.jpg",
        "h264.thumbnails",
    ]
    assert (out / "h264.hls" / "master.m3u8").is_file()
    variant = probe(out / "h264.hls" / "0" / "index.m3u8")
    assert (variant.video_codec, variant.height) == ("h264", 240)
    # Its stamp (a hidden sidecar) arrives with a folder: the download takes hidden files.
    assert sorted(p.name for p in (out / "h264.thumbnails").iterdir()) == [
        ".autotranscode.json",
        "thumb-0001.jpg",
    ]
    assert probe(out / "h264.poster.jpg").video_codec == "mjpeg"
    for output in out.iterdir():
        stamp = read_stamp(output)
        assert stamp is not None and stamp.source, output


def test_a_file_written_while_it_is_taken_is_taken_again_once_it_holds_still(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """A writer still appending when the take starts: the snapshot and hash of a moving
    file are not kept; the take starts over until the file holds still."""
    source = tmp_path / "growing.mp4"
    shutil.copyfile(clips["h264.mp4"].path, source)

    def append() -> None:
        with source.open("ab") as fh:
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                fh.write(b"\0" * 4096)
                fh.flush()
                time.sleep(0.002)

    out = tmp_path / "out"
    writer = threading.Thread(target=append)
    with running(settings, out) as (pipe, backend, journal):
        writer.start()
        fid = pipe.add(source)
        assert pipe.wait([fid], timeout=WAIT)
        writer.join()
        record = journal.get(fid)
        assert record is not None and record.state == FileState.CLEANED, record
        # What was taken is one version of the file, whole: the file as it was at some
        # moment (the writer only appends, so a prefix of it now), never bytes of two
        # moments. (On a loaded machine the writer may pause through a whole take.)
        prefix = tmp_path / "prefix.mp4"
        prefix.write_bytes(source.read_bytes()[: record.size])
        assert record.content_hash == keys.content_hash(prefix)
        assert_no_leftovers(backend)
    check_output(out / "growing.mp4", clips["h264.mp4"])


def test_a_file_done_by_a_release_without_content_hashes_is_not_done_again(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """After an upgrade, kept sources the old journal finished (by size and mtime) stay
    done: no second transcode into "(1)" names."""
    source = tmp_path / "kept.mp4"
    shutil.copyfile(clips["h264.mp4"].path, source)
    st = source.stat()
    out = tmp_path / "out"
    old = Journal(settings.state_dir / "journal.db")
    old.record("old", source, out.resolve(), ("web-720p",), st.st_size, st.st_mtime_ns)
    old.advance("old", FileState.CLEANED)
    old.close()
    with running(settings, out) as (pipe, _backend, journal):
        assert pipe.add(source) == "old"
        assert journal.counts() == {FileState.CLEANED: 1}
    assert not out.exists() or list(out.iterdir()) == []


def test_a_second_run_of_a_finished_file_s_job_leaves_no_log_behind(
    settings: Settings, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """A copy of a job run after its file was finished (redelivered in an outage) finds the
    input gone and answers ERROR, with its log stored beside no outputs: the client, which
    ignores that answer for a finished file, still removes the log object."""
    with running(settings, tmp_path / "out", workers=0) as (pipe, backend, journal):
        fid = submitted(pipe, journal, clips["h264.mp4"].path)
        [sent] = backend.jobs.receive(wait=WAIT)
        backend.jobs.send(sent.body)
        worker = Worker(
            backend,
            find_ffmpeg(),
            tmp_path / "work",
            visibility=settings.visibility_timeout,
            max_attempts=settings.max_attempts,
        )
        worker.workdir.mkdir()
        worker.handle(sent)
        assert pipe.wait([fid], timeout=WAIT)
        assert pipe.outcome(fid).state == FileState.CLEANED, pipe.outcome(fid)
        [again] = backend.jobs.receive(wait=WAIT)
        worker.handle(again)
        store = backend.store
        deadline = time.monotonic() + WAIT
        while store.keys(store.output_bucket, keys.OUTPUT_PREFIX) or backend.notifications.count():
            assert time.monotonic() < deadline, store.keys(store.output_bucket)
            time.sleep(0.05)
        assert_no_leftovers(backend)
        assert pipe.outcome(fid).state == FileState.CLEANED
