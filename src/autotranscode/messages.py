"""The two contracts between client and workers: job messages and notifications.

Both are shaped like Amazon Elastic Transcoder's (a job names an input key and a
list of outputs with preset ids; notifications carry ``state``, ``jobId``,
``input.key`` and ``outputs[]``), so tooling written for its SNS notifications
keeps working. Everything read from a queue is untrusted and goes through
``parse_job`` / ``parse_notification``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, field

from . import keys
from .errors import MessageError
from .media.probe import MediaInfo
from .stages import OutputAction

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024
#: Longest reason a notification carries; senders cut theirs to fit (receivers refuse more).
MAX_DETAIL = 4096
#: Longest end of a job's log an ERROR notification carries (characters, and UTF-8 bytes
#: as senders cut it): with MAX_OUTPUTS reasons of MAX_DETAIL it stays under SNS's limit.
MAX_LOG_TAIL = 16 * 1024
#: The ``errorCode`` of every ERROR notification.
ERROR_CODE = 4000
#: Outputs per job, as Elastic Transcoder allowed.
MAX_OUTPUTS = 30
#: ``chunkSeconds`` bounds: shorter chunks cost more than they gain (a keyframe and a job
#: each); longer than an hour is no chunking at all.
MIN_CHUNK_SECONDS = 2.0
MAX_CHUNK_SECONDS = 3600.0
#: Chunks of one file at most (a 2-hour source at the shortest chunks, with room).
MAX_CHUNKS = 9999
#: The longest source a part may point into (a week): bounds a forged part's times.
MAX_MEDIA_SECONDS = 7 * 24 * 3600.0

_Count = Annotated[int, Meta(ge=0)]
_Pixels = Annotated[int, Meta(ge=1, le=65536)]
_Codec = Annotated[str, Meta(max_length=64)]
_Id = Annotated[str, Meta(max_length=128)]
_Bucket = Annotated[str, Meta(max_length=255)]
_Arn = Annotated[str, Meta(max_length=512)]
_Detail = Annotated[str, Meta(max_length=MAX_DETAIL)]
_LogTail = Annotated[str, Meta(max_length=MAX_LOG_TAIL)]


class _Message(msgspec.Struct, frozen=True):
    """Fields go by their Python names in code and by Elastic Transcoder's in JSON. Decoding
    checks every type and limit, and ignores fields it does not know (a newer sender's)."""

    def to_json(self) -> str:
        """Fields that are None are left out, as Elastic Transcoder does."""
        plain = _without_none(msgspec.to_builtins(self))
        return json.dumps(plain, ensure_ascii=False, separators=(",", ":"))


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_without_none(v) for v in value]
    return value


class DetectedProperties(_Message, frozen=True, kw_only=True):
    """The client's probe of the input (Elastic Transcoder's ``Input.DetectedProperties``).

    A worker uses it instead of probing the file again when ``fileSize`` matches the object
    it fetched; a wrong value can only make the output check fail, never widen what runs.
    """

    file_size: _Count = field(name="fileSize")
    duration_millis: _Count | None = field(default=None, name="durationMillis")
    format_name: _Id = field(name="format")
    video_codec: _Codec | None = field(default=None, name="videoCodec")
    width: _Pixels | None = None
    height: _Pixels | None = None
    audio_codec: _Codec | None = field(default=None, name="audioCodec")
    rotation: Annotated[int, Meta(ge=0, lt=360)] = 0

    @classmethod
    def of(cls, info: MediaInfo, file_size: int) -> DetectedProperties:
        millis = round(info.duration * 1000) if info.duration is not None else None
        return cls(
            file_size=file_size,
            duration_millis=millis,
            format_name=info.format_name,
            video_codec=info.video_codec,
            width=info.width,
            height=info.height,
            audio_codec=info.audio_codec,
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


class Input(_Message, frozen=True, kw_only=True):
    bucket: _Bucket
    key: str
    detected: DetectedProperties | None = field(default=None, name="detectedProperties")

    def __post_init__(self) -> None:
        keys.check_key(self.key, keys.INPUT_PREFIX)


class JobOutput(_Message, frozen=True, kw_only=True):
    key: str
    preset_id: _Codec = field(name="presetId")
    #: A custom preset travels with its job (checked again by the worker).
    preset_spec: dict[str, Any] | None = field(default=None, name="presetSpec")

    def __post_init__(self) -> None:
        keys.check_key(self.key, keys.OUTPUT_PREFIX)


_Seconds = Annotated[float, Meta(ge=0, le=MAX_MEDIA_SECONDS)]
PartKind = Literal["chunk", "rest", "join"]


class Part(_Message, frozen=True, kw_only=True):
    """Which piece of a chunked job a job message is (``engines.parts``): a chunk's video, the
    rest (audio, subtitles, outputs made whole), or the join. Its job keeps the file's job
    id, so the client, the queues and every notice see one job; ``name`` tells the pieces
    apart (``c0007``, ``rest``, ``join``), deterministic, so a repeated split sends the same.
    Bounds are checked here; a worker also checks a part against the stored plan."""

    kind: PartKind
    index: Annotated[int, Meta(ge=0, lt=MAX_CHUNKS)] = 0
    count: Annotated[int, Meta(ge=1, le=MAX_CHUNKS)]
    start: _Seconds = 0.0
    end: _Seconds | None = None
    #: How many times a join sent this chunk back for a verification failure.
    redo: Annotated[int, Meta(ge=0, le=100)] = 0

    def __post_init__(self) -> None:
        if self.index >= self.count:
            raise ValueError(f"part index {self.index} is not below its count {self.count}")
        if self.kind != "chunk" and (self.index or self.start or self.end is not None):
            raise ValueError(f"a {self.kind} part has no index, start or end")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"a part ending at {self.end} before it starts at {self.start}")

    @property
    def name(self) -> str:
        return f"c{self.index:04d}" if self.kind == "chunk" else self.kind


