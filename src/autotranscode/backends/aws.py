"""The aws backend: S3 buckets, an SQS job queue with its dead-letter queue, an SNS topic.

Everything goes through boto3 resources (buckets, objects, queues, messages,
topics and their collections) and s3transfer, so retries, multipart, checksums
and endpoint/credential resolution are boto3's, not ours. Errors from boto3
become StorageError / QueueError / ConfigError here (and in ``cloud``, through
``_boundary``) and nowhere else.

At run time the backend only looks its resources up, which the least-privilege
client and worker policies allow (``cloud.iam_policy``); creating them is
``cloud.setup``'s job, called from here only when something is missing and the
caller may create (clients do, workers do not).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

from ..errors import BackendError, ConfigError, ObjectMissing, QueueError, StorageError
from ..messages import unwrap_sns
from ..settings import Settings
from .base import Backend, MessageQueue, ObjectStore, ProgressCallback, Received, Topic

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
CLIENT_ID_FILE = "aws-client-id"
TAG_KEY = "autotranscode:deployment"
#: Upload parts: the AWS CLI's and s3transfer's size; on moto as fast as 16 MiB at 1 GB,
#: with half the buffers. Downloads use bigger ranges: fewer GETs for the same bytes.
_UPLOAD_PART = 8 * 1024 * 1024
_DOWNLOAD_PART = 16 * 1024 * 1024
#: Parts of one upload in flight at once (the CLI has 10): at 1 GB on moto, 8 moved ~30 %
#: more than 4 did. Downloads keep ``transfers`` ranges, already twice the CLI's speed.
_UPLOAD_PARTS_IN_FLIGHT = 8
_IO_QUEUE = 16
_IO_CHUNK = 64 * 1024
#: A notification is handled in milliseconds; after a crash it should come back soon.
NOTIFICATION_VISIBILITY_SECONDS = 10

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
    "NoSuchBucket": "the bucket is gone; run `autotranscode setup` to recreate it",
    "AWS.SimpleQueueService.NonExistentQueue": "the queue is gone; run `autotranscode setup`",
    "BucketAlreadyExists": "another account owns that bucket name; choose another --name",
}
_COUNTS = ("", "NotVisible", "Delayed")
_NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
_QUEUE_EXISTS = ("QueueAlreadyExists", "AWS.SimpleQueueService.QueueNameExists")
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
        if kind is StorageError and code in ("NoSuchKey", "404"):
            kind = ObjectMissing  # retrying cannot bring it back
        raise kind(f"{doing} failed ({code}: {error.get('Message', '')}); {hint}") from exc
    except (BotoCoreError, S3UploadFailedError) as exc:
        raise kind(f"{doing} failed: {exc}; try again") from exc


class S3Store(ObjectStore):
    def __init__(self, s3: Any, input_bucket: str, output_bucket: str, transfers: int) -> None:
        self._s3 = s3
        self.input_bucket = input_bucket
        self.output_bucket = output_bucket
        self._upload = TransferConfig(
            multipart_threshold=_UPLOAD_PART,
            multipart_chunksize=_UPLOAD_PART,
            max_concurrency=max(transfers, _UPLOAD_PARTS_IN_FLIGHT),
        )
        self._download = TransferConfig(
            multipart_threshold=_DOWNLOAD_PART,
            multipart_chunksize=_DOWNLOAD_PART,
            max_concurrency=transfers,
            # At most this many received chunks wait for the disk. s3transfer's default
            # (100 x 256 KiB) let memory grow with the file while writes lagged.
            max_io_queue=_IO_QUEUE,
            io_chunksize=_IO_CHUNK,
        )

    def upload(
        self, path: Path, bucket: str, key: str, progress: ProgressCallback | None = None
    ) -> None:
        with _boundary(StorageError, f"uploading {path} to s3://{bucket}/{key}"):
            self._s3.Bucket(bucket).upload_file(
                str(path), key, Config=self._upload, Callback=progress
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
            obj.download_file(str(dest), Config=self._download, Callback=progress)
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
    """An SQS queue. ``reopen``, where given, recreates the queue if it is gone (a client's
    own notification queue: deleted by hand, or an endpoint that restarted empty)."""

    def __init__(self, queue: Any, name: str, reopen: Callable[[], Any] | None = None) -> None:
        self._queue = queue
        self.name = name
        self._reopen = reopen

    @property
    def arn(self) -> str:
        with _boundary(QueueError, f"reading the ARN of {self.name}"):
            return str(self._queue.attributes["QueueArn"])

    def send(self, body: str, reason: str | None = None) -> None:
        attributes = {}
        if reason:
            attributes[_REASON] = {"DataType": "String", "StringValue": reason[:_MAX_REASON]}
        self._send(body, attributes)

    def _send(self, body: str, attributes: dict[str, Any]) -> None:
        with _boundary(QueueError, f"sending a message to {self.name}"):
            self._queue.send_message(MessageBody=body, MessageAttributes=attributes)

    def receive(
        self, wait: float, max_messages: int = 1, cancel: threading.Event | None = None
    ) -> list[Received]:
        """A long poll in flight cannot be aborted: ``cancel`` is honoured before it starts."""
        if cancel is not None and cancel.is_set():
            return []
        try:
            messages = self._receive(wait, max_messages)
        except QueueError as exc:
            if self._reopen is None or not _queue_gone(exc):
                raise
            log.warning("queue %s is gone; creating it again", self.name)
            with _boundary(QueueError, f"creating queue {self.name} again"):
                self._queue = self._reopen()
            messages = self._receive(wait, max_messages)
        return [
            Received(
                body=str(m.body),
                receipt=str(m.receipt_handle),
                # Attempts a hand-back carried over (SQS cannot lower its own count).
                receive_count=int((m.attributes or {}).get("ApproximateReceiveCount", 1))
                + _int(_attribute(m, _ATTEMPTS)),
                note=_attribute(m, _REASON),
            )
            for m in messages
        ]

    def _receive(self, wait: float, max_messages: int) -> list[Any]:
        with _boundary(QueueError, f"receiving from {self.name}"):
            return list(
                self._queue.receive_messages(
                    WaitTimeSeconds=int(min(max(wait, 0), 20)),
                    MaxNumberOfMessages=min(max(max_messages, 1), 10),
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                    MessageAttributeNames=[_ATTEMPTS, _REASON],
                )
            )

    def extend(self, message: Received, seconds: float) -> None:
        with _boundary(QueueError, f"changing the lease of a message on {self.name}"):
            self._queue.Message(message.receipt).change_visibility(
                VisibilityTimeout=int(min(max(seconds, 0), 43200))
            )

    def release(self, message: Received) -> None:
        self.extend(message, 0)

    def hand_back(self, message: Received) -> None:
        """SQS cannot lower a message's receive count: a copy goes back carrying the attempts
        made so far (this receive not among them), then the original is deleted. A crash in
        between leaves both; the job is then done twice, which workers and clients allow."""
        attributes: dict[str, Any] = {
            _ATTEMPTS: {"DataType": "Number", "StringValue": str(max(message.receive_count - 1, 0))}
        }
        if message.note:
            attributes[_REASON] = {"DataType": "String", "StringValue": message.note}
        self._send(message.body, attributes)
        self.delete(message)

    def delete(self, message: Received) -> None:
        with _boundary(QueueError, f"deleting a message from {self.name}"):
            self._queue.Message(message.receipt).delete()

    def count(self) -> int:
        with _boundary(QueueError, f"counting the messages in {self.name}"):
            self._queue.reload()  # resources cache attributes from their first load
            attrs = self._queue.attributes
        return sum(int(attrs.get(f"ApproximateNumberOfMessages{s}", 0)) for s in _COUNTS)


#: Message attributes: attempts carried over by a hand-back; why a message is where it is.
_ATTEMPTS = "attempts"
_REASON = "reason"
_MAX_REASON = 4096
#: The message attribute notifications carry and subscriptions filter on.
CLIENT_ATTRIBUTE = "client"


def _attribute(message: Any, name: str) -> str | None:
    value = (message.message_attributes or {}).get(name, {}).get("StringValue")
    return None if value is None else str(value)


def _int(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


def _queue_gone(exc: QueueError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, ClientError) and _error_code(cause) in _NO_QUEUE


class SnsTopic(Topic):
    def __init__(self, topic: Any) -> None:
        self._topic = topic
        self.arn = str(topic.arn)

    def publish(self, body: str, client: str | None = None) -> None:
        attributes = {}
        if client:
            attributes[CLIENT_ATTRIBUTE] = {"DataType": "String", "StringValue": client}
        with _boundary(QueueError, f"publishing on {self.arn}"):
            self._topic.publish(Message=body, MessageAttributes=attributes)

    def subscribe_queue(self, queue_arn: str, client: str | None = None) -> None:
        """Idempotent; not raw delivery, as the envelope's TopicArn is how we check the source.

        With ``client``, the subscription delivers only notifications addressed to that
        client: without the filter a stopped client's queue collected every other client's.
        A subscription made before filters existed gets it too.
        """
        with _boundary(QueueError, f"subscribing {queue_arn} to {self.arn}"):
            subscription = self._topic.subscribe(
                Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
            )
            if client:
                subscription.set_attributes(
                    AttributeName="FilterPolicy",
                    AttributeValue=json.dumps({CLIENT_ATTRIBUTE: [client]}),
                )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


@dataclass(frozen=True)
class Names:
    """Every name and ARN of one deployment, derived from its name, account and region.

    Bucket names carry account and region because S3 names are global; everything
    else is per account and region already.
    """

    name: str
    account: str
    region: str
    partition: str = "aws"

    @property
    def input_bucket(self) -> str:
        return f"{self.name}-in-{self.account}-{self.region}"

    @property
    def output_bucket(self) -> str:
        return f"{self.name}-out-{self.account}-{self.region}"

    @property
    def buckets(self) -> tuple[str, str]:
        return (self.input_bucket, self.output_bucket)

    @property
    def jobs_queue(self) -> str:
        return f"{self.name}-jobs"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}-jobs-dlq"

    @property
    def topic_name(self) -> str:
        return f"{self.name}-notifications"

    @property
    def client_queue_prefix(self) -> str:
        """Each client's notification queue is this plus the client's id."""
        return f"{self.name}-client-"

    @property
    def tag(self) -> dict[str, str]:
        """The tag every resource of the deployment carries: what setup owns, teardown removes."""
        return {TAG_KEY: self.name}

    def bucket_arn(self, bucket: str, objects: str = "") -> str:
        """The bucket's ARN, or with ``objects`` (``inputs/*``) the ARN of those objects."""
        return f"arn:{self.partition}:s3:::{bucket}" + (f"/{objects}" if objects else "")

    def queue_arn(self, queue: str) -> str:
        return f"arn:{self.partition}:sqs:{self.region}:{self.account}:{queue}"

    @property
    def topic_arn(self) -> str:
        return f"arn:{self.partition}:sns:{self.region}:{self.account}:{self.topic_name}"


