"""Issue 13, cases 11, 12 and 13: retries that neither block nor loop, workers that trust only
their deployment, and notifications that reach only the client they are for.

Faults are real or injected below our code: the standard library refuses a write (as a
full disk would), an object is deleted from the store, a job is forged and sent on the
real queue; moto serves SNS and SQS with their filter policies.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import msgspec
import pytest

from autotranscode import settings as settings_mod
from autotranscode.backends import Backend
from autotranscode.deploy import open_aws, open_backend
from autotranscode.engines.worker import Worker
from autotranscode.journal import FileState, Journal
from autotranscode.media.transcoder import find_ffmpeg
from autotranscode.messages import Input, Job, JobOutput
from autotranscode.pipeline import Pipeline
from autotranscode.service import Service
from autotranscode.settings import Settings

from conftest import Clip, backend_settings, check_output

WAIT = 60.0


@contextmanager
def running(s: Settings, out: Path, transfers: int) -> Iterator[tuple[Pipeline, Journal]]:
    """The client as the CLI runs it, one in-process worker, its pipeline started."""
    s = msgspec.structs.replace(s, workers=1, transfers=transfers)
    with Service(s, out) as service:
        service.pipeline.start()
        yield service.pipeline, service.journal


class RefusedWrites:
    """``os.link`` and ``shutil.copyfile`` refuse (ENOSPC) to write a name containing
    ``marker``, until ``lift()``: a download into OUT that keeps failing, for one file only."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, marker: str) -> None:
        self.marker = marker
        self.active = True
        real_link, real_copy = os.link, shutil.copyfile

        def link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self._check(dst)
            real_link(src, dst, *args, **kwargs)

        def copyfile(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
            self._check(dst)
            return real_copy(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "link", link)
        monkeypatch.setattr(shutil, "copyfile", copyfile)

    def _check(self, dst: Any) -> None:
        if self.active and self.marker in os.fsdecode(dst):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(dst))

    def lift(self) -> None:
        self.active = False


def _wait_for(condition: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)


# --- case 11: retries ---------------------------------------------------------------------------


