"""The boto plumbing the aws backend and the deployment commands share.

A session proven with one cheap call (``connect``), the deployment's names and ARNs
(``Names``), the one place boto3's errors become ours (``boundary``), and the
find/ensure/tag helpers both need: the runtime adapters look resources up with
them, ``deploy`` creates and removes them with them. Ownership is the tag
``TAG_KEY=<deployment name>``: a resource named like ours without it is refused.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)

from ...errors import BackendError, ConfigError, ObjectMissing, QueueError, StorageError
from ...settings import Settings

log = logging.getLogger(__name__)

CLIENT_ID_FILE = "aws-client-id"
TAG_KEY = "autotranscode:deployment"
#: Parts of one upload in flight at once (the CLI has 10): at 1 GB on moto, 8 moved ~30 %
#: more than 4 did. Downloads keep ``transfers`` ranges, already twice the CLI's speed.
UPLOAD_PARTS_IN_FLIGHT = 8

CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},
    request_checksum_calculation="when_supported",
    response_checksum_validation="when_supported",
)
#: The first call of a start-up only proves the endpoint and credentials: a wrong
#: endpoint should fail in seconds, not after ten backed-off attempts.
_PROBE_CONFIG = CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 3}))
_HINTS = {
    **dict.fromkeys(("AccessDenied", "AuthorizationError"), "check these credentials' permissions"),
    **dict.fromkeys(("InvalidAccessKeyId", "InvalidClientTokenId"), "check the AWS credentials"),
    "ExpiredToken": "refresh the AWS credentials (for SSO: aws sso login)",
    **dict.fromkeys(("NoSuchKey", "404"), "the object is gone (cleaned up, or expired)"),
    "NoSuchBucket": "the bucket is gone; run `autotranscode setup` to recreate it",
    "AWS.SimpleQueueService.NonExistentQueue": "the queue is gone; run `autotranscode setup`",
    "BucketAlreadyExists": "another account owns that bucket name; choose another --name",
}
#: The error codes that mean "no such queue", and "a queue of that name exists already".
NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
QUEUE_EXISTS = ("QueueAlreadyExists", "AWS.SimpleQueueService.QueueNameExists")
_CLIENT_ID = re.compile(r"^[0-9a-f]{8,32}$")


class DeploymentMissing(ConfigError):
    """A resource of the deployment does not exist (setup has not run, or teardown has).

    ``what`` names it ("queue x-jobs"). A client answers this by setting the deployment
    up (``deploy.open_backend``); a worker, which holds no rights to, passes it on.
    """

    def __init__(self, what: str, names: Names) -> None:
        super().__init__(
            f"{what} of deployment {names.name!r} does not exist "
            f"(account {names.account}, {names.region}); run "
            "`autotranscode setup` first, or check --name, --region and --endpoint-url"
        )
        self.what = what


@contextmanager
def boundary(kind: type[BackendError], doing: str) -> Iterator[None]:
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


def error_code(exc: ClientError) -> str:
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

    @property
    def mediaconvert_role(self) -> str:
        """The service role MediaConvert assumes (setup creates it unless one is given)."""
        return f"{self.name}-mediaconvert"

    def mediaconvert_rule(self, client_id: str) -> str:
        """The EventBridge rule that sends one client's MediaConvert events to its queue."""
        return f"{self.name}-mediaconvert-{client_id}"

    def role_arn(self, role: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{role}"

    def rule_arn(self, rule: str) -> str:
        return f"arn:{self.partition}:events:{self.region}:{self.account}:rule/{rule}"


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
        extra: dict[str, Any] = {"region_name": self.names.region, "config": CONFIG}
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


def session_for(settings: Settings) -> tuple[Any, str]:
    """A boto3 session for the settings' profile, and its region: --region, else the AWS
    chain's (AWS_REGION, AWS_DEFAULT_REGION, the profile's config). No call is made.

    No region is a setting to give, never a silent default: names and ARNs carry it, and
    a wrong one makes a second deployment beside the first.
    """
    try:
        session = boto3.Session(profile_name=settings.profile, region_name=settings.region)
    except ProfileNotFound as exc:
        raise ConfigError(f"AWS profile {settings.profile!r} is not configured") from exc
    if not session.region_name:
        raise ConfigError(
            "no AWS region: pass --region, or set AWS_DEFAULT_REGION (or region in the "
            "profile's ~/.aws/config)"
        )
    return session, str(session.region_name)


def names_for(settings: Settings, account: str) -> Names:
    """The deployment's names in ``account``, without asking AWS (for a policy printed
    offline)."""
    session, region = session_for(settings)
    try:
        partition = str(session.get_partition_for_region(region))
    except (BotoCoreError, ValueError) as exc:
        raise ConfigError(f"--region {region!r}: not a region boto3 knows") from exc
    return Names(settings.name, account, region, partition)


def connect(settings: Settings) -> Connection:
    """A session for the settings' profile, region and endpoint, proven with one cheap call.

    The probe is STS GetCallerIdentity: it needs no IAM permission at all (AWS allows
    it even under an explicit deny), so it works with every role, and it gives the
    account id that bucket names and ARNs carry.
    """
    session, region = session_for(settings)
    extra: dict[str, Any] = {"region_name": region}
    if settings.endpoint_url:
        extra["endpoint_url"] = settings.endpoint_url
    with boundary(BackendError, "checking the AWS credentials (sts:GetCallerIdentity)"):
        sts = session.client("sts", config=_PROBE_CONFIG, **extra)
        account = str(sts.get_caller_identity()["Account"])
        # `transfers` files at once, each with up to that many (uploads: 8) parts in flight.
        pool = Config(
            max_pool_connections=max(
                10, settings.transfers * max(settings.transfers, UPLOAD_PARTS_IN_FLIGHT)
            )
        )
        s3 = session.resource("s3", config=CONFIG.merge(pool), **extra)
        sqs = session.resource("sqs", config=CONFIG, **extra)
        sns = session.resource("sns", config=CONFIG, **extra)
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


def ensure_queue(
    sqs: Any, name: str, attributes: dict[str, str], tags: dict[str, str]
) -> tuple[Any, bool, list[str]]:
    """The queue (a boto3 resource), created if missing, with ``attributes``; also whether
    it was created and which attributes had to change. A queue of that name without
    ``tags`` is not ours: refused.
    """
    with boundary(QueueError, f"creating queue {name}"):
        queue = find_queue(sqs, name)
        if queue is None:
            try:
                queue = sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)
                return queue, True, []
            except ClientError as exc:  # created meanwhile by another process
                if error_code(exc) not in QUEUE_EXISTS:
                    raise
                queue = sqs.get_queue_by_name(QueueName=name)
        if any(queue_tags(sqs, queue).get(k) != v for k, v in tags.items()):
            raise refusal("queue", name, tags)
        current = queue.attributes
        changed = {k: v for k, v in attributes.items() if not _same_attribute(k, current.get(k), v)}
        if changed:
            queue.set_attributes(Attributes=changed)
            log.info("updated %s of queue %s", ", ".join(changed), name)
    return queue, False, sorted(changed)


