"""Custom presets from a config file, end to end in one process: the pipeline and the
workers of a configuration use its custom presets; another configuration does not see them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest

from autotranscode import filelog, keys
from autotranscode import settings as settings_mod
from autotranscode.backends import Backend
from autotranscode.deploy import open_backend
from autotranscode.engines.worker import Worker, WorkerPool
from autotranscode.journal import FileState, Journal
from autotranscode.media import presets
from autotranscode.media.probe import probe, read_stamp
from autotranscode.media.transcoder import find_ffmpeg
from autotranscode.messages import parse_job
from autotranscode.pipeline import Pipeline
from autotranscode.settings import Settings

from conftest import Clip, backend_settings

WAIT = 60

#: Smaller than the test clips (240 lines), so the output shows which preset made it.
OURS = """
preset = "small"
[presets.small]
extends = "web-720p"
height = 120
crf = 30
"""
THEIRS = """
[presets.tiny]
extends = "web-720p"
height = 60
"""


def _settings(tmp_path: Path, name: str, text: str) -> Settings:
    """Settings as the CLI makes them: the config file's values, the state dir beside it."""
    folder = tmp_path / name
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text(f"state-dir = {str(folder / 'state')!r}\n{text}", encoding="utf-8")
    return settings_mod.build(settings_mod.load_file(config))


def _worker(s: Settings, backend: Backend, name: str) -> Worker:
    return Worker(
        backend,
        find_ffmpeg(),
        s.state_dir / "work" / name,
        visibility=s.visibility_timeout,
        max_attempts=s.max_attempts,
        name=name,
        catalog=s.catalog,
    )


@contextmanager
def _running(s: Settings, out: Path, workers: int) -> Iterator[tuple[Pipeline, Backend]]:
    """Backend, journal, in-process workers and pipeline, wired from ``s`` as the CLI does."""
    backend = open_backend(s)
    journal = Journal(s.state_dir / "journal.db")
    pool = WorkerPool([_worker(s, backend, f"w{i}") for i in range(workers)])
    pipe = Pipeline(backend, journal, out, s)
    pool.start()
    pipe.start()
    try:
        yield pipe, backend
    finally:
        pipe.stop()
        pool.stop()
        journal.close()
        backend.close()


def test_custom_presets_of_the_config_file_reach_the_pipeline_and_its_workers(
    tmp_path: Path, clips: dict[str, Clip]
) -> None:
    s = _settings(tmp_path, "ours", OURS)
    out = tmp_path / "out"
    with _running(s, out, workers=1) as (pipe, _):
        fid = pipe.add(clips["h264.mp4"].path)
        assert pipe.wait([fid], timeout=WAIT)
        assert pipe.outcome(fid).state == FileState.CLEANED, pipe.outcome(fid)
    [output] = out.iterdir()
    assert output.name == "h264.mp4"
    assert probe(output).height == 120
    stamp = read_stamp(output)
    assert stamp is not None and stamp.preset == presets.digest(s.catalog.get("small"))


@pytest.mark.parametrize("whose", ["own", "another configuration's"])
def test_a_worker_looks_a_job_s_preset_id_up_in_its_own_catalog(
    tmp_path: Path, clips: dict[str, Clip], whose: str
) -> None:
    """A job that names a custom preset without carrying its definition: a worker of the
    same configuration runs it; a worker of another one refuses it, saying which it knows."""
    s = _settings(tmp_path, "ours", OURS)
    other = _settings(tmp_path, "theirs", THEIRS)
    out = tmp_path / "out"
    with _running(s, out, workers=0) as (pipe, backend):
        fid = pipe.add(clips["h264.mp4"].path)
        [sent] = backend.jobs.receive(wait=WAIT)
        job = parse_job(sent.body)
        assert [o.preset_spec for o in job.outputs] == [dict(s.catalog.get("small").spec or {})]
        outputs = tuple(msgspec.structs.replace(o, preset_spec=None) for o in job.outputs)
        backend.jobs.send(msgspec.structs.replace(job, outputs=outputs).to_json())
        backend.jobs.delete(sent)
        [bare] = backend.jobs.receive(wait=WAIT)
        worker = _worker(s if whose == "own" else other, backend, "w")
        worker.workdir.mkdir(parents=True)
        worker.handle(bare)
        if whose == "own":
            assert pipe.wait([fid], timeout=WAIT)
            assert pipe.outcome(fid).state == FileState.CLEANED, pipe.outcome(fid)
            assert probe(out / "h264.mp4").height == 120
        else:
            [dead] = backend.dead_letters.receive(wait=0)
            assert dead.note is not None
            assert dead.note.startswith("rejected: unknown preset 'small'"), dead.note
            assert dead.note.endswith(", tiny"), dead.note  # the worker's own custom preset


