"""AWS Elemental MediaConvert as the engine: the managed alternative to our workers.

Presets become CreateJob settings; MediaConvert reads the input from our input
bucket and writes each output to the key the pipeline chose, with a service role
scoped to those buckets. Its "MediaConvert Job State Change" events reach the
client's notification queue through an EventBridge rule that matches this
client's id in the job's userMetadata, and ``read`` turns them into our
notifications, so the pipeline cannot tell MediaConvert from a worker.

What only our workers do is refused up front (``check_presets``), never silently
dropped: a VMAF target and VMAF scores (MediaConvert encodes at its own QVBR level and
scores nothing; mapping ``vmaf:93`` onto a QVBR level would promise a quality nobody
measured, and the outcome would have no VMAF to show). A preset's ``remux`` has no
equivalent either: MediaConvert always encodes, a conforming source too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import keys
from ..backends.aws.api import Connection, Names, boundary, tag_list
from ..errors import ConfigError, MediaError, MessageError, QueueError
from ..media import presets
from ..media.probe import MediaInfo
from ..messages import Job, Notification, State, notification
from .base import Engine

log = logging.getLogger(__name__)

EVENT_SOURCE = "aws.mediaconvert"
EVENT_DETAIL_TYPE = "MediaConvert Job State Change"
#: userMetadata keys: MediaConvert carries them into every event of the job.
META_JOB = "autotranscodeJobId"
META_CLIENT = "autotranscodeClient"
META_INPUT = "autotranscodeInput"
META_PIPELINE = "autotranscodePipeline"
#: Quality-defined VBR: MediaConvert's recommended rate control; 7 is its web default.
QVBR_QUALITY = 7

_VIDEO_CODECS = {"libx264": "H_264"}
_AUDIO_CODECS = {"aac": "AAC"}


def check_presets(chosen: Iterable[presets.Preset]) -> None:
    """ConfigError for a preset asking what only our workers do (see the module); called
    when the engine opens, before any job, and for each job's outputs."""
    for preset in chosen:
        asks = [
            *(["a VMAF target (quality)"] if preset.quality is not None else []),
            *(["VMAF scores (measure_quality)"] if preset.measure_quality else []),
        ]
        if asks:
            raise ConfigError(
                f"preset {preset.id}: MediaConvert cannot do {' or '.join(asks)}: it encodes "
                f"at its own quality level (QVBR {QVBR_QUALITY}) and measures no VMAF; use "
                "--engine workers for these, or leave out --quality/--measure-quality (and "
                "quality/measure_quality in the preset) to use MediaConvert"
            )


def event_pattern(client_id: str) -> dict[str, Any]:
    """The EventBridge pattern for this client's MediaConvert jobs."""
    return {
        "source": [EVENT_SOURCE],
        "detail-type": [EVENT_DETAIL_TYPE],
        "detail": {"userMetadata": {META_CLIENT: [client_id]}},
    }


def job_request(
    job: Job,
    source: MediaInfo,
    role_arn: str,
    client_id: str,
    queue_arn: str | None = None,
    catalog: presets.Catalog = presets.DEFAULT_CATALOG,
) -> dict[str, Any]:
    """CreateJob's arguments: one file group per output, so each lands on its own key;
    the job's preset ids are looked up in ``catalog``."""
    inp: dict[str, Any] = {
        "FileInput": f"s3://{job.input.bucket}/{job.input.key}",
        "TimecodeSource": "ZEROBASED",
    }
    if source.has_video:
        inp["VideoSelector"] = {}
    if source.has_audio:
        inp["AudioSelectors"] = {"Audio Selector 1": {"DefaultSelection": "DEFAULT"}}
    chosen = [catalog.get(out.preset_id) for out in job.outputs]
    check_presets(chosen)
    groups = [
        _output_group(job.output_bucket, out.key, preset, source)
        for out, preset in zip(job.outputs, chosen, strict=True)
    ]
    request: dict[str, Any] = {
        "Role": role_arn,
        "Settings": {"Inputs": [inp], "OutputGroups": groups},
        "UserMetadata": {
            META_JOB: job.job_id,
            META_CLIENT: client_id,
            META_INPUT: job.input.key,
            META_PIPELINE: job.pipeline_id,
            **{k: v for k, v in job.user_metadata.items() if k in ("fileId",)},
        },
        "StatusUpdateInterval": "SECONDS_10",
        # A retried submit (after a crash) must not start the same job twice.
        "ClientRequestToken": job.job_id,
    }
    if queue_arn:
        request["Queue"] = queue_arn
    if job.chunk_seconds is not None:
        # --chunk-seconds asks for one file across many machines: MediaConvert's own
        # accelerated transcoding does that (its split, its chunk size), where the job is
        # eligible (long enough, supported outputs); PREFERRED runs the others as usual.
        request["AccelerationSettings"] = {"Mode": "PREFERRED"}
    return request


