"""The aws backend: S3 buckets, an SQS job queue with its dead-letter queue, an SNS topic.

Everything goes through boto3 resources (buckets, objects, queues, messages,
topics and their collections) and s3transfer, so retries, multipart, checksums
and endpoint/credential resolution are boto3's, not ours. Errors from boto3
become StorageError / QueueError / ConfigError here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)

from ..errors import BackendError, ConfigError, QueueError, StorageError
from ..messages import unwrap_sns
from ..settings import Settings
from .base import Backend, MessageQueue, ObjectStore, ProgressCallback, Received, Topic

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
CLIENT_ID_FILE = "aws-client-id"
TAG_KEY = "autotranscode:deployment"
_PART = 16 * 1024 * 1024
#: A notification is handled in milliseconds; after a crash it should come back soon.
NOTIFICATION_VISIBILITY_SECONDS = 10
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # the maximum: dead letters are for a human to inspect

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},
    request_checksum_calculation="when_supported",
    response_checksum_validation="when_supported",
)
#: The first call of a start-up only proves the endpoint and credentials: a wrong
#: endpoint should fail in seconds, not after ten backed-off attempts.
_PROBE_CONFIG = _CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 3}))
_HINTS = {
    **dict.fromkeys(("AccessDenied", "AuthorizationError"), "check these credentials' permissions"),
    **dict.fromkeys(("InvalidAccessKeyId", "InvalidClientTokenId"), "check the AWS credentials"),
    "ExpiredToken": "refresh the AWS credentials (for SSO: aws sso login)",
    **dict.fromkeys(("NoSuchKey", "404"), "the object is gone (cleaned up, or expired)"),
    "NoSuchBucket": "the bucket is gone; start autotranscode again to recreate it",
    "AWS.SimpleQueueService.NonExistentQueue": "the queue is gone; start autotranscode again",
    "BucketAlreadyExists": "another account owns that bucket name; choose another --name",
}
#: Objects outlive their job only when something crashed; nothing here is kept on purpose.
_LIFECYCLE = {
    "ID": "autotranscode-leftovers",
    "Filter": {"Prefix": ""},
    "Status": "Enabled",
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    "Expiration": {"Days": 7},
}
_PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_SSE_S3 = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
_COUNTS = ("", "NotVisible", "Delayed")
_CLIENT_ID = re.compile(r"^[0-9a-f]{8,32}$")


@contextmanager
def _boundary(kind: type[BackendError], doing: str) -> Iterator[None]:
    """Turn boto3's errors into ours, each saying what failed and what to do about it."""
    try:
        yield
    except NoCredentialsError as exc:
        raise ConfigError(
            "no AWS credentials found: configure a profile (--profile / AWS_PROFILE), "
            "environment variables, or an instance role"
        ) from exc
    except EndpointConnectionError as exc:
        raise kind(
            f"{doing}: the endpoint {exc.kwargs.get('endpoint_url')} cannot be reached; "
            "check the network and --endpoint-url / AWS_ENDPOINT_URL"
        ) from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        hint = _HINTS.get(code, "try again; if it keeps failing, check the service's status")
        raise kind(f"{doing} failed ({code}: {error.get('Message', '')}); {hint}") from exc
    except (BotoCoreError, S3UploadFailedError) as exc:
        raise kind(f"{doing} failed: {exc}; try again") from exc