#: An option ffmpeg takes from the command line but rejects when it opens the encoder: its
#: last words ("Nothing was written into output file…") are a consequence, not the cause.
BAD_LEVEL = {"bad-level": {"extends": "web-720p", "extra_args": ["-level", "9.9"]}}


def _nothing_left(backend: Backend) -> None:
    store = backend.store
    assert store.keys(store.input_bucket) == []
    # The job's log object included (the workers' heartbeats are not the job's).
    assert store.keys(store.output_bucket, keys.OUTPUT_PREFIX) == []


@pytest.mark.parametrize("backend_name", ["local", "aws"])
def test_a_file_s_log_tells_its_ffmpeg_runs_and_its_steps_done_or_failed(
    request: pytest.FixtureRequest, tmp_path: Path, clips: dict[str, Clip], backend_name: str
) -> None:
    """A preset with ``-level 9.9`` fails with ffmpeg's cause as its reason; the file's log
    in the state dir holds the command lines, what ffmpeg said and the pipeline's steps, for
    that failed file and for a file done; the store keeps nothing of either."""
    s = backend_settings(request, tmp_path, backend_name)
    s = msgspec.structs.replace(s, catalog=presets.Catalog.define(BAD_LEVEL))
    bad = msgspec.structs.replace(s, preset=("bad-level",))
    with _running(bad, tmp_path / "bad", workers=1) as (pipe, backend):
        failed = pipe.add(clips["h264.mp4"].path)
        assert pipe.wait([failed], timeout=WAIT)
        outcome = pipe.outcome(failed)
        _nothing_left(backend)
    assert outcome.state == FileState.FAILED
    assert "Error parsing option 'level' with value '9.9'" in outcome.detail, outcome.detail
    assert "Nothing was written" not in outcome.detail
    with _running(s, tmp_path / "good", workers=1) as (pipe, backend):
        done = pipe.add(clips["h264.mp4"].path)
        assert pipe.wait([done], timeout=WAIT)
        assert pipe.outcome(done).state == FileState.CLEANED, pipe.outcome(done)
        _nothing_left(backend)
    for fid, ending in ((failed, f"failed: {outcome.detail}"), (done, "done: h264.mp4")):
        log = filelog.log_path(s.state_dir, fid).read_text(encoding="utf-8")
        lines = log.splitlines()
        [run] = [line for line in lines if "ffmpeg exited with status" in line]
        assert "-loglevel level+info -progress pipe:1" in run  # the exact command line
        assert ("-level 9.9" in run) == (fid == failed)
        assert "    [info] Stream mapping:" in log  # what ffmpeg said, under its command
        client = [line.partition("] ")[2] for line in lines if " client: [+" in line]
        steps = ("seen; queued", "taking it", "taken and stored", "job submitted")
        assert all(c.startswith(step) for c, step in zip(client, steps, strict=False)), client
        assert lines[-1].endswith(ending), lines[-1]
        first_own = next(n for n, line in enumerate(lines) if " client: " in line)
        assert first_own > lines.index(run)  # the worker's part first
    failed_log = filelog.log_path(s.state_dir, failed).read_text(encoding="utf-8")
    assert "    [libx264 @ " in failed_log and "[error] Error parsing option 'level'" in failed_log
    # Written again (a finished file scheduled again): the worker's part is not lost.
    journal = Journal(s.state_dir / "journal.db")
    try:
        assert filelog.FileLogs(s.state_dir, journal).write(failed) is not None
    finally:
        journal.close()
    assert filelog.log_path(s.state_dir, failed).read_text(encoding="utf-8") == failed_log
    assert sorted(p.name for p in (s.state_dir / "logs").iterdir()) == sorted(
        [f"{failed}.log", f"{done}.log"]
    )  # no temporary names left