@dataclass(frozen=True)
class Connection:
    """One session's S3, SQS and SNS resources, and the names of the deployment they serve."""

    session: Any
    s3: Any
    sqs: Any
    sns: Any
    names: Names
    endpoint_url: str | None = None

    def client(self, service: str, *, custom_endpoint: bool = True) -> Any:
        """Another service's client in the same account and region (and endpoint, unless
        ``custom_endpoint`` is False: MediaConvert is never behind an S3-compatible server)."""
        extra: dict[str, Any] = {"region_name": self.names.region, "config": _CONFIG}
        if custom_endpoint and self.endpoint_url:
            extra["endpoint_url"] = self.endpoint_url
        return self.session.client(service, **extra)

    @property
    def secure(self) -> bool:
        """Whether requests go over TLS (always on AWS; test servers often speak plain http)."""
        return str(self.s3.meta.client.meta.endpoint_url).startswith("https://")

    @property
    def endpoint(self) -> str:
        return str(self.s3.meta.client.meta.endpoint_url)


def connect(settings: Settings) -> Connection:
    """A session for the settings' profile, region and endpoint, proven with one cheap call.

    The probe is STS GetCallerIdentity: it needs no IAM permission at all (AWS allows
    it even under an explicit deny), so it works with every role, and it gives the
    account id that bucket names and ARNs carry.
    """
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
        # `transfers` files at once, each with up to that many (uploads: 8) parts in flight.
        pool = Config(
            max_pool_connections=max(
                10, settings.transfers * max(settings.transfers, _UPLOAD_PARTS_IN_FLIGHT)
            )
        )
        s3 = session.resource("s3", config=_CONFIG.merge(pool), **extra)
        sqs = session.resource("sqs", config=_CONFIG, **extra)
        sns = session.resource("sns", config=_CONFIG, **extra)
        partition = str(session.get_partition_for_region(region))
    names = Names(settings.name, account, region, partition)
    return Connection(session, s3, sqs, sns, names, settings.endpoint_url)