def _output_group(
    bucket: str, key: str, preset: presets.Preset, source: MediaInfo
) -> dict[str, Any]:
    base, _, extension = key.rpartition(".")
    output: dict[str, Any] = {
        "Extension": extension,
        "ContainerSettings": {
            "Container": "MP4",
            "Mp4Settings": {
                "MoovPlacement": "PROGRESSIVE_DOWNLOAD" if preset.faststart else "NORMAL"
            },
        },
    }
    if not preset.audio_only:
        if not source.has_video:
            raise MediaError(f"preset {preset.id} needs a video stream and the input has none")
        codec = _VIDEO_CODECS.get(preset.video_codec or "")
        if codec is None:
            raise ConfigError(
                f"preset {preset.id} cannot run on MediaConvert ({preset.video_codec})"
            )
        height = preset.output_height(source) or 0
        width = _even(round((source.width or 0) * height / (source.height or height or 1)))
        h264: dict[str, Any] = {
            "RateControlMode": "QVBR",
            "QvbrSettings": {"QvbrQualityLevel": QVBR_QUALITY},
            "CodecProfile": "HIGH",
            "SceneChangeDetect": "TRANSITION_DETECTION",
            "QualityTuningLevel": "SINGLE_PASS_HQ",
        }
        if preset.max_bitrate_k:
            h264["MaxBitrate"] = preset.max_bitrate_k * 1000
        output["VideoDescription"] = {
            "Width": width,
            "Height": height,
            "ScalingBehavior": "DEFAULT",
            "CodecSettings": {"Codec": codec, "H264Settings": h264},
        }
    elif not source.has_audio:
        raise MediaError(f"preset {preset.id} needs an audio stream and the input has none")
    if source.has_audio and preset.audio_codec:
        output["AudioDescriptions"] = [
            {
                "AudioSourceName": "Audio Selector 1",
                "CodecSettings": {
                    "Codec": _AUDIO_CODECS[preset.audio_codec],
                    "AacSettings": {
                        "Bitrate": preset.audio_bitrate_k * 1000,
                        "CodingMode": "CODING_MODE_2_0",
                        "SampleRate": 48000,
                    },
                },
            }
        ]
    return {
        "Name": preset.id,
        "OutputGroupSettings": {
            "Type": "FILE_GROUP_SETTINGS",
            # MediaConvert appends ".<Extension>" to this base name.
            "FileGroupSettings": {"Destination": f"s3://{bucket}/{base}"},
        },
        "Outputs": [output],
    }


def _even(n: int) -> int:
    return max(2, n - n % 2)