class S3Store(ObjectStore):
    def __init__(self, s3: Any, input_bucket: str, output_bucket: str, transfers: int) -> None:
        self._s3 = s3
        self.input_bucket = input_bucket
        self.output_bucket = output_bucket
        self._transfer = TransferConfig(
            multipart_threshold=_PART, multipart_chunksize=_PART, max_concurrency=transfers
        )

    def upload(
        self, path: Path, bucket: str, key: str, progress: ProgressCallback | None = None
    ) -> None:
        with _boundary(StorageError, f"uploading {path} to s3://{bucket}/{key}"):
            self._s3.Bucket(bucket).upload_file(
                str(path), key, Config=self._transfer, Callback=progress
            )
        log.debug("uploaded %s to s3://%s/%s", path, bucket, key)

    def put(self, path: Path, bucket: str, key: str) -> None:
        self.upload(path, bucket, key)
        path.unlink()

    def download(
        self, bucket: str, key: str, dest: Path, progress: ProgressCallback | None = None
    ) -> None:
        obj = self._s3.Object(bucket, key)
        with _boundary(StorageError, f"downloading s3://{bucket}/{key}"):
            obj.download_file(str(dest), Config=self._transfer, Callback=progress)
            expected = int(obj.content_length)
        got = dest.stat().st_size
        if got != expected:
            # A short file that looks complete is worse than none: never leave it behind.
            dest.unlink(missing_ok=True)
            raise StorageError(
                f"downloading s3://{bucket}/{key} gave {got} bytes instead of {expected}; "
                "try again (the object may have been replaced while it was read)"
            )

    @contextmanager
    def local_path(self, bucket: str, key: str, workdir: Path) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(dir=workdir, prefix=".autotranscode-") as tmp:
            # Keys come from keys.safe_name; the extension is what ffmpeg guesses formats from.
            dest = Path(tmp) / f"object{PurePosixPath(key).suffix}"
            self.download(bucket, key, dest)
            yield dest

    def size(self, bucket: str, key: str) -> int:
        with _boundary(StorageError, f"reading the size of s3://{bucket}/{key}"):
            return int(self._s3.Object(bucket, key).content_length)

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Objects and unfinished multipart uploads (a killed transfer's parts) alike."""
        with _boundary(StorageError, f"deleting s3://{bucket}/{prefix}*"):
            for upload in self._s3.Bucket(bucket).multipart_uploads.filter(Prefix=prefix):
                upload.abort()
            responses = self._s3.Bucket(bucket).objects.filter(Prefix=prefix).delete()
        deleted = sum(len(r.get("Deleted", [])) for r in responses)
        errors = [e for r in responses for e in r.get("Errors", [])]
        if errors:
            raise StorageError(
                f"deleting s3://{bucket}/{prefix}*: {len(errors)} objects were not deleted "
                f"({errors[0].get('Code')}); try again"
            )
        log.debug("deleted %s objects under s3://%s/%s", deleted, bucket, prefix)
        return deleted

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        with _boundary(StorageError, f"listing s3://{bucket}/{prefix}*"):
            return [str(o.key) for o in self._s3.Bucket(bucket).objects.filter(Prefix=prefix)]


class SqsQueue(MessageQueue):
    def __init__(self, queue: Any, name: str) -> None:
        self._queue = queue
        self.name = name

    @property
    def arn(self) -> str:
        with _boundary(QueueError, f"reading the ARN of {self.name}"):
            return str(self._queue.attributes["QueueArn"])

    def send(self, body: str) -> None:
        with _boundary(QueueError, f"sending a message to {self.name}"):
            self._queue.send_message(MessageBody=body)

    def receive(
        self, wait: float, max_messages: int = 1, cancel: threading.Event | None = None
    ) -> list[Received]:
        """A long poll in flight cannot be aborted: ``cancel`` is honoured before it starts."""
        if cancel is not None and cancel.is_set():
            return []
        with _boundary(QueueError, f"receiving from {self.name}"):
            messages = self._queue.receive_messages(
                WaitTimeSeconds=int(min(max(wait, 0), 20)),
                MaxNumberOfMessages=min(max(max_messages, 1), 10),
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        return [
            Received(
                body=str(m.body),
                receipt=str(m.receipt_handle),
                receive_count=int((m.attributes or {}).get("ApproximateReceiveCount", 1)),
            )
            for m in messages
        ]

    def extend(self, message: Received, seconds: float) -> None:
        with _boundary(QueueError, f"changing the lease of a message on {self.name}"):
            self._queue.Message(message.receipt).change_visibility(
                VisibilityTimeout=int(min(max(seconds, 0), 43200))
            )

    def release(self, message: Received) -> None:
        self.extend(message, 0)

    def delete(self, message: Received) -> None:
        with _boundary(QueueError, f"deleting a message from {self.name}"):
            self._queue.Message(message.receipt).delete()

    def count(self) -> int:
        with _boundary(QueueError, f"counting the messages in {self.name}"):
            self._queue.reload()  # resources cache attributes from their first load
            attrs = self._queue.attributes
        return sum(int(attrs.get(f"ApproximateNumberOfMessages{s}", 0)) for s in _COUNTS)


class SnsTopic(Topic):
    def __init__(self, topic: Any) -> None:
        self._topic = topic
        self.arn = str(topic.arn)

    def publish(self, body: str) -> None:
        with _boundary(QueueError, f"publishing on {self.arn}"):
            self._topic.publish(Message=body)

    def subscribe_queue(self, queue_arn: str) -> None:
        """Idempotent; not raw delivery, as the envelope's TopicArn is how we check the source."""
        with _boundary(QueueError, f"subscribing {queue_arn} to {self.arn}"):
            self._topic.subscribe(Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True)


def _ensure_bucket(s3: Any, bucket_name: str, region: str, deployment: str) -> None:
    bucket = s3.Bucket(bucket_name)
    with _boundary(StorageError, f"creating bucket {bucket_name}"):
        try:
            if region == "us-east-1":  # the one region that rejects its own LocationConstraint
                bucket.create()
            else:
                bucket.create(CreateBucketConfiguration={"LocationConstraint": region})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
        # Bucket resources have no sub-resource for these two; their client has the actions.
        client = s3.meta.client
        client.put_public_access_block(
            Bucket=bucket_name, PublicAccessBlockConfiguration=_PUBLIC_ACCESS_BLOCK
        )
        client.put_bucket_encryption(Bucket=bucket_name, ServerSideEncryptionConfiguration=_SSE_S3)
        bucket.LifecycleConfiguration().put(LifecycleConfiguration={"Rules": [_LIFECYCLE]})
        bucket.Tagging().put(Tagging={"TagSet": [{"Key": TAG_KEY, "Value": deployment}]})


def _ensure_queue(sqs: Any, name: str, attributes: dict[str, str], deployment: str) -> SqsQueue:
    """Create the queue, or bring an existing one's attributes in line with the settings."""
    with _boundary(QueueError, f"creating queue {name}"):
        try:
            queue = sqs.create_queue(
                QueueName=name, Attributes=attributes, tags={TAG_KEY: deployment}
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("QueueAlreadyExists", "AWS.SimpleQueueService.QueueNameExists"):
                raise
            queue = sqs.get_queue_by_name(QueueName=name)
            queue.set_attributes(Attributes=attributes)
            log.info("updated the attributes of queue %s", name)
    return SqsQueue(queue, name)


def _topic_only_policy(queue_arn: str, topic_arn: str) -> str:
    statement = {
        "Sid": "OnlyOurTopic",
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _client_id(state_dir: Path) -> str:
    """This client's id, kept across runs so it finds its notification queue again."""
    path = state_dir / CLIENT_ID_FILE
    existing = path.read_text().strip() if path.exists() else ""
    if _CLIENT_ID.match(existing):
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    new = secrets.token_hex(4)
    path.write_text(new + "\n")
    return new


class AwsBackend(Backend):
    kind = "aws"

    def __init__(
        self,
        settings: Settings,
        sqs: Any,
        store: S3Store,
        jobs: SqsQueue,
        dlq: SqsQueue,
        topic: Any,
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs: SqsQueue = jobs
        self.dead_letters = dlq
        self.topic: SnsTopic = SnsTopic(topic)
        self._sqs = sqs
        self._notifications: MessageQueue | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsBackend:
        """Connect, and create whatever is missing, so any start is also a repair."""
        try:
            session = boto3.Session(profile_name=settings.profile, region_name=settings.region)
        except ProfileNotFound as exc:
            raise ConfigError(f"AWS profile {settings.profile!r} is not configured") from exc
        region = str(session.region_name or DEFAULT_REGION)
        extra: dict[str, Any] = {"region_name": region}
        if settings.endpoint_url:
            extra["endpoint_url"] = settings.endpoint_url
        with _boundary(BackendError, "checking the AWS credentials (sts:GetCallerIdentity)"):
            sts = session.client("sts", config=_PROBE_CONFIG, **extra)
            account = str(sts.get_caller_identity()["Account"])
            # Concurrent transfers, each in `transfers` parts: one pooled connection per thread.
            pool = Config(max_pool_connections=max(10, settings.transfers**2))
            s3 = session.resource("s3", config=_CONFIG.merge(pool), **extra)
            sqs = session.resource("sqs", config=_CONFIG, **extra)
            sns = session.resource("sns", config=_CONFIG, **extra)
        name = settings.name
        buckets = [f"{name}-{role}-{account}-{region}" for role in ("in", "out")]
        for bucket in buckets:
            _ensure_bucket(s3, bucket, region, name)
        dlq = _ensure_queue(
            sqs, f"{name}-jobs-dlq", {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}, name
        )
        # One receive more than the attempts: the worker that sees it reports the failure,
        # so the client hears of it; SQS's redrive is the backstop if no worker ever can.
        redrive = {
            "deadLetterTargetArn": dlq.arn,
            "maxReceiveCount": str(settings.max_attempts + 1),
        }
        attributes = {
            "VisibilityTimeout": str(settings.visibility_timeout),
            "RedrivePolicy": json.dumps(redrive),
        }
        jobs = _ensure_queue(sqs, f"{name}-jobs", attributes, name)
        with _boundary(QueueError, f"creating topic {name}-notifications"):
            sns_topic = sns.create_topic(
                Name=f"{name}-notifications", Tags=[{"Key": TAG_KEY, "Value": name}]
            )
        log.info("aws backend %s ready in account %s, %s", name, account, region)
        store = S3Store(s3, buckets[0], buckets[1], settings.transfers)
        return cls(settings, sqs, store, jobs, dlq, sns_topic)

    @property
    def notifications(self) -> MessageQueue:
        """Created on first use, so worker processes never leave client queues behind."""
        with self._lock:
            if self._notifications is None:
                self._notifications = self._open_client_queue()
            return self._notifications

    @notifications.setter
    def notifications(self, queue: MessageQueue) -> None:
        self._notifications = queue

    def _open_client_queue(self) -> SqsQueue:
        name = f"{self.settings.name}-client-{_client_id(self.settings.state_dir)}"
        # A sibling of the job queue: same partition, region and account, so the same ARN prefix.
        arn = f"{self.jobs.arn.rpartition(':')[0]}:{name}"
        policy = _topic_only_policy(arn, self.topic.arn)
        attributes = {"Policy": policy, "VisibilityTimeout": str(NOTIFICATION_VISIBILITY_SECONDS)}
        queue = _ensure_queue(self._sqs, name, attributes, self.settings.name)
        self.topic.subscribe_queue(queue.arn)
        log.info("notification queue %s subscribed to %s", name, self.topic.arn)
        return queue

    def open_notification(self, body: str) -> str:
        return unwrap_sns(body, self.topic.arn)