def queue_tags(sqs: Any, queue: Any) -> dict[str, str]:
    return dict(sqs.meta.client.list_queue_tags(QueueUrl=queue.url).get("Tags", {}))


def _same_attribute(key: str, current: str | None, wanted: str) -> bool:
    """Equal as SQS means it: JSON attributes compared as data (SQS turns "4" into 4 in them)."""
    if current is None:
        return False
    if key in ("RedrivePolicy", "Policy", "RedriveAllowPolicy"):
        try:
            return bool(_strings(json.loads(current)) == _strings(json.loads(wanted)))
        except ValueError:
            return False
    return current == wanted


def _strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v) for v in value]
    return str(value)


def _ensure_queue(
    sqs: Any, name: str, attributes: dict[str, str], tags: dict[str, str]
) -> tuple[SqsQueue, bool, list[str]]:
    """The queue, created if missing, with ``attributes``; also whether it was created and
    which attributes had to change. A queue of that name without ``tags`` is not ours: refused.
    """
    with _boundary(QueueError, f"creating queue {name}"):
        queue = _find_queue(sqs, name)
        if queue is None:
            try:
                queue = sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)
                return SqsQueue(queue, name), True, []
            except ClientError as exc:  # created meanwhile by another process
                if _error_code(exc) not in _QUEUE_EXISTS:
                    raise
                queue = sqs.get_queue_by_name(QueueName=name)
        if any(queue_tags(sqs, queue).get(k) != v for k, v in tags.items()):
            raise _refusal("queue", name, tags)
        current = queue.attributes
        changed = {k: v for k, v in attributes.items() if not _same_attribute(k, current.get(k), v)}
        if changed:
            queue.set_attributes(Attributes=changed)
            log.info("updated %s of queue %s", ", ".join(changed), name)
    return SqsQueue(queue, name), False, sorted(changed)