def parse_event(body: str, *, account: str, client_id: str, output_bucket: str) -> Notification:
    """A MediaConvert Job State Change event, checked and turned into our notification."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"event is not JSON: {exc}") from exc
    if not isinstance(event, dict) or event.get("source") != EVENT_SOURCE:
        raise MessageError("not a MediaConvert event")
    if event.get("detail-type") != EVENT_DETAIL_TYPE:
        raise MessageError("MediaConvert event of another kind")
    # EventBridge always names the account (emulators may not); the queue policy admits
    # only our rule, so this is a second check, not the first.
    if event.get("account", account) != account:
        raise MessageError("MediaConvert event from another account")
    detail = event.get("detail")
    meta = detail.get("userMetadata") if isinstance(detail, dict) else None
    if not isinstance(detail, dict) or not isinstance(meta, dict):
        raise MessageError("MediaConvert event without detail.userMetadata")
    if meta.get(META_CLIENT) != client_id or not meta.get(META_JOB):
        raise MessageError("MediaConvert event for another client")
    status = detail.get("status")
    # Checked as if received (``notification``): an event's values are untrusted.
    base: dict[str, Any] = {
        "job_id": meta[META_JOB],
        "pipeline_id": str(meta.get(META_PIPELINE, "")),
        "input": {"bucket": "mediaconvert", "key": str(meta.get(META_INPUT, ""))},
        "user_metadata": {k: str(v) for k, v in meta.items()},
    }
    try:
        return _notification(status, detail, base, output_bucket)
    except (AttributeError, TypeError, ValueError) as exc:  # a field of an unexpected shape
        raise MessageError(f"malformed MediaConvert event: {exc}") from exc


def _notification(
    status: object, detail: dict[str, Any], base: dict[str, Any], output_bucket: str
) -> Notification:
    if status == "COMPLETE":
        return notification(State.COMPLETED, outputs=_outputs(detail, output_bucket), **base)
    if status == "ERROR":
        reason = f"MediaConvert error {detail.get('errorCode')}: {detail.get('errorMessage')}"
        return notification(State.ERROR, reason=reason, **base)
    if status in ("PROGRESSING", "STATUS_UPDATE", "INPUT_INFORMATION", "SUBMITTED"):
        progress = detail.get("jobProgress") or {}
        percent = float(progress.get("jobPercentComplete", 0) or 0)
        metadata = {**base["user_metadata"], "percent": f"{percent:.1f}"}
        return notification(State.PROGRESSING, **{**base, "user_metadata": metadata})
    raise MessageError(f"MediaConvert status {status!r} is not one we act on")


def _outputs(detail: dict[str, Any], output_bucket: str) -> list[dict[str, Any]]:
    found = []
    prefix = f"s3://{output_bucket}/"
    for group in detail.get("outputGroupDetails") or []:
        for out in group.get("outputDetails") or []:
            for path in out.get("outputFilePaths") or []:
                if not isinstance(path, str) or not path.startswith(prefix):
                    raise MessageError(f"MediaConvert wrote outside our output bucket: {path!r}")
                key = keys.check_key(path.removeprefix(prefix), keys.OUTPUT_PREFIX)
                video = out.get("videoDetails") or {}
                preset_id = key.rsplit(".", 2)[-2] if key.count(".") >= 2 else "mediaconvert"
                found.append(
                    {
                        "key": key,
                        "presetId": preset_id,
                        "status": "Complete",
                        "duration": (out.get("durationInMs") or 0) / 1000 or None,
                        "width": video.get("widthInPx"),
                        "height": video.get("heightInPx"),
                    }
                )
    return found


class MediaConvertEngine(Engine):
    name = "mediaconvert"

    def __init__(
        self,
        client: Any,
        *,
        role_arn: str,
        client_id: str,
        account: str,
        output_bucket: str,
        queue_arn: str | None = None,
        catalog: presets.Catalog = presets.DEFAULT_CATALOG,
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.role_arn = role_arn
        self.client_id = client_id
        self.account = account
        self.output_bucket = output_bucket
        self.queue_arn = queue_arn

    def submit(self, job: Job, source: MediaInfo) -> None:
        request = job_request(
            job, source, self.role_arn, self.client_id, self.queue_arn, self.catalog
        )
        try:
            response = self.client.create_job(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = f"MediaConvert refused job {job.job_id} ({code}: {error.get('Message', '')})"
            if code in ("BadRequestException", "ForbiddenException", "NotFoundException"):
                raise ConfigError(f"{message}; check the role and the preset") from exc
            raise QueueError(f"{message}; it will be retried") from exc
        except BotoCoreError as exc:
            raise QueueError(f"cannot reach MediaConvert: {exc}; it will be retried") from exc
        log.info("MediaConvert job %s started for %s", response["Job"]["Id"], job.job_id)

    def read(self, body: str) -> Notification:
        return parse_event(
            body, account=self.account, client_id=self.client_id, output_bucket=self.output_bucket
        )


# -- routing MediaConvert's events to the client ---------------------------------------------------


def ensure_rule(events: Any, names: Names, client_id: str, queue_arn: str) -> str:
    """The EventBridge rule that sends this client's job events to its queue; the rule's ARN."""
    rule = names.mediaconvert_rule(client_id)
    arn = events.put_rule(
        Name=rule,
        EventPattern=json.dumps(event_pattern(client_id)),
        State="ENABLED",
        Description="autotranscode: MediaConvert job state changes for one client",
        Tags=tag_list(names.tag),
    )["RuleArn"]
    events.put_targets(Rule=rule, Targets=[{"Id": "notifications", "Arn": queue_arn}])
    return str(arn)


def route_events(connection: Connection, client_id: str, queue_arn: str) -> None:
    """Point this client's rule at its notification queue (``AwsBackend.open_notifications``
    calls it whenever that queue is created or found)."""
    with boundary(QueueError, "routing MediaConvert events to the notification queue"):
        ensure_rule(connection.client("events"), connection.names, client_id, queue_arn)
