"""The two contracts between client and workers: job messages and notifications.

Both are shaped like Amazon Elastic Transcoder's (a job names an input key and a
list of outputs with preset ids; notifications carry ``state``, ``jobId``,
``input.key`` and ``outputs[]``), so tooling written for its SNS notifications
keeps working. Everything read from a queue is untrusted and goes through
``parse_job`` / ``parse_notification``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import keys
from .errors import MessageError
from .media import MediaInfo

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class DetectedProperties(_Model):
    """The client's probe of the input (Elastic Transcoder's ``Input.DetectedProperties``).

    A worker uses it instead of probing the file again when ``fileSize`` matches the object
    it fetched; a wrong value can only make the output check fail, never widen what runs.
    """

    file_size: int = Field(alias="fileSize", ge=0)
    duration_millis: int | None = Field(default=None, alias="durationMillis", ge=0)
    format_name: str = Field(alias="format", max_length=128)
    video_codec: str | None = Field(default=None, alias="videoCodec", max_length=64)
    width: int | None = Field(default=None, ge=1, le=65536)
    height: int | None = Field(default=None, ge=1, le=65536)
    audio_codec: str | None = Field(default=None, alias="audioCodec", max_length=64)
    rotation: int = Field(default=0, ge=0, lt=360)

    @classmethod
    def of(cls, info: MediaInfo, file_size: int) -> DetectedProperties:
        millis = round(info.duration * 1000) if info.duration is not None else None
        return cls(
            fileSize=file_size,
            durationMillis=millis,
            format=info.format_name,
            videoCodec=info.video_codec,
            width=info.width,
            height=info.height,
            audioCodec=info.audio_codec,
            rotation=info.rotation % 360,
        )

    def media_info(self) -> MediaInfo:
        return MediaInfo(
            duration=self.duration_millis / 1000 if self.duration_millis is not None else None,
            format_name=self.format_name,
            video_codec=self.video_codec,
            width=self.width,
            height=self.height,
            audio_codec=self.audio_codec,
            rotation=self.rotation,
        )


class Input(_Model):
    bucket: str = Field(max_length=255)
    key: str
    detected: DetectedProperties | None = Field(default=None, alias="detectedProperties")

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        return keys.check_key(v, keys.INPUT_PREFIX)


class JobOutput(_Model):
    key: str
    preset_id: str = Field(alias="presetId", max_length=64)
    #: A custom preset travels with its job (checked again by the worker).
    preset_spec: dict[str, Any] | None = Field(default=None, alias="presetSpec")

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        return keys.check_key(v, keys.OUTPUT_PREFIX)


class Job(_Model):
    """A transcoding job as sent on the job queue."""

    version: int = SCHEMA_VERSION
    job_id: str = Field(alias="jobId")
    pipeline_id: str = Field(alias="pipelineId", max_length=128)
    input: Input
    output_bucket: str = Field(alias="outputBucket", max_length=255)
    outputs: tuple[JobOutput, ...] = Field(min_length=1, max_length=30)
    topic: str = Field(alias="topicArn", max_length=512)
    user_metadata: dict[str, str] = Field(default_factory=dict, alias="userMetadata")

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, v: str) -> str:
        return keys.check_job_id(v)

    @field_validator("version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"unsupported job schema version {v}")
        return v

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class State(StrEnum):
    PROGRESSING = "PROGRESSING"
    COMPLETED = "COMPLETED"
    WARNING = "WARNING"
    ERROR = "ERROR"


class OutputStatus(_Model):
    key: str
    preset_id: str = Field(alias="presetId")
    status: str = "Complete"
    status_detail: str | None = Field(default=None, alias="statusDetail", max_length=4096)
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = Field(default=None, alias="fileSize")
    percent: float | None = Field(default=None, alias="percentComplete")

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        return keys.check_key(v, keys.OUTPUT_PREFIX)


class Notification(_Model):
    """A job state change, as published on the notification topic."""

    state: State
    version: str = "2012-09-25"
    job_id: str = Field(alias="jobId")
    pipeline_id: str = Field(alias="pipelineId")
    input: Input
    output_key_prefix: str = Field(default="", alias="outputKeyPrefix")
    outputs: tuple[OutputStatus, ...] = ()
    error_code: int | None = Field(default=None, alias="errorCode")
    message_details: str | None = Field(default=None, alias="messageDetails", max_length=4096)
    user_metadata: dict[str, str] = Field(default_factory=dict, alias="userMetadata")

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, v: str) -> str:
        return keys.check_job_id(v)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @property
    def reason(self) -> str:
        """The best one-line explanation an ERROR notification carries."""
        for out in self.outputs:
            if out.status_detail:
                return out.status_detail
        return self.message_details or "the job failed"


def _load(body: str | bytes) -> Any:
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessageError("message is larger than any message we send")
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise MessageError("message is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"message is not JSON: {exc}") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "message"
    return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"


def parse_job(body: str | bytes) -> Job:
    try:
        return Job.model_validate(_load(body))
    except ValidationError as exc:
        raise MessageError(f"invalid job message ({_first_error(exc)})") from exc


def parse_notification(body: str | bytes) -> Notification:
    try:
        return Notification.model_validate(_load(body))
    except ValidationError as exc:
        raise MessageError(f"invalid notification ({_first_error(exc)})") from exc


def unwrap_sns(body: str | bytes, topic_arn: str) -> str:
    """The inner message of an SNS → SQS delivery, if it came from ``topic_arn``."""
    envelope = _load(body)
    if not isinstance(envelope, dict) or envelope.get("Type") != "Notification":
        raise MessageError("not an SNS notification envelope")
    if envelope.get("TopicArn") != topic_arn:
        raise MessageError(f"notification from unexpected topic {envelope.get('TopicArn')!r}")
    message = envelope.get("Message")
    if not isinstance(message, str):
        raise MessageError("SNS envelope has no Message")
    return message