def _find_queue(sqs: Any, name: str) -> Any:
    """The queue named ``name``, or None if there is none."""
    try:
        return sqs.get_queue_by_name(QueueName=name)
    except ClientError as exc:
        if _error_code(exc) in _NO_QUEUE:
            return None
        raise


def _bucket_exists(s3: Any, name: str) -> bool:
    """HeadBucket: needs s3:ListBucket on it; a 403 means someone else's name (or a deny)."""
    try:
        s3.meta.client.head_bucket(Bucket=name)
    except ClientError as exc:
        code = _error_code(exc)
        if code in ("404", "NoSuchBucket"):
            return False
        if code == "403":
            raise StorageError(
                f"bucket {name} exists but these credentials may not use it (another account "
                "owns the name, or a policy denies it); choose another --name, or check "
                "the credentials' permissions"
            ) from exc
        raise
    return True


def _topic_exists(topic: Any) -> bool:
    """GetTopicAttributes, where create_topic would need (and use) sns:CreateTopic."""
    try:
        topic.load()
    except ClientError as exc:
        if _error_code(exc) in ("NotFound", "NotFoundException"):
            return False
        raise
    return True


def _tag_text(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in tags.items())


def _not_ours(kind: str, name: str, tags: dict[str, str]) -> str:
    """Why a resource named like one of ours is left alone."""
    return f"{kind} {name} is not tagged {_tag_text(tags)}, so it is not this deployment's"


def _refusal(kind: str, name: str, tags: dict[str, str]) -> ConfigError:
    return ConfigError(
        f"{_not_ours(kind, name, tags)}; tag it so to adopt it, or choose another --name"
    )


