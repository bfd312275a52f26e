"""Job messages and notifications: round trips, and every way a hostile message is turned away."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autotranscode import keys, messages
from autotranscode.errors import MessageError
from autotranscode.media.probe import MediaInfo
from autotranscode.messages import (
    DetectedProperties,
    Input,
    Job,
    JobOutput,
    Notification,
    OutputStatus,
    State,
)

TOPIC = "arn:aws:sns:us-east-1:123456789012:autotranscode-notifications"


def _job(**overrides: Any) -> Job:
    values: dict[str, Any] = {
        "job_id": "job-0001",
        "pipeline_id": "pipe-1",
        "input": Input(bucket="in-bucket", key="inputs/abc123/Früh stück — 東京 clip.mp4"),
        "output_bucket": "out-bucket",
        "outputs": (
            JobOutput(key="outputs/job-0001/clip.web-720p.mp4", preset_id="web-720p"),
            JobOutput(key="outputs/job-0001/clip.audio-aac.m4a", preset_id="audio-aac"),
        ),
        "topic": TOPIC,
        "user_metadata": {"source": "/drop/clip.mp4", "host": "laptop"},
    }
    values.update(overrides)
    return Job(**values)


def _job_dict() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_job().to_json())
    return data


def _notification(state: State = State.COMPLETED) -> Notification:
    return Notification(
        state=state,
        job_id="job-0001",
        pipeline_id="pipe-1",
        input=Input(bucket="in-bucket", key="inputs/abc123/clip.mp4"),
        output_key_prefix="outputs/job-0001/",
        outputs=(
            OutputStatus(
                key="outputs/job-0001/clip.web-720p.mp4",
                preset_id="web-720p",
                duration=2.0,
                width=320,
                height=240,
                size=12345,
            ),
        ),
        user_metadata={"k": "v"},
    )


def _envelope(message: str, **overrides: Any) -> str:
    """An SNS → SQS delivery as SNS writes it (raw message delivery off)."""
    envelope: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": TOPIC,
        "Message": message,
        "Timestamp": "2026-01-01T12:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQ"
        "vi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
        + TOPIC
        + ":c9135db0-26c4-47ec-8998-413945fb5a96",
    }
    envelope.update(overrides)
    return json.dumps(envelope)


# --- round trips ---------------------------------------------------------------------------------


def test_job_round_trip() -> None:
    job = _job()
    body = job.to_json()
    parsed = messages.parse_job(body)
    assert parsed == job
    assert parsed.version == messages.SCHEMA_VERSION
    assert parsed.outputs[1].preset_id == "audio-aac"
    assert messages.parse_job(body.encode("utf-8")) == job


def test_job_json_uses_elastic_transcoder_names() -> None:
    data = _job_dict()
    assert data["jobId"] == "job-0001"
    assert data["pipelineId"] == "pipe-1"
    assert data["outputBucket"] == "out-bucket"
    assert data["topicArn"] == TOPIC
    assert data["userMetadata"] == {"source": "/drop/clip.mp4", "host": "laptop"}
    assert data["outputs"][0] == {
        "key": "outputs/job-0001/clip.web-720p.mp4",
        "presetId": "web-720p",
    }


def test_notification_round_trip() -> None:
    for state in State:
        note = _notification(state)
        body = note.to_json()
        assert messages.parse_notification(body) == note
        data = json.loads(body)
        assert data["state"] == state.value
        assert data["jobId"] == "job-0001"
        assert data["input"]["key"] == "inputs/abc123/clip.mp4"
        assert data["outputs"][0]["presetId"] == "web-720p"
        assert data["outputs"][0]["fileSize"] == 12345
        assert "statusDetail" not in data["outputs"][0]  # None is left out


def test_an_output_s_vmaf_and_crf_travel_when_known_and_are_checked() -> None:
    made = OutputStatus(key="outputs/j/a.mp4", preset_id="web-720p", vmaf=93.41, crf=24.75)
    data = json.loads(made.to_json())
    assert (data["vmaf"], data["crf"]) == (93.41, 24.75)
    assert "vmaf" not in json.loads(OutputStatus(key="outputs/j/a.mp4", preset_id="x").to_json())
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(made.to_json().replace("93.41", "193"), type=OutputStatus)


def test_notification_reason() -> None:
    failed = Notification(
        state=State.ERROR,
        job_id="job-1",
        pipeline_id="p",
        input=Input(bucket="b", key="inputs/a/b.mp4"),
        outputs=(
            OutputStatus(
                key="outputs/job-1/b.mp4",
                preset_id="web-720p",
                status="Error",
                status_detail="ffmpeg failed: moov atom not found",
            ),
        ),
        message_details="generic",
    )
    assert failed.reason == "ffmpeg failed: moov atom not found"
    bare = msgspec.structs.replace(failed, outputs=())
    assert bare.reason == "generic"
    assert msgspec.structs.replace(bare, message_details=None).reason == "the job failed"


def test_an_error_may_carry_outputs_that_were_made_and_says_which() -> None:
    note = msgspec.structs.replace(
        _notification(State.ERROR),
        outputs=(
            OutputStatus(key="outputs/job-0001/clip.m4a", preset_id="audio-aac", status="Error"),
            _notification().outputs[0],
        ),
    )
    assert messages.parse_notification(note.to_json()) == note
    assert note.made == (_notification().outputs[0],)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("COMPLETED", "Error"),  # a completed job made every output
        ("COMPLETED", "Progressing"),
        ("ERROR", "Progressing"),
        ("ERROR", "complete"),
        ("PROGRESSING", "Done"),  # not a status at all
        ("ERROR", 1),
    ],
)
def test_a_notification_with_a_bad_output_status_is_refused(state: str, status: Any) -> None:
    data = json.loads(_notification().to_json())
    data["state"] = state
    data["outputs"][0]["status"] = status
    with pytest.raises(MessageError, match="status"):
        messages.parse_notification(json.dumps(data))


def test_notifications_are_built_checked_and_an_errors_reason_cut_to_fit() -> None:
    job = _job()
    common: dict[str, Any] = {
        "job_id": job.job_id,
        "pipeline_id": job.pipeline_id,
        "input": job.input,
        "user_metadata": {"clientId": "c1"},
    }
    done = messages.notification(
        State.COMPLETED,
        outputs=[OutputStatus(key=job.outputs[0].key, preset_id="web-720p", size=1)],
        **common,
    )
    assert messages.parse_notification(done.to_json()) == done
    assert (done.error_code, done.message_details) == (None, None)
    failed = messages.notification(State.ERROR, reason="x" * (2 * messages.MAX_DETAIL), **common)
    assert failed.error_code == messages.ERROR_CODE
    assert failed.reason == "x" * messages.MAX_DETAIL
    assert messages.parse_notification(failed.to_json()) == failed
    # Plain fields by their JSON names (an event's) are checked as if received.
    with pytest.raises(MessageError, match=r"input\.key"):
        messages.notification(State.COMPLETED, **(common | {"input": {"bucket": "b", "key": 1}}))
    with pytest.raises(MessageError, match="outputs"):
        messages.notification(State.COMPLETED, outputs=[{"key": "../x"}], **common)


def test_an_error_s_log_tail_is_cut_to_whole_lines_that_fit_and_its_key_checked() -> None:
    job = _job()
    lines = [f"line {n} é" for n in range(10_000)]  # non-ASCII: the limit holds in bytes too
    failed = messages.notification(
        State.ERROR,
        job_id=job.job_id,
        pipeline_id=job.pipeline_id,
        input=job.input,
        user_metadata={},
        reason="ffmpeg failed",
        log_key=keys.log_key(job.job_id),
        log_tail="\n".join(lines),
    )
    assert failed.log_key == "outputs/job-0001/job-0001.log"
    assert failed.log_tail is not None
    assert len(failed.log_tail.encode()) <= messages.MAX_LOG_TAIL
    kept = failed.log_tail.splitlines()
    assert kept == lines[-len(kept) :] and len(kept) > 100
    back = messages.parse_notification(failed.to_json())
    assert back == failed and len(failed.to_json()) < messages.MAX_MESSAGE_BYTES
    with pytest.raises(MessageError, match="control or reserved characters"):
        messages.notification(
            State.COMPLETED,
            job_id=job.job_id,
            pipeline_id=job.pipeline_id,
            input=job.input,
            user_metadata={},
            log_key="outputs/job-0001/\x1b.log",
        )


def test_unknown_fields_are_ignored() -> None:
    data = _job_dict()
    data["somethingNew"] = {"x": 1}
    assert messages.parse_job(json.dumps(data)) == _job()


def test_detected_properties_carry_a_probe_through_json() -> None:
    info = MediaInfo(
        duration=12.345678,
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        video_codec="h264",
        width=1920,
        height=1080,
        audio_codec="aac",
        rotation=90,
    )
    detected = DetectedProperties.of(info, 123456)
    job = _job(input=Input(bucket="in-bucket", key="inputs/a/b.mp4", detected=detected))
    data = json.loads(job.to_json())
    assert data["input"]["detectedProperties"]["durationMillis"] == 12346
    back = messages.parse_job(job.to_json()).input.detected
    assert back is not None and back.file_size == 123456
    assert back.media_info() == MediaInfo(**(vars(info) | {"duration": 12.346}))
    audio_only = DetectedProperties.of(MediaInfo(duration=None, format_name="wav"), 10)
    assert audio_only.media_info() == MediaInfo(duration=None, format_name="wav")


# --- rejected jobs -------------------------------------------------------------------------------


def _mutated(change: Any) -> str:
    data = _job_dict()
    change(data)
    return json.dumps(data)


BAD_JOBS: dict[str, str] = {
    "not json": "this is { not json",
    "empty": "",
    "truncated": _job().to_json()[:-5],
    "list": "[1, 2, 3]",
    "string": '"hello"',
    "null": "null",
    "number": "42",
    "another schema": json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
    "missing jobId": _mutated(lambda d: d.pop("jobId")),
    "missing input": _mutated(lambda d: d.pop("input")),
    "missing input key": _mutated(lambda d: d["input"].pop("key")),
    "missing outputs": _mutated(lambda d: d.pop("outputs")),
    "no outputs": _mutated(lambda d: d.update(outputs=[])),
    "missing topic": _mutated(lambda d: d.pop("topicArn")),
    "bad job id: path": _mutated(lambda d: d.update(jobId="../../etc")),
    "bad job id: space": _mutated(lambda d: d.update(jobId="a b")),
    "bad job id: empty": _mutated(lambda d: d.update(jobId="")),
    "bad job id: number": _mutated(lambda d: d.update(jobId=12)),
    "input key escaping via ../": _mutated(
        lambda d: d["input"].update(key="inputs/../outputs/evil.mp4")
    ),
    "input key outside prefix": _mutated(lambda d: d["input"].update(key="../etc/passwd")),
    "absolute input key": _mutated(lambda d: d["input"].update(key="/etc/passwd")),
    "output key escaping via ../": _mutated(
        lambda d: d["outputs"][0].update(key="outputs/../inputs/x.mp4")
    ),
    "output key in inputs": _mutated(lambda d: d["outputs"][0].update(key="inputs/a/x.mp4")),
    "control character in key": _mutated(lambda d: d["input"].update(key="inputs/a/b\n.mp4")),
    "wrong version": _mutated(lambda d: d.update(version=2)),
    "version as text": _mutated(lambda d: d.update(version="one")),
    "metadata not strings": _mutated(lambda d: d.update(userMetadata={"a": {"b": 1}})),
    "too many outputs": _mutated(lambda d: d.update(outputs=d["outputs"] * 16)),
    "detected: negative size": _mutated(
        lambda d: d["input"].update(detectedProperties={"fileSize": -1, "format": "mp4"})
    ),
    "detected: zero width": _mutated(
        lambda d: d["input"].update(detectedProperties={"fileSize": 1, "format": "x", "width": 0})
    ),
    "detected: odd rotation": _mutated(
        lambda d: d["input"].update(
            detectedProperties={"fileSize": 1, "format": "x", "rotation": 360}
        )
    ),
    "detected: not an object": _mutated(lambda d: d["input"].update(detectedProperties="big")),
    "oversized": _mutated(lambda d: d["userMetadata"].update(pad="x" * messages.MAX_MESSAGE_BYTES)),
}


@pytest.mark.parametrize("body", BAD_JOBS.values(), ids=BAD_JOBS.keys())
def test_bad_jobs_raise_a_readable_message_error(body: str) -> None:
    with pytest.raises(MessageError) as info:
        messages.parse_job(body)
    assert not isinstance(info.value, msgspec.MsgspecError)
    message = str(info.value)
    assert message
    assert "\n" not in message


def test_messages_say_what_is_wrong() -> None:
    def error(body: str) -> str:
        with pytest.raises(MessageError) as info:
            messages.parse_job(body)
        return str(info.value)

    assert "not JSON" in error(BAD_JOBS["not json"])
    assert "jobId" in error(BAD_JOBS["missing jobId"])
    assert "version" in error(BAD_JOBS["wrong version"])
    assert "../" in error(BAD_JOBS["input key escaping via ../"])
    assert "'../../etc'" in error(BAD_JOBS["bad job id: path"])
    assert "larger" in error(BAD_JOBS["oversized"])


def test_oversized_bytes_are_rejected_before_parsing() -> None:
    body = b" " * (messages.MAX_MESSAGE_BYTES + 1)
    with pytest.raises(MessageError, match="larger"):
        messages.parse_job(body)
    with pytest.raises(MessageError, match="larger"):
        messages.parse_notification(body)


def test_invalid_utf8_is_a_message_error() -> None:
    with pytest.raises(MessageError):
        messages.parse_job(b'{"jobId": "\xff\xfe"}')


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(state="DONE"),
        lambda d: d.pop("state"),
        lambda d: d.update(jobId="a/b"),
        lambda d: d["input"].update(key="inputs/../x"),
        lambda d: d["outputs"][0].update(key="../x"),
        lambda d: d["outputs"][0].update(width="wide"),
        lambda d: d.update(logKey="inputs/job-0001/job-0001.log"),
        lambda d: d.update(logKey="outputs/job-0001/../x.log"),
        lambda d: d.update(logTail="x" * (messages.MAX_LOG_TAIL + 1)),
    ],
    ids=[
        *("bad state", "no state", "bad job id", "input key", "output key", "bad width"),
        *("log key outside outputs", "log key that climbs", "log tail too long"),
    ],
)
def test_bad_notifications_raise_message_error(change: Any) -> None:
    data = json.loads(_notification().to_json())
    change(data)
    with pytest.raises(MessageError) as info:
        messages.parse_notification(json.dumps(data))
    assert not isinstance(info.value, msgspec.MsgspecError)


# --- SNS envelopes -------------------------------------------------------------------------------


def test_unwrap_sns_accepts_a_delivery_from_our_topic() -> None:
    inner = _notification().to_json()
    assert messages.unwrap_sns(_envelope(inner), TOPIC) == inner
    assert messages.parse_notification(messages.unwrap_sns(_envelope(inner), TOPIC)) == (
        _notification()
    )


@pytest.mark.parametrize(
    "body",
    [
        _envelope("{}", TopicArn="arn:aws:sns:us-east-1:999999999999:someone-else"),
        _envelope("{}", TopicArn=None),
        _envelope("{}", Type="SubscriptionConfirmation"),
        _envelope("{}", Type="UnsubscribeConfirmation"),
        json.dumps({k: v for k, v in json.loads(_envelope("{}")).items() if k != "Message"}),
        _envelope("{}", Message={"state": "COMPLETED"}),
        _envelope("{}", Message=None),
        "[]",
        "not json",
        '"Notification"',
    ],
    ids=[
        "other topic",
        "no topic",
        "subscription confirmation",
        "unsubscribe confirmation",
        "missing Message",
        "Message not a string",
        "Message null",
        "list",
        "not json",
        "string",
    ],
)
def test_unwrap_sns_rejects_what_is_not_a_notification_from_our_topic(body: str) -> None:
    with pytest.raises(MessageError):
        messages.unwrap_sns(body, TOPIC)


def test_unwrap_sns_names_the_unexpected_topic() -> None:
    other = "arn:aws:sns:us-east-1:999999999999:someone-else"
    with pytest.raises(MessageError, match="someone-else"):
        messages.unwrap_sns(_envelope("{}", TopicArn=other), TOPIC)


# --- properties ----------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=25,
)


def _job_like() -> st.SearchStrategy[dict[str, Any]]:
    """Dicts shaped like a job, with any field replaced by arbitrary JSON or left out."""
    base = _job_dict()
    return st.fixed_dictionaries(
        {},
        optional={k: st.one_of(st.just(v), _json) for k, v in base.items()},
    )


def _key_like() -> st.SearchStrategy[dict[str, Any]]:
    prefixes = st.sampled_from(["inputs/", "outputs/", "", "/", "inputs/../", "inputs//"])
    keys = st.builds(lambda p, t: p + t, prefixes, st.text(max_size=30))
    return st.builds(
        lambda d, k1, k2: {**d, "input": {"bucket": "b", "key": k1}, "outputs": [{"key": k2}]},
        _job_like(),
        keys,
        keys,
    )


@given(st.text() | st.binary())
def test_parse_on_arbitrary_text_raises_only_message_error(body: str | bytes) -> None:
    for parse in (messages.parse_job, messages.parse_notification):
        with contextlib.suppress(MessageError):
            parse(body)


@given(_json | _job_like() | _key_like())
def test_parse_on_arbitrary_json_raises_only_message_error(value: Any) -> None:
    body = json.dumps(value)
    for parse in (messages.parse_job, messages.parse_notification):
        try:
            parsed = parse(body)
        except MessageError:
            continue
        # Whatever is accepted is safe to act on.
        assert parsed.input.key.startswith("inputs/")
        assert ".." not in parsed.input.key.split("/")


@given(_json, st.text())
def test_unwrap_sns_on_arbitrary_json_raises_only_message_error(value: Any, topic: str) -> None:
    with contextlib.suppress(MessageError):
        messages.unwrap_sns(json.dumps(value), topic)


def test_how_an_output_was_made_travels_in_camel_case_and_is_optional() -> None:
    made = OutputStatus(
        key="outputs/job-0001/clip.web-720p.mp4",
        preset_id="web-720p",
        size=10,
        action="remuxed",
        note="already h264 high: what web-720p makes",
    )
    body = json.loads(made.to_json())
    assert (body["action"], body["note"]) == ("remuxed", "already h264 high: what web-720p makes")
    assert msgspec.json.decode(made.to_json(), type=OutputStatus) == made
    older = json.loads(_notification().to_json())["outputs"][0]
    assert "action" not in older and "note" not in older
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(json.dumps({**body, "action": "burnt"}), type=OutputStatus)
