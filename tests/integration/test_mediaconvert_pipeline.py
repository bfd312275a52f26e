"""The pipeline with ``--engine mediaconvert``: S3, SQS, SNS, EventBridge and IAM on moto over
HTTP; MediaConvert itself, which nothing here can run, behind botocore's Stubber (its
requests are still validated against the service model), and the test doing its work: it
writes the output where the job said and sends the job's COMPLETE event."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import msgspec
import pytest
from botocore.stub import ANY, Stubber

from autotranscode import filelog
from autotranscode import settings as settings_mod
from autotranscode.backends.aws import AwsBackend
from autotranscode.deploy.iam import iam_policy
from autotranscode.deploy.provision import Status, setup, teardown
from autotranscode.engines import open_engine
from autotranscode.engines.mediaconvert import META_CLIENT, META_INPUT, META_JOB, MediaConvertEngine
from autotranscode.journal import FileState, Journal
from autotranscode.media import presets
from autotranscode.media.probe import probe
from autotranscode.media.transcoder import find_ffmpeg, transcode
from autotranscode.pipeline import Pipeline

from conftest import Clip, check_output


@pytest.fixture
def settings(
    aws_env: dict[str, str], moto_endpoint: str, deployment_name: str, tmp_path: Path
) -> settings_mod.Settings:
    return settings_mod.build(
        {
            "backend": "aws",
            "engine": "mediaconvert",
            "name": deployment_name,
            "endpoint_url": moto_endpoint,
            "state_dir": tmp_path / "state",
        }
    )


def test_a_file_goes_through_mediaconvert_and_comes_back(
    settings: settings_mod.Settings,
    tmp_path: Path,
    clips: dict[str, Clip],
    boto_session: boto3.Session,
) -> None:
    reports = setup(settings)
    role = next(r for r in reports if r.kind == "role")
    assert role.status == Status.CREATED
    backend = AwsBackend.from_settings(settings, check_buckets=False)
    engine = open_engine(settings, backend)
    assert isinstance(engine, MediaConvertEngine)
    assert engine.role_arn.endswith(f":role/{settings.name}-mediaconvert")
    journal = Journal(settings.state_dir / "journal.db")
    out = tmp_path / "out"
    pipe = Pipeline(backend, journal, out, settings, engine=engine)
    clip = clips["h264.mp4"]
    with Stubber(engine.client) as stub:
        stub.add_response(
            "create_job",
            {"Job": {"Id": "1671476818694-phptj0", "Role": engine.role_arn, "Settings": {}}},
            {
                "Role": engine.role_arn,
                "Settings": ANY,
                "UserMetadata": ANY,
                "StatusUpdateInterval": "SECONDS_10",
                "ClientRequestToken": ANY,
            },
        )
        pipe.start()
        try:
            fid = pipe.add(clip.path)
            deadline = time.monotonic() + 30
            while (record := journal.get(fid)) and record.state != FileState.SUBMITTED:
                assert time.monotonic() < deadline, record
                time.sleep(0.05)
            stub.assert_no_pending_responses()
            # What MediaConvert would do: write the output, then announce it.
            assert record is not None and record.job_id and record.input_key
            (key,) = record.outputs
            made = tmp_path / "made.mp4"
            transcode(find_ffmpeg(), presets.CATALOG["web-720p"], probe(clip.path), clip.path, made)
            backend.store.upload(made, backend.store.output_bucket, key)
            detail = {
                "status": "COMPLETE",
                "jobId": "1671476818694-phptj0",
                "userMetadata": {
                    META_JOB: record.job_id,
                    META_CLIENT: backend.client_id,
                    META_INPUT: record.input_key,
                    "fileId": fid,
                },
                "outputGroupDetails": [
                    {
                        "type": "FILE_GROUP",
                        "outputDetails": [
                            {
                                "outputFilePaths": [f"s3://{backend.store.output_bucket}/{key}"],
                                "durationInMs": 2000,
                                "videoDetails": {"widthInPx": 320, "heightInPx": 240},
                            }
                        ],
                    }
                ],
            }
            events = boto_session.client("events")
            sent = events.put_events(
                Entries=[
                    {
                        "Source": "aws.mediaconvert",
                        "DetailType": "MediaConvert Job State Change",
                        "Detail": json.dumps(detail),
                    }
                ]
            )
            assert sent["FailedEntryCount"] == 0
            assert pipe.wait([fid], timeout=30)
            assert pipe.outcome(fid).state == FileState.CLEANED, pipe.outcome(fid)
        finally:
            pipe.stop()
            journal.close()
    check_output(out / "h264.mp4", clip)
    assert backend.store.keys(backend.store.input_bucket) == []
    assert backend.store.keys(backend.store.output_bucket) == []
    # MediaConvert stores no log of ours: the file's log holds the client's lines alone.
    log_lines = filelog.log_path(settings.state_dir, fid).read_text().splitlines()
    assert all(" client: " in line for line in log_lines), log_lines
    assert log_lines[-1].endswith("done: h264.mp4"), log_lines

    removed = teardown(settings)
    kinds = {(r.kind, r.status) for r in removed}
    assert ("role", Status.DELETED) in kinds
    assert ("rule", Status.DELETED) in kinds
    assert boto_session.client("events").list_rules(NamePrefix=settings.name)["Rules"] == []


def test_a_mediaconvert_client_may_start_jobs_and_pass_only_our_role(
    settings: settings_mod.Settings,
) -> None:
    policy = iam_policy(settings, "client")
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["StartMediaConvertJobs"]["Action"] == ["mediaconvert:CreateJob"]
    assert by_sid["PassTheMediaConvertRole"]["Resource"] == [
        f"arn:aws:iam::123456789012:role/{settings.name}-mediaconvert"
    ]
    assert by_sid["RouteJobEvents"]["Resource"] == [
        f"arn:aws:events:us-east-1:123456789012:rule/{settings.name}-mediaconvert-*"
    ]
    workers_only = msgspec.structs.replace(settings, engine="workers")
    assert "StartMediaConvertJobs" not in {
        s["Sid"] for s in iam_policy(workers_only, "client")["Statement"]
    }