def _topic_only_policy(queue_arn: str, topic_arn: str, rule_arn: str | None = None) -> str:
    """Only our topic (and, with MediaConvert, our EventBridge rule) may send to the queue."""
    statements = [
        {
            "Sid": "OnlyOurTopic",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }
    ]
    if rule_arn:
        statements.append(
            {
                "Sid": "OnlyOurRule",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _client_id(state_dir: Path, create: bool = True) -> str | None:
    """This client's id, kept across runs so it finds its notification queue again.

    Without ``create``, None when this state dir never had one (so it has no queue).
    """
    path = state_dir / CLIENT_ID_FILE
    existing = path.read_text().strip() if path.exists() else ""
    if _CLIENT_ID.match(existing):
        return existing
    if not create:
        return None
    state_dir.mkdir(parents=True, exist_ok=True)
    new = secrets.token_hex(4)
    path.write_text(new + "\n")
    return new


class _Missing(Exception):
    """A resource of the deployment does not exist (setup has not run, or teardown has)."""


def _look_up(conn: Connection, buckets: bool) -> tuple[Any, Any, Any]:
    """The job queue, dead-letter queue and topic; with ``buckets``, check those exist too.

    Only reads, each allowed by the client policy (workers have no s3:ListBucket, which
    HeadBucket needs: their jobs name the buckets, and a missing one fails the job).
    """
    names = conn.names
    if buckets:
        for bucket in names.buckets:
            with _boundary(StorageError, f"looking up bucket {bucket}"):
                if not _bucket_exists(conn.s3, bucket):
                    raise _Missing(f"bucket {bucket}")
    queues = []
    for name in (names.jobs_queue, names.dead_letter_queue):
        with _boundary(QueueError, f"looking up queue {name}"):
            queue = _find_queue(conn.sqs, name)
        if queue is None:
            raise _Missing(f"queue {name}")
        queues.append(queue)
    topic = conn.sns.Topic(names.topic_arn)
    with _boundary(QueueError, f"looking up topic {names.topic_name}"):
        if not _topic_exists(topic):
            raise _Missing(f"topic {names.topic_name}")
    return queues[0], queues[1], topic


class AwsBackend(Backend):
    kind = "aws"

    def __init__(
        self,
        settings: Settings,
        conn: Connection,
        jobs: Any,
        dlq: Any,
        topic: Any,
    ) -> None:
        names = conn.names
        self.settings = settings
        self.connection = conn
        self.names = names
        self.store = S3Store(conn.s3, names.input_bucket, names.output_bucket, settings.transfers)
        self.jobs: SqsQueue = SqsQueue(jobs, names.jobs_queue)
        self.dead_letters = SqsQueue(dlq, names.dead_letter_queue)
        self.topic: SnsTopic = SnsTopic(topic)
        self._sqs = conn.sqs
        self._notifications: MessageQueue | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, create: bool = True) -> AwsBackend:
        """Connect and look the deployment up; if something is missing, set it up when
        ``create`` (a client: "created on first use"), else fail saying to run setup (a
        worker, which holds no rights to create anything).
        """
        conn = connect(settings)
        try:
            jobs, dlq, topic = _look_up(conn, buckets=create)
        except _Missing as missing:
            if not create:
                raise ConfigError(
                    f"{missing} of deployment {settings.name!r} does not exist "
                    f"(account {conn.names.account}, {conn.names.region}); run "
                    "`autotranscode setup` first, or check --name, --region and --endpoint-url"
                ) from None
            from ..cloud import setup  # cloud builds on this module, so it comes in late

            log.warning("%s does not exist yet: setting up deployment %s", missing, settings.name)
            try:
                setup(settings, connection=conn)
            except BackendError as exc:
                raise type(exc)(
                    f"{exc} (while creating the missing {missing}; where clients may not create "
                    "resources, an administrator runs `autotranscode setup` once)"
                ) from exc
            jobs, dlq, topic = _look_up(conn, buckets=False)
        log.info(
            "aws backend %s ready in account %s, %s",
            settings.name,
            conn.names.account,
            conn.names.region,
        )
        return cls(settings, conn, jobs, dlq, topic)

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

    @property
    def client_id(self) -> str:
        client_id = _client_id(self.settings.state_dir)
        assert client_id is not None
        return client_id

    def _open_client_queue(self) -> SqsQueue:
        name = f"{self.names.client_queue_prefix}{self.client_id}"
        arn = self.names.queue_arn(name)
        rule_arn = None
        if self.settings.engine == "mediaconvert":
            from ..engines.mediaconvert import rule_name

            rule = rule_name(self.settings.name, self.client_id)
            names = self.names
            rule_arn = f"arn:{names.partition}:events:{names.region}:{names.account}:rule/{rule}"
        policy = _topic_only_policy(arn, self.topic.arn, rule_arn)
        attributes = {"Policy": policy, "VisibilityTimeout": str(NOTIFICATION_VISIBILITY_SECONDS)}
        queue, _, _ = _ensure_queue(self._sqs, name, attributes, self.names.tag)
        self.topic.subscribe_queue(arn, self.client_id)
        log.info("notification queue %s subscribed to %s", name, self.topic.arn)
        if rule_arn:
            from ..engines.mediaconvert import ensure_rule

            with _boundary(QueueError, "routing MediaConvert events to the notification queue"):
                events = self.connection.client("events")
                ensure_rule(events, self.settings.name, self.client_id, arn, self.names.tag)
        return SqsQueue(queue._queue, name, reopen=lambda: self._open_client_queue()._queue)

    def open_notification(self, body: str) -> str:
        return unwrap_sns(body, self.topic.arn)
