"""MediaConvert requests, checked against the service model by botocore's Stubber (no emulator
offers MediaConvert), and its events, from samples shaped like the ones AWS documents."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import msgspec
import pytest
from botocore.stub import Stubber

from autotranscode.engines import open_engine
from autotranscode.engines.mediaconvert import (
    META_CLIENT,
    META_INPUT,
    META_JOB,
    MediaConvertEngine,
    event_pattern,
    job_request,
    parse_event,
)
from autotranscode.errors import ConfigError, MediaError, MessageError, QueueError
from autotranscode.media import presets
from autotranscode.media.probe import MediaInfo
from autotranscode.messages import Input, Job, JobOutput, State
from autotranscode.settings import Settings

ROLE = "arn:aws:iam::123456789012:role/studio-mediaconvert"
ACCOUNT = "123456789012"
CLIENT = "c0ffee01"
OUT_BUCKET = "studio-out-123456789012-us-east-1"
PRORES_1080 = MediaInfo(60.0, "mov", "prores", 1920, 1080, "pcm_s16le")
PHONE_480 = MediaInfo(10.0, "mov", "h264", 854, 480, "aac")
SILENT = MediaInfo(10.0, "mp4", "h264", 640, 360, None)
TONE = MediaInfo(10.0, "m4a", None, None, None, "aac")


def _job(*preset_ids: str) -> Job:
    return Job(
        job_id="a1b2c3",
        pipeline_id="studio",
        input=Input(bucket="studio-in-123456789012-us-east-1", key="inputs/f1/clip.mov"),
        output_bucket=OUT_BUCKET,
        outputs=tuple(
            JobOutput(
                key=f"outputs/a1b2c3/clip.{p}{presets.CATALOG[p].extension}",
                preset_id=p,
            )
            for p in preset_ids
        ),
        topic="arn:aws:sns:us-east-1:123456789012:studio-notifications",
        user_metadata={"fileId": "f1", "source": "clip.mov"},
    )


@pytest.fixture
def client() -> Any:
    return boto3.client(
        "mediaconvert",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _engine(client: Any) -> MediaConvertEngine:
    return MediaConvertEngine(
        client, role_arn=ROLE, client_id=CLIENT, account=ACCOUNT, output_bucket=OUT_BUCKET
    )


@pytest.mark.parametrize(
    ("preset_ids", "source"),
    [
        (("web-720p",), PRORES_1080),
        (("web-1080p",), PRORES_1080),
        (("web-720p",), PHONE_480),
        (("web-720p",), SILENT),
        (("audio-aac",), TONE),
        (("web-720p", "web-1080p", "audio-aac"), PRORES_1080),
    ],
)
def test_create_job_requests_are_valid_for_the_service_model(
    client: Any, preset_ids: tuple[str, ...], source: MediaInfo
) -> None:
    job = _job(*preset_ids)
    request = job_request(job, source, ROLE, CLIENT)
    with Stubber(client) as stub:
        # Stubber validates expected_params against CreateJob's input shape.
        stub.add_response(
            "create_job",
            {"Job": {"Id": "1671476818694-phptj0", "Role": ROLE, "Settings": {}}},
            expected_params=request,
        )
        _engine(client).submit(job, source)
        stub.assert_no_pending_responses()


def test_chunking_asks_for_mediaconvert_s_own_accelerated_transcoding(client: Any) -> None:
    """Our chunks are our workers' way of splitting a file; MediaConvert splits it itself
    (accelerated transcoding), so --chunk-seconds becomes that, checked by the model."""
    job = msgspec.structs.replace(_job("web-720p"), chunk_seconds=60.0)
    request = job_request(job, PRORES_1080, ROLE, CLIENT)
    assert request["AccelerationSettings"] == {"Mode": "PREFERRED"}
    assert "AccelerationSettings" not in job_request(_job("web-720p"), PRORES_1080, ROLE, CLIENT)
    with Stubber(client) as stub:
        stub.add_response(
            "create_job",
            {"Job": {"Id": "1671476818694-phptj0", "Role": ROLE, "Settings": {}}},
            expected_params=request,
        )
        _engine(client).submit(job, PRORES_1080)
        stub.assert_no_pending_responses()


def test_outputs_land_on_the_keys_the_pipeline_chose_and_are_never_upscaled() -> None:
    job = _job("web-720p", "web-1080p", "audio-aac")
    request = job_request(job, PHONE_480, ROLE, CLIENT)
    groups = request["Settings"]["OutputGroups"]
    destinations = [
        g["OutputGroupSettings"]["FileGroupSettings"]["Destination"]
        + "."
        + g["Outputs"][0]["Extension"]
        for g in groups
    ]
    assert destinations == [f"s3://{OUT_BUCKET}/{o.key}" for o in job.outputs]
    video = [g["Outputs"][0]["VideoDescription"] for g in groups[:2]]
    assert [(v["Width"], v["Height"]) for v in video] == [(854, 480), (854, 480)]
    assert "VideoDescription" not in groups[2]["Outputs"][0]
    assert request["UserMetadata"][META_JOB] == "a1b2c3"
    assert request["UserMetadata"][META_CLIENT] == CLIENT
    assert request["ClientRequestToken"] == "a1b2c3"


def test_1080p_source_scales_to_720_lines_keeping_the_aspect_ratio() -> None:
    request = job_request(_job("web-720p"), PRORES_1080, ROLE, CLIENT)
    video = request["Settings"]["OutputGroups"][0]["Outputs"][0]["VideoDescription"]
    assert (video["Width"], video["Height"]) == (1280, 720)
    h264 = video["CodecSettings"]["H264Settings"]
    assert h264["MaxBitrate"] == 4_000_000 and h264["RateControlMode"] == "QVBR"
    mp4 = request["Settings"]["OutputGroups"][0]["Outputs"][0]["ContainerSettings"]
    assert mp4["Mp4Settings"]["MoovPlacement"] == "PROGRESSIVE_DOWNLOAD"


def test_silent_input_has_no_audio_selector_or_description() -> None:
    request = job_request(_job("web-720p"), SILENT, ROLE, CLIENT)
    assert "AudioSelectors" not in request["Settings"]["Inputs"][0]
    assert "AudioDescriptions" not in request["Settings"]["OutputGroups"][0]["Outputs"][0]


def test_presets_that_cannot_apply_are_media_errors() -> None:
    with pytest.raises(MediaError, match="video stream"):
        job_request(_job("web-720p"), TONE, ROLE, CLIENT)
    with pytest.raises(MediaError, match="audio stream"):
        job_request(_job("audio-aac"), SILENT, ROLE, CLIENT)


@pytest.mark.parametrize(
    "catalog",
    [
        presets.DEFAULT_CATALOG.with_quality("vmaf:93", False),
        presets.DEFAULT_CATALOG.with_quality(None, True),
        presets.Catalog.define({"tuned": {"extends": "web-720p", "quality": "vmaf:95"}}),
    ],
    ids=["--quality", "--measure-quality", "a preset's quality"],
)
def test_a_vmaf_target_or_score_is_refused_not_dropped(
    client: Any, catalog: presets.Catalog, tmp_path: Any
) -> None:
    """MediaConvert can neither search a CRF nor score VMAF: a job asking for it fails with a
    ConfigError that says what to use instead, and no CreateJob is sent (the Stubber has no
    response queued: a call would fail with another error)."""
    preset_id = catalog.custom[0].id if catalog.custom else "web-720p"
    job = _job("web-720p")
    job = msgspec.structs.replace(
        job,
        outputs=(JobOutput(key=f"outputs/a1b2c3/clip.{preset_id}.mp4", preset_id=preset_id),),
    )
    engine = MediaConvertEngine(
        client,
        role_arn=ROLE,
        client_id=CLIENT,
        account=ACCOUNT,
        output_bucket=OUT_BUCKET,
        catalog=catalog,
    )
    with Stubber(client) as stub:
        with pytest.raises(ConfigError, match=r"MediaConvert cannot .*--engine workers"):
            engine.submit(job, PRORES_1080)
        stub.assert_no_pending_responses()
    # Up front: opening the engine refuses before it touches AWS (no backend is needed).
    settings = Settings(
        engine="mediaconvert",
        preset=(preset_id,),
        quality=catalog.quality,
        measure_quality=catalog.measure_quality,
        state_dir=tmp_path,
        catalog=catalog,
    )
    with pytest.raises(ConfigError, match=f"preset {preset_id}: MediaConvert cannot"):
        open_engine(settings, backend=None)  # type: ignore[arg-type]


def test_a_preset_that_only_remuxes_differently_still_runs_on_mediaconvert(client: Any) -> None:
    """``remux`` has no MediaConvert equivalent: the source is encoded (the README says so),
    and the job is not refused for it."""
    catalog = presets.Catalog.define({"always": {"extends": "web-720p", "remux": False}})
    job = msgspec.structs.replace(
        _job("web-720p"),
        outputs=(JobOutput(key="outputs/a1b2c3/clip.always.mp4", preset_id="always"),),
    )
    request = job_request(job, PHONE_480, ROLE, CLIENT, catalog=catalog)
    assert request["Settings"]["OutputGroups"][0]["Name"] == "always"


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("BadRequestException", 400, ConfigError),
        ("ForbiddenException", 403, ConfigError),
        ("TooManyRequestsException", 429, QueueError),
        ("InternalServerErrorException", 500, QueueError),
    ],
)
def test_refusals_become_our_errors(
    client: Any, code: str, status: int, error: type[Exception]
) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("create_job", code, "nope", status)
        with pytest.raises(error, match=code):
            _engine(client).submit(_job("web-720p"), PRORES_1080)


# -- events --------------------------------------------------------------------------------------

COMPLETE = {
    "version": "0",
    "id": "1234abcd-12ab-34cd-56ef-1234567890ab",
    "detail-type": "MediaConvert Job State Change",
    "source": "aws.mediaconvert",
    "account": ACCOUNT,
    "time": "2026-11-25T19:07:12Z",
    "region": "us-east-1",
    "resources": ["arn:aws:mediaconvert:us-east-1:123456789012:jobs/1671476818694-phptj0"],
    "detail": {
        "timestamp": 1671476832124,
        "accountId": ACCOUNT,
        "queue": "arn:aws:mediaconvert:us-east-1:123456789012:queues/Default",
        "jobId": "1671476818694-phptj0",
        "status": "COMPLETE",
        "userMetadata": {
            META_JOB: "a1b2c3",
            META_CLIENT: CLIENT,
            META_INPUT: "inputs/f1/clip.mov",
            "fileId": "f1",
        },
        "warnings": [{"code": 230001, "count": 1}],
        "outputGroupDetails": [
            {
                "outputDetails": [
                    {
                        "outputFilePaths": [f"s3://{OUT_BUCKET}/outputs/a1b2c3/clip.web-720p.mp4"],
                        "durationInMs": 30041,
                        "videoDetails": {"widthInPx": 1280, "heightInPx": 720},
                    }
                ],
                "type": "FILE_GROUP",
            }
        ],
    },
}


def _event(**detail: Any) -> str:
    event = copy.deepcopy(COMPLETE)
    event["detail"].update(detail)
    return json.dumps(event)


def _read(body: str) -> Any:
    return parse_event(body, account=ACCOUNT, client_id=CLIENT, output_bucket=OUT_BUCKET)


def test_complete_event_becomes_a_completed_notification() -> None:
    note = _read(json.dumps(COMPLETE))
    assert note.state == State.COMPLETED
    assert note.job_id == "a1b2c3"
    assert note.user_metadata["fileId"] == "f1"
    (out,) = note.outputs
    assert out.key == "outputs/a1b2c3/clip.web-720p.mp4"
    assert out.preset_id == "web-720p"
    assert (out.width, out.height, out.duration) == (1280, 720, 30.041)


def test_error_event_carries_mediaconvert_s_reason() -> None:
    note = _read(_event(status="ERROR", errorCode=1030, errorMessage="Unable to open input"))
    assert note.state == State.ERROR
    assert "1030" in note.reason and "Unable to open input" in note.reason


def test_status_update_reports_percent() -> None:
    note = _read(_event(status="STATUS_UPDATE", jobProgress={"jobPercentComplete": 36}))
    assert note.state == State.PROGRESSING
    assert note.user_metadata["percent"] == "36.0"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.update(source="aws.s3"),
        lambda e: e.update({"detail-type": "Object Created"}),
        lambda e: e.update(account="999999999999"),
        lambda e: e["detail"]["userMetadata"].update({META_CLIENT: "someone-else"}),
        lambda e: e["detail"]["userMetadata"].pop(META_JOB),
        lambda e: e["detail"].pop("userMetadata"),
        lambda e: e["detail"]["outputGroupDetails"][0]["outputDetails"][0].update(
            outputFilePaths=["s3://another-bucket/outputs/a1b2c3/x.mp4"]
        ),
        lambda e: e["detail"]["outputGroupDetails"][0]["outputDetails"][0].update(
            outputFilePaths=[f"s3://{OUT_BUCKET}/outputs/../../etc/passwd"]
        ),
        lambda e: e["detail"].update(status="NEW_STATUS"),
        lambda e: e["detail"]["userMetadata"].update({META_INPUT: "../escape"}),
        lambda e: e["detail"]["userMetadata"].update({META_JOB: 42}),
        lambda e: e["detail"].update(outputGroupDetails=["not an object"]),
        lambda e: e["detail"]["outputGroupDetails"][0]["outputDetails"][0].update(
            videoDetails={"widthInPx": "wide"}
        ),
        lambda e: e["detail"]["outputGroupDetails"][0]["outputDetails"][0].update(
            durationInMs="long"
        ),
        lambda e: e["detail"].update(status="PROGRESSING", jobProgress=[1]),
    ],
    ids=[
        "other-source",
        "other-type",
        "other-account",
        "other-client",
        "no-job-id",
        "no-metadata",
        "other-bucket",
        "traversal",
        "unknown-status",
        "bad-input-key",
        "job-id-not-text",
        "group-not-an-object",
        "width-not-a-number",
        "duration-not-a-number",
        "progress-not-an-object",
    ],
)
def test_events_that_are_not_ours_or_unsafe_are_rejected(mutate: Any) -> None:
    event = copy.deepcopy(COMPLETE)
    mutate(event)
    with pytest.raises(MessageError):
        _read(json.dumps(event))


@pytest.mark.parametrize("body", ["", "not json", "[]", "[" * 100_000, '{"source": 1}'])
def test_garbage_is_a_message_error(body: str) -> None:
    with pytest.raises(MessageError):
        _read(body)


def test_event_pattern_matches_only_this_client() -> None:
    pattern = event_pattern(CLIENT)
    assert pattern["source"] == ["aws.mediaconvert"]
    assert pattern["detail"]["userMetadata"] == {META_CLIENT: [CLIENT]}