def find_queue(sqs: Any, name: str) -> Any:
    """The queue named ``name``, or None if there is none."""
    try:
        return sqs.get_queue_by_name(QueueName=name)
    except ClientError as exc:
        if error_code(exc) in NO_QUEUE:
            return None
        raise


def bucket_exists(s3: Any, name: str) -> bool:
    """HeadBucket: needs s3:ListBucket on it; a 403 means someone else's name (or a deny)."""
    try:
        s3.meta.client.head_bucket(Bucket=name)
    except ClientError as exc:
        code = error_code(exc)
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


def topic_exists(topic: Any) -> bool:
    """GetTopicAttributes, where create_topic would need (and use) sns:CreateTopic."""
    try:
        topic.load()
    except ClientError as exc:
        if error_code(exc) in ("NotFound", "NotFoundException"):
            return False
        raise
    return True


def tag_text(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in tags.items())


def not_ours(kind: str, name: str, tags: dict[str, str]) -> str:
    """Why a resource named like one of ours is left alone."""
    return f"{kind} {name} is not tagged {tag_text(tags)}, so it is not this deployment's"


def refusal(kind: str, name: str, tags: dict[str, str]) -> ConfigError:
    return ConfigError(
        f"{not_ours(kind, name, tags)}; tag it so to adopt it, or choose another --name"
    )


def queue_policy(queue_arn: str, topic_arn: str, rule_arn: str | None = None) -> str:
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


def client_id(state_dir: Path, create: bool = True) -> str | None:
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


def absent(get: Callable[[], Any], *codes: str) -> Any:
    """``get()``, or None when it fails with one of ``codes`` (the "not configured" ones)."""
    try:
        return get()
    except ClientError as exc:
        if error_code(exc) in codes:
            return None
        raise


def bucket_tags(bucket: Any) -> dict[str, str]:
    tag_set = absent(lambda: bucket.Tagging().tag_set, "NoSuchTagSet") or []
    return {t["Key"]: t["Value"] for t in tag_set}


def topic_tags(sns: Any, arn: str) -> dict[str, str]:
    tags = sns.meta.client.list_tags_for_resource(ResourceArn=arn).get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags}


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]