def test_a_new_file_does_not_wait_behind_a_retrying_one(
    tmp_path: Path,
    clips: dict[str, Clip],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One transfer thread; one file's download keeps failing (OUT refuses it), its retries
    backing off to 8 s and more. A file dropped then is delivered in seconds: retries wait
    on a timer, not on the transfer thread (which slept through each backoff)."""
    caplog.set_level(logging.WARNING, logger="autotranscode")
    s = settings_mod.build({"backend": "local", "state_dir": tmp_path / "state"})
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    clip = clips["h264.mp4"]
    shutil.copy(clip.path, drop / "stuck.mp4")
    shutil.copy(clips["no audio.mp4"].path, drop / "fresh.mp4")
    RefusedWrites(monkeypatch, ".stuck.mp4.")  # its temp name in OUT
    with running(s, out, transfers=1) as (pipe, journal):
        stuck = pipe.add(drop / "stuck.mp4")
        _wait_for(lambda: _logged(caplog, "stuck.mp4: cannot write into"), "a failed download")
        _wait_for(lambda: _logged(caplog, "retrying in 8s"), "the backoff to reach 8 s", 30)
        started = time.monotonic()
        fresh = pipe.add(drop / "fresh.mp4")
        assert pipe.wait([fresh], timeout=WAIT)
        took = time.monotonic() - started
        assert pipe.outcome(fresh).state == FileState.CLEANED, pipe.outcome(fresh)
        record = journal.get(stuck)
        assert record is not None and record.state == FileState.DOWNLOADING, record
    assert took < 8.0, f"the new file took {took:.1f}s behind a retrying one"
    check_output(out / "fresh.mp4", clips["no audio.mp4"])


def test_a_lost_output_object_is_made_again_not_retried_forever(
    tmp_path: Path,
    clips: dict[str, Clip],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A COMPLETED file whose output object is gone (expired, deleted) stayed in
    DOWNLOADING for ever, retrying; now its job is submitted again and the file delivered."""
    caplog.set_level(logging.WARNING, logger="autotranscode")
    s = settings_mod.build({"backend": "local", "state_dir": tmp_path / "state"})
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    clip = clips["h264.mp4"]
    shutil.copy(clip.path, drop / "lost.mp4")
    refused = RefusedWrites(monkeypatch, ".lost.mp4.")  # its temp name in OUT
    with running(s, out, transfers=2) as (pipe, _journal):
        fid = pipe.add(drop / "lost.mp4")
        _wait_for(lambda: _logged(caplog, "lost.mp4: cannot write into"), "a failed download")
        outputs = s.state_dir / "store" / "output" / "outputs"
        shutil.rmtree(outputs)
        refused.lift()
        assert pipe.wait([fid], timeout=WAIT)
        outcome = pipe.outcome(fid)
    assert outcome.state == FileState.CLEANED, outcome
    assert _logged(caplog, "lost.mp4: its output is gone"), caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["lost.mp4"]
    check_output(out / "lost.mp4", clip)


# --- case 12: a forged job ----------------------------------------------------------------------


@pytest.fixture(params=["local", "aws"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return backend_settings(request, tmp_path, request.param)


def _victim(backend: Backend, s: Settings, clip: Clip) -> tuple[str, Any]:
    """A bucket that is not the deployment's, holding an input a forged job can name; and a
    function listing what it holds."""
    key = f"inputs/{uuid.uuid4().hex[:20]}/a.mp4"
    if backend.kind == "local":
        name = "victim"
        root = s.state_dir / "store" / name
        (root / key).parent.mkdir(parents=True)
        shutil.copy(clip.path, root / key)
        return name, lambda: sorted(
            p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
        )
    name = f"victim-{s.name}"
    s3 = boto3.Session(region_name="us-east-1").resource("s3", endpoint_url=s.endpoint_url)
    bucket = s3.create_bucket(Bucket=name)
    bucket.upload_file(str(clip.path), key)
    return name, lambda: sorted(o.key for o in bucket.objects.all())


def test_a_job_naming_another_bucket_is_dead_lettered_and_nothing_is_written(
    settings: Settings, clips: dict[str, Clip]
) -> None:
    backend = open_backend(settings)
    try:
        victim, held = _victim(backend, settings, clips["h264.mp4"])
        before = held()
        job = Job(
            job_id=uuid.uuid4().hex,
            pipeline_id=settings.name,
            input=Input(bucket=victim, key=before[0]),
            output_bucket=victim,
            outputs=(JobOutput(key=f"outputs/{uuid.uuid4().hex}/a.mp4", preset_id="web-720p"),),
            topic=backend.topic.arn,
        )
        backend.jobs.send(job.to_json())
        (settings.state_dir / "work" / "w").mkdir(parents=True)
        worker = Worker(
            backend,
            find_ffmpeg(),
            settings.state_dir / "work" / "w",
            visibility=settings.visibility_timeout,
            max_attempts=settings.max_attempts,
        )
        (message,) = backend.jobs.receive(wait=5)
        worker.handle(message)
        assert held() == before, "the worker wrote into a bucket that is not its deployment's"
        assert backend.jobs.count() == 0
        dead = backend.dead_letters.receive(wait=5)
        assert [json.loads(d.body)["jobId"] for d in dead] == [job.job_id]
        assert dead[0].note is not None and "not this deployment's" in dead[0].note, dead[0]
        assert victim in dead[0].note
    finally:
        backend.close()


def test_the_local_store_refuses_bucket_names_that_are_paths(tmp_path: Path) -> None:
    from autotranscode.backends.local import FolderStore
    from autotranscode.errors import StorageError

    store = FolderStore(tmp_path / "store")
    for name in ("..", "../x", "/etc", "a/b", "", ".", "x" * 64, "UPPER"):
        with pytest.raises(StorageError, match="not a plain bucket name"):
            store.keys(name)
    assert store.keys("output") == []


# --- case 13: notifications reach only their client ---------------------------------------------


def test_a_stopped_client_receives_none_of_another_client_s_notifications(
    aws_env: dict[str, str], moto_endpoint: str, deployment_name: str, tmp_path: Path
) -> None:
    """Client A is stopped; client B's 20 jobs are answered (here: ERROR, their inputs are
    missing, which workers say at once). B's queue has 20 notifications, A's none. A's
    subscription was made without a filter (by an older version): opening adds it."""

    def settings(state: str) -> Settings:
        return settings_mod.build(
            {
                "backend": "aws",
                "name": deployment_name,
                "state_dir": tmp_path / state,
                "endpoint_url": moto_endpoint,
            }
        )

    b = open_aws(settings("b"))
    # Client A as an older version left it: its queue subscribed with no filter.
    session = boto3.Session(region_name="us-east-1")
    sqs, sns = session.resource("sqs"), session.resource("sns")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "aws-client-id").write_text("aaaaaaaa\n")
    old = sqs.create_queue(QueueName=f"{deployment_name}-client-aaaaaaaa", tags=b.names.tag)
    sns.Topic(b.topic.arn).subscribe(Protocol="sqs", Endpoint=old.attributes["QueueArn"])
    a = open_aws(settings("a"))
    a_queue = a.notifications
    a.close()  # stopped
    try:
        b_queue = b.notifications
        assert b.client_id != "aaaaaaaa"
        (tmp_path / "work").mkdir()
        worker = Worker(
            b,
            find_ffmpeg(),
            tmp_path / "work",
            visibility=30,
            max_attempts=3,
        )
        for _ in range(20):
            job = Job(
                job_id=uuid.uuid4().hex,
                pipeline_id=deployment_name,
                input=Input(bucket=b.store.input_bucket, key="inputs/gone/a.mp4"),
                output_bucket=b.store.output_bucket,
                outputs=(JobOutput(key=f"outputs/{uuid.uuid4().hex}/a.mp4", preset_id="web-720p"),),
                topic=b.topic.arn,
                user_metadata={"clientId": b.client_id or ""},
            )
            b.jobs.send(job.to_json())
            for message in b.jobs.receive(wait=5):
                worker.handle(message)
        _wait_for(lambda: b_queue.count() == 20, "client B's 20 notifications", 20)
        time.sleep(1.0)  # SNS delivery is asynchronous on AWS; give any stray one time
        assert a_queue.count() == 0, "a stopped client's queue collected others' notifications"
    finally:
        b.close()