class Job(_Message, frozen=True, kw_only=True):
    """A transcoding job as sent on the job queue."""

    version: int = SCHEMA_VERSION
    job_id: str = field(name="jobId")
    pipeline_id: _Id = field(name="pipelineId")
    input: Input
    output_bucket: _Bucket = field(name="outputBucket")
    outputs: Annotated[tuple[JobOutput, ...], Meta(min_length=1, max_length=MAX_OUTPUTS)]
    topic: _Arn = field(name="topicArn")
    user_metadata: dict[str, str] = field(default_factory=dict, name="userMetadata")
    #: Cut a long video into chunks of about this many seconds, each a job (``--chunk-seconds``).
    chunk_seconds: Annotated[float, Meta(ge=MIN_CHUNK_SECONDS, le=MAX_CHUNK_SECONDS)] | None = (
        field(default=None, name="chunkSeconds")
    )
    #: With ``chunkSeconds``: cuts prefer scene changes (``--chunk-scenes``).
    chunk_scenes: bool | None = field(default=None, name="chunkScenes")
    #: Set on the jobs a chunked job is split into; None on the file's own job.
    part: Part | None = None

    def __post_init__(self) -> None:
        if self.version != SCHEMA_VERSION:
            raise ValueError(f"unsupported job schema version {self.version}")
        keys.check_job_id(self.job_id)
        prefix = f"{keys.OUTPUT_PREFIX}{self.job_id}/"
        if self.part is not None and any(not o.key.startswith(prefix) for o in self.outputs):
            # A part's objects live beside its outputs: nowhere else is theirs to write.
            raise ValueError(f"a part of job {self.job_id} with outputs outside {prefix}")

    @property
    def task(self) -> str:
        """This message's own name: the job id, with the part's for a part (logs, heartbeats)."""
        return self.job_id if self.part is None else f"{self.job_id}-{self.part.name}"


class State(StrEnum):
    PROGRESSING = "PROGRESSING"
    COMPLETED = "COMPLETED"
    WARNING = "WARNING"
    ERROR = "ERROR"


#: How one output of a job stands, in Elastic Transcoder's words.
OutputState = Literal["Submitted", "Progressing", "Complete", "Canceled", "Error"]
#: What each job state allows its outputs to say: a COMPLETED job made every output; an
#: ERROR one made some (delivered) or none.
_OUTPUTS_OF: dict[State, frozenset[str]] = {
    State.COMPLETED: frozenset({"Complete"}),
    State.ERROR: frozenset({"Complete", "Error"}),
}


class OutputStatus(_Message, frozen=True, kw_only=True):
    """One output of a job as a notification tells it: ``status``, and for an "Error" one
    ``status_detail`` (why it could not be made)."""

    key: str
    preset_id: str = field(name="presetId")
    status: OutputState = "Complete"
    status_detail: _Detail | None = field(default=None, name="statusDetail")
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = field(default=None, name="fileSize")
    percent: float | None = field(default=None, name="percentComplete")
    #: The output's VMAF, measured on samples (``--quality``, ``--measure-quality``).
    vmaf: Annotated[float, Meta(ge=0, le=100)] | None = None
    #: The CRF a quality target chose for this file.
    crf: Annotated[float, Meta(ge=0, le=63)] | None = None
    #: Our own, on a made output: encoded, or remuxed (its source's streams copied).
    action: OutputAction | None = None
    #: Our own: why it was remuxed, in a few words.
    note: _Detail | None = None

    def __post_init__(self) -> None:
        keys.check_key(self.key, keys.OUTPUT_PREFIX)


class Notification(_Message, frozen=True, kw_only=True):
    """A job state change, as published on the notification topic."""

    state: State
    version: str = "2012-09-25"
    job_id: str = field(name="jobId")
    pipeline_id: str = field(name="pipelineId")
    input: Input
    output_key_prefix: str = field(default="", name="outputKeyPrefix")
    outputs: tuple[OutputStatus, ...] = ()
    error_code: int | None = field(default=None, name="errorCode")
    message_details: _Detail | None = field(default=None, name="messageDetails")
    user_metadata: dict[str, str] = field(default_factory=dict, name="userMetadata")
    #: Our own: where the worker stored the job's log (beside its outputs), when it ended.
    log_key: str | None = field(default=None, name="logKey")
    #: Our own, on ERROR: the end of the job's log (ffmpeg's words included).
    log_tail: _LogTail | None = field(default=None, name="logTail")

    def __post_init__(self) -> None:
        keys.check_job_id(self.job_id)
        if self.log_key is not None:
            keys.check_key(self.log_key, keys.OUTPUT_PREFIX)
        allowed = _OUTPUTS_OF.get(self.state)
        if allowed is not None:
            for out in self.outputs:
                if out.status not in allowed:
                    raise ValueError(
                        f"a {self.state} notification with an output in status {out.status!r}"
                    )

    @property
    def made(self) -> tuple[OutputStatus, ...]:
        """The outputs a COMPLETED or ERROR notification says were made and stored: an
        ERROR with some is a job partly done, whose other outputs say why they were not."""
        return tuple(o for o in self.outputs if o.status == "Complete")

    @property
    def reason(self) -> str:
        """The best one-line explanation an ERROR notification carries."""
        for out in self.outputs:
            if out.status_detail:
                return out.status_detail
        return self.message_details or "the job failed"


def _load(body: str | bytes) -> Any:
    _check_size(body)
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise MessageError("message is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"message is not JSON: {exc}") from exc


def _check_size(body: str | bytes) -> None:
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessageError("message is larger than any message we send")


_M = TypeVar("_M", bound=_Message)


def _decode(body: str | bytes, kind: type[_M], what: str) -> _M:
    """Decode and validate in one pass; a message that fails says where, in one line."""
    _check_size(body)
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise MessageError(f"invalid {what} ({_problem(exc)})") from exc
    except msgspec.DecodeError as exc:
        raise MessageError(f"message is not JSON: {exc}") from exc


def _problem(exc: msgspec.ValidationError) -> str:
    where, problem = located(exc)
    return f"{where}: {problem}" if where else problem


def located(exc: msgspec.ValidationError) -> tuple[str, str]:
    """``("input.key", "Expected `str`, got `int`")`` from msgspec's one-line report
    ``Expected `str`, got `int` - at `$.input.key```; the place is empty for the top."""
    problem, _, where = str(exc).partition(" - at `$")
    return where.rstrip("`").lstrip("."), problem


def parse_job(body: str | bytes) -> Job:
    return _decode(body, Job, "job message")


def parse_notification(body: str | bytes) -> Notification:
    return _decode(body, Notification, "notification")


def notification(
    state: State,
    *,
    job_id: str,
    pipeline_id: str,
    input: Input | Mapping[str, Any],
    user_metadata: Mapping[str, str],
    outputs: Sequence[OutputStatus | Mapping[str, Any]] = (),
    reason: str | None = None,
    log_key: str | None = None,
    log_tail: str | None = None,
) -> Notification:
    """The one way a notification is made (the worker's, and MediaConvert events turned into
    ours): checked as if it had been received, so what we send is what a client accepts.

    ``input`` and ``outputs`` may be plain fields by their JSON names (an event's untrusted
    values); ``reason`` makes it an ERROR's, cut to MAX_DETAIL; ``log_key`` names the job's
    stored log, ``log_tail`` is the end of it (cut to MAX_LOG_TAIL). MessageError if it does
    not check out.
    """
    fields: dict[str, Any] = {
        "state": state,
        "jobId": job_id,
        "pipelineId": pipeline_id,
        "input": input,
        "outputs": tuple(outputs),
        "userMetadata": dict(user_metadata),
    }
    if reason is not None:
        fields |= {"errorCode": ERROR_CODE, "messageDetails": reason[:MAX_DETAIL]}
    if log_key is not None:
        fields["logKey"] = log_key
    if log_tail is not None:
        fields["logTail"] = _cut_tail(log_tail)
    try:
        note: Notification = msgspec.convert(fields, Notification)
    except msgspec.ValidationError as exc:
        raise MessageError(f"invalid notification ({_problem(exc)})") from exc
    return note


def _cut_tail(text: str) -> str:
    """The last whole lines of ``text`` within MAX_LOG_TAIL UTF-8 bytes (so characters too)."""
    data = text.encode()
    if len(data) <= MAX_LOG_TAIL:
        return text
    return data[-MAX_LOG_TAIL:].decode(errors="ignore").partition("\n")[2]


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
