"""The deployment on AWS from first to last: setup, cleanup, teardown, and its IAM policies.

    setup       create what the aws backend needs, or bring it in line; a second run changes nothing
    cleanup     remove what the pipeline left: objects, unfinished uploads, stale notifications
    teardown    remove everything setup and the clients created, and nothing else
    iam_policy  least-privilege policy documents for the client, the workers and MediaConvert

Ownership is the tag ``autotranscode:deployment=<name>``: setup puts it on every
resource and refuses to adopt a same-named resource without it; cleanup and
teardown touch nothing that lacks it. At run time ``backends.aws`` only looks
these resources up, so clients and workers run without the rights to create them.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from .backends.aws import (
    TAG_KEY,
    Connection,
    SqsQueue,
    _boundary,
    _bucket_exists,
    _client_id,
    _ensure_queue,
    _error_code,
    _find_queue,
    _not_ours,
    _refusal,
    _tag_text,
    _topic_exists,
    connect,
    queue_tags,
)
from .engines import mediaconvert
from .errors import BackendError, ConfigError, MessageError, QueueError, StorageError
from .journal import FileRecord, Journal
from .keys import INPUT_PREFIX, OUTPUT_PREFIX
from .messages import Notification, parse_notification, unwrap_sns
from .settings import Settings

log = logging.getLogger(__name__)

#: Objects outlive their job only when something crashed; nothing in the buckets is kept on purpose.
LIFECYCLE_RULE: dict[str, Any] = {
    "ID": "autotranscode-leftovers",
    "Filter": {"Prefix": ""},
    "Status": "Enabled",
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    "Expiration": {"Days": 7},
}
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
#: The Sid of our statement in each bucket policy; other statements there are left as they are.
TLS_ONLY_SID = "autotranscode-tls-only"
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # the maximum: dead letters are for a human to inspect
#: cleanup takes objects that no job of this client's journal explains for another client's,
#: until they are this old.
DEFAULT_ORPHAN_HOURS = 24.0
#: cleanup hides the notifications it inspects this long, then hands back those it keeps.
CLEANUP_VISIBILITY_SECONDS = 30
#: How long setup waits for a concurrent setup to tag a bucket it has just created.
TAG_GRACE_SECONDS = 2.0
_DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys
_SQS_BATCH = 10  # and SQS's batch actions this many entries
_KMS_KEY_ARN = re.compile(r"^arn:[a-z-]+:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")


class Status(StrEnum):
    CREATED = "created"
    EXISTS = "exists"
    UPDATED = "updated"
    DELETED = "deleted"
    WOULD_DELETE = "would delete"
    KEPT = "kept"


@dataclass(frozen=True)
class ResourceReport:
    """What setup or teardown did to one resource, and anything the operator should know."""

    kind: str
    name: str
    status: Status
    details: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        more = f" ({', '.join(self.details)})" if self.details else ""
        return f"{self.kind} {self.name}: {self.status}{more}"


@dataclass
class CleanupReport:
    """What cleanup removed (or, in a dry run, would remove) and what it left, with why."""

    dry_run: bool
    deleted_objects: list[str] = field(default_factory=list)
    aborted_uploads: list[str] = field(default_factory=list)
    kept_objects: int = 0
    deleted_messages: int = 0
    kept_messages: int = 0
    #: Messages in the dead-letter queue (reported, never deleted); None if not looked at.
    dead_letters: int | None = None
    notes: list[str] = field(default_factory=list)


# -- setup ---------------------------------------------------------------------------------------


def setup(
    settings: Settings, kms_key: str | None = None, *, connection: Connection | None = None
) -> list[ResourceReport]:
    """Create the deployment's buckets, queues and topic, or bring them in line with settings.

    Idempotent: each setting is read first and written only if it differs, so a second
    run reports every resource as "exists". Without ``kms_key`` a bucket keeps whatever
    default encryption it has (SSE-KMS chosen earlier stays), or gets SSE-S3.
    """
    conn = connection or connect(settings)
    names = conn.names
    reports = [_ensure_bucket(conn, bucket, kms_key) for bucket in names.buckets]
    for report in reports:
        for warning in report.warnings:
            log.info("%s: %s", report.name, warning)
    dlq_attributes = {
        "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS),
        "SqsManagedSseEnabled": "true",
    }
    reports.append(_queue_report(conn, names.dead_letter_queue, dlq_attributes))
    # One receive more than the attempts: the worker that sees it reports the failure,
    # so the client hears of it; SQS's redrive is the backstop if no worker ever can.
    redrive = {
        "deadLetterTargetArn": names.queue_arn(names.dead_letter_queue),
        "maxReceiveCount": str(settings.max_attempts + 1),
    }
    jobs_attributes = {
        "VisibilityTimeout": str(settings.visibility_timeout),
        "RedrivePolicy": json.dumps(redrive),
        "SqsManagedSseEnabled": "true",
    }
    reports.append(_queue_report(conn, names.jobs_queue, jobs_attributes))
    reports.append(_ensure_topic(conn))
    if settings.engine == "mediaconvert" and not settings.mediaconvert_role:
        reports.append(_ensure_mediaconvert_role(settings, conn, kms_key))
    log.info("deployment %s set up in account %s, %s", names.name, names.account, names.region)
    return reports


def _ensure_mediaconvert_role(
    settings: Settings, conn: Connection, kms_key: str | None
) -> ResourceReport:
    """The role MediaConvert assumes, scoped to our two buckets (IAM Role and RolePolicy)."""
    names = conn.names
    policy = iam_policy(settings, "mediaconvert", kms_key, connection=conn)
    iam = conn.session.resource("iam", region_name=names.region, endpoint_url=conn.endpoint_url)
    role = mediaconvert.role_name(names.name)
    with _boundary(BackendError, f"creating the MediaConvert role {role}"):
        existed = _absent(lambda: iam.Role(role).load() or True, "NoSuchEntity") is not None
        mediaconvert.ensure_role(iam, names.name, policy, names.tag)
    return ResourceReport("role", role, Status.EXISTS if existed else Status.CREATED)


def _queue_report(conn: Connection, name: str, attributes: dict[str, str]) -> ResourceReport:
    _, created, changed = _ensure_queue(conn.sqs, name, attributes, conn.names.tag)
    status = Status.CREATED if created else Status.UPDATED if changed else Status.EXISTS
    return ResourceReport("queue", name, status, tuple(changed))


def _ensure_bucket(conn: Connection, name: str, kms_key: str | None) -> ResourceReport:
    bucket = conn.s3.Bucket(name)
    client = conn.s3.meta.client
    changes: list[str] = []
    warnings: list[str] = []
    with _boundary(StorageError, f"setting up bucket {name}"):
        created = _create_bucket(conn, bucket)
        if created:
            _put_tags(bucket, conn.names.tag)  # first: whatever fails next, teardown knows it
        elif not _tagged_ours(bucket, conn.names.name):
            raise _refusal("bucket", name, conn.names.tag)
        # Bucket resources have no sub-resource for these two; their client has the actions.
        block = _absent(
            lambda: client.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
            "NoSuchPublicAccessBlockConfiguration",
        )
        if block != PUBLIC_ACCESS_BLOCK:
            client.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK
            )
            changes.append("public access block")
        rules = _absent(
            lambda: client.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"][
                "Rules"
            ],
            "ServerSideEncryptionConfigurationNotFoundError",
        )
        wanted = _encryption_rule(kms_key)
        if not rules or (kms_key and _sse(rules[0]) != _sse(wanted)):
            client.put_bucket_encryption(
                Bucket=name, ServerSideEncryptionConfiguration={"Rules": [wanted]}
            )
            changes.append("encryption")
        if _ensure_lifecycle(bucket):
            changes.append("lifecycle rule")
        if conn.secure:
            if _ensure_tls_only(bucket, conn.names.bucket_arn(name)):
                changes.append("TLS-only policy")
        else:
            warnings.append(
                f"TLS-only bucket policy not applied: the endpoint {conn.endpoint} is plain "
                "http, and that policy would refuse every request made through it"
            )
    if created:
        return ResourceReport("bucket", name, Status.CREATED, warnings=tuple(warnings))
    status = Status.UPDATED if changes else Status.EXISTS
    return ResourceReport("bucket", name, status, tuple(changes), tuple(warnings))


def _tagged_ours(bucket: Any, name: str) -> bool:
    """Whether the bucket carries our tag. One with no tags at all may be one a concurrent
    setup has just created and is about to tag (S3 cannot tag in CreateBucket), so that
    case is looked at again for a moment before it counts as someone else's.
    """
    deadline = time.monotonic() + TAG_GRACE_SECONDS
    while True:
        tags = _bucket_tags(bucket)
        if tags.get(TAG_KEY) == name:
            return True
        if tags or time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def _create_bucket(conn: Connection, bucket: Any) -> bool:
    """Create the bucket unless it exists; whether it was created."""
    if _bucket_exists(conn.s3, bucket.name):
        return False
    region = conn.names.region
    try:
        if region == "us-east-1":  # the one region that rejects its own LocationConstraint
            bucket.create()
        else:
            bucket.create(CreateBucketConfiguration={"LocationConstraint": region})
    except ClientError as exc:
        if _error_code(exc) != "BucketAlreadyOwnedByYou":  # created meanwhile by another setup
            raise
        return False
    bucket.wait_until_exists()
    log.info("created bucket %s", bucket.name)
    return True


def _ensure_lifecycle(bucket: Any) -> bool:
    """Our rule in the bucket's lifecycle, next to any others; whether it had to be written."""
    lifecycle = bucket.LifecycleConfiguration()
    rules = _absent(lambda: list(lifecycle.rules), "NoSuchLifecycleConfiguration") or []
    ours = [r for r in rules if r.get("ID") == LIFECYCLE_RULE["ID"]]
    if ours and _rule_essence(ours[0]) == _rule_essence(LIFECYCLE_RULE):
        return False
    others = [r for r in rules if r.get("ID") != LIFECYCLE_RULE["ID"]]
    lifecycle.put(LifecycleConfiguration={"Rules": [*others, LIFECYCLE_RULE]})
    return True


def _rule_essence(rule: dict[str, Any]) -> tuple[Any, ...]:
    """What our lifecycle rule says, however the service chooses to spell it back."""
    prefix = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", ""))
    days = (rule.get("Expiration") or {}).get("Days")
    return (rule.get("Status"), prefix, rule.get("AbortIncompleteMultipartUpload"), days)


def tls_only_statement(bucket_arn: str) -> dict[str, Any]:
    """Deny every request to the bucket and its objects that does not come over TLS."""
    return {
        "Sid": TLS_ONLY_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def _ensure_tls_only(bucket: Any, bucket_arn: str) -> bool:
    """Our statement in the bucket policy, next to any others; whether it had to be written."""
    policy = bucket.Policy()
    text = _absent(lambda: policy.policy, "NoSuchBucketPolicy")
    document: dict[str, Any] = json.loads(text) if text else {"Version": "2012-10-17"}
    found = document.get("Statement", [])
    statements: list[dict[str, Any]] = found if isinstance(found, list) else [found]
    wanted = tls_only_statement(bucket_arn)
    if any(s.get("Sid") == TLS_ONLY_SID and s == wanted for s in statements):
        return False
    document["Statement"] = [s for s in statements if s.get("Sid") != TLS_ONLY_SID] + [wanted]
    policy.put(Policy=json.dumps(document))
    return True


def _encryption_rule(kms_key: str | None) -> dict[str, Any]:
    if kms_key is None:
        return {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    return {
        "ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": kms_key,
        },
        "BucketKeyEnabled": True,  # S3 Bucket Keys: far fewer KMS requests, and costs
    }


def _sse(rule: dict[str, Any]) -> tuple[Any, ...]:
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    return (
        default.get("SSEAlgorithm"),
        default.get("KMSMasterKeyID"),
        rule.get("BucketKeyEnabled"),
    )


def _ensure_topic(conn: Connection) -> ResourceReport:
    names = conn.names
    topic = conn.sns.Topic(names.topic_arn)
    with _boundary(QueueError, f"setting up topic {names.topic_name}"):
        if _topic_exists(topic):
            if _topic_tags(conn, names.topic_arn).get(TAG_KEY) != names.name:
                raise _refusal("topic", names.topic_name, names.tag)
            return ResourceReport("topic", names.topic_name, Status.EXISTS)
        conn.sns.create_topic(Name=names.topic_name, Tags=_tag_list(names.tag))
    log.info("created topic %s", names.topic_arn)
    return ResourceReport("topic", names.topic_name, Status.CREATED)


# -- cleanup -------------------------------------------------------------------------------------


def cleanup(
    settings: Settings,
    journal: Journal,
    s3: bool = True,
    sqs: bool = True,
    dry_run: bool = False,
    older_than_hours: float = DEFAULT_ORPHAN_HOURS,
    *,
    read: Callable[[str], Notification] | None = None,
    connection: Connection | None = None,
) -> CleanupReport:
    """Remove what the pipeline left in our buckets and in this client's notification queue.

    An object belongs to the file (``inputs/<file id>/``) or job (``outputs/<job id>/``)
    its key names. The journal decides: a finished file's objects go now, an unfinished
    one's stay; an id the journal does not know may be another client's, so its objects
    go only once older than ``older_than_hours``. Unfinished multipart uploads follow
    the same rule. Stale notifications are those for jobs this client is not waiting
    for; the dead-letter queue is only counted (its messages are for a human). ``read``
    turns a queue message into a notification (an engine's ``read``; by default, our
    workers' SNS notifications); a message it rejects is left in the queue.
    """
    conn = connection or connect(settings)
    names = conn.names
    report = CleanupReport(dry_run=dry_run)
    if s3:
        cutoff = datetime.now(UTC) - timedelta(hours=older_than_hours)
        for bucket, prefix, owner in (
            (names.input_bucket, INPUT_PREFIX, journal.get),
            (names.output_bucket, OUTPUT_PREFIX, journal.by_job),
        ):
            _clean_bucket(conn, bucket, prefix, _Verdicts(owner, cutoff), report)
    if sqs:
        topic_arn = names.topic_arn
        reader = read or (lambda body: parse_notification(unwrap_sns(body, topic_arn)))
        _clean_notifications(conn, settings, journal, reader, report)
        with _boundary(QueueError, f"counting the messages in {names.dead_letter_queue}"):
            dlq = _owned_queue(conn, names.dead_letter_queue, report)
        if dlq is not None:
            report.dead_letters = SqsQueue(dlq, names.dead_letter_queue).count()
    return report


class _Verdicts:
    """Whether an object (by the id in its key, and its age) is left over, one lookup per id."""

    def __init__(self, owner: Callable[[str], FileRecord | None], cutoff: datetime) -> None:
        self._owner = owner
        self._cutoff = cutoff
        self._finished: dict[str, bool | None] = {}

    def stale(self, key: str, prefix: str, when: datetime) -> bool:
        ident = key[len(prefix) :].split("/", 1)[0]
        if ident not in self._finished:
            record = self._owner(ident) if ident else None
            self._finished[ident] = None if record is None else record.state.finished
        finished = self._finished[ident]
        return when < self._cutoff if finished is None else finished


def _clean_bucket(
    conn: Connection, name: str, prefix: str, verdicts: _Verdicts, report: CleanupReport
) -> None:
    bucket = conn.s3.Bucket(name)
    with _boundary(StorageError, f"cleaning up s3://{name}/{prefix}"):
        if not _bucket_exists(conn.s3, name):
            report.notes.append(f"bucket {name} does not exist")
            return
        if _bucket_tags(bucket).get(TAG_KEY) != conn.names.name:
            report.notes.append(_not_ours("bucket", name, conn.names.tag) + "; left alone")
            return
        for upload in bucket.multipart_uploads.filter(Prefix=prefix):
            if verdicts.stale(upload.key, prefix, upload.initiated):
                report.aborted_uploads.append(f"s3://{name}/{upload.key}")
                if not report.dry_run:
                    upload.abort()
        stale: list[str] = []
        for obj in bucket.objects.filter(Prefix=prefix):
            if verdicts.stale(obj.key, prefix, obj.last_modified):
                stale.append(obj.key)
            else:
                report.kept_objects += 1
        report.deleted_objects += [f"s3://{name}/{key}" for key in stale]
        if not report.dry_run:
            _delete_keys(bucket, stale)


def _delete_keys(bucket: Any, keys: list[str]) -> None:
    for start in range(0, len(keys), _DELETE_BATCH):
        chunk = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
        response = bucket.delete_objects(Delete={"Objects": chunk, "Quiet": True})
        _check_errors(bucket.name, [response])


def _check_errors(bucket: str, responses: Iterable[dict[str, Any]]) -> None:
    errors = [e for r in responses for e in r.get("Errors", [])]
    if errors:
        raise StorageError(
            f"{len(errors)} objects in {bucket} were not deleted "
            f"({errors[0].get('Code')}: {errors[0].get('Key')}); try again"
        )


def _clean_notifications(
    conn: Connection,
    settings: Settings,
    journal: Journal,
    read: Callable[[str], Notification],
    report: CleanupReport,
) -> None:
    cid = _client_id(settings.state_dir, create=False)
    if cid is None:
        report.notes.append(f"no notification queue: {settings.state_dir} never ran a client")
        return
    name = f"{conn.names.client_queue_prefix}{cid}"
    with _boundary(QueueError, f"cleaning up queue {name}"):
        queue = _owned_queue(conn, name, report)
        if queue is None:
            return
        unrecognised = _sweep(queue, read, journal, report)
    if unrecognised:
        report.notes.append(
            f"{unrecognised} messages in {name} are not notifications of ours; left in the queue"
        )


def _sweep(
    queue: Any, read: Callable[[str], Notification], journal: Journal, report: CleanupReport
) -> int:
    """Receive every message once: delete the stale ones, hand the others back at once."""
    held: dict[str, Any] = {}  # by message id: a message seen again keeps its newest receipt
    seen: set[str] = set()
    unrecognised = 0
    try:
        while True:
            batch = queue.receive_messages(
                MaxNumberOfMessages=_SQS_BATCH,
                VisibilityTimeout=CLEANUP_VISIBILITY_SECONDS,
                WaitTimeSeconds=1,  # a long poll asks every SQS server, a short one a sample
            )
            fresh = [m for m in batch if m.message_id not in seen]
            held.update((m.message_id, m) for m in batch if m.message_id in seen)
            if not fresh:  # all gone through (or back from a lease that ran out)
                return unrecognised
            seen.update(m.message_id for m in fresh)
            stale = []
            for message in fresh:
                verdict = _stale_notification(message.body, read, journal)
                if verdict and not report.dry_run:
                    stale.append(message)
                else:
                    held[message.message_id] = message
                report.deleted_messages += bool(verdict)
                report.kept_messages += not verdict
                unrecognised += verdict is None
            if stale:
                _batch(queue.delete_messages, stale, {})
    finally:
        try:
            _batch(
                queue.change_message_visibility_batch, list(held.values()), {"VisibilityTimeout": 0}
            )
        except (QueueError, ClientError) as exc:  # they come back by themselves, soon
            log.warning(
                "some messages stay hidden for up to %ss: %s", CLEANUP_VISIBILITY_SECONDS, exc
            )


def _stale_notification(
    body: str, read: Callable[[str], Notification], journal: Journal
) -> bool | None:
    """True for a notification about a job this client is not waiting for; None if not one."""
    try:
        note = read(body)
    except MessageError:
        return None
    record = journal.by_job(note.job_id)
    return record is None or record.state.finished


def _batch(action: Callable[..., Any], messages: list[Any], extra: dict[str, Any]) -> None:
    for start in range(0, len(messages), _SQS_BATCH):
        entries = [
            {"Id": str(i), "ReceiptHandle": m.receipt_handle, **extra}
            for i, m in enumerate(messages[start : start + _SQS_BATCH])
        ]
        failed = action(Entries=entries).get("Failed", [])
        if failed:
            raise QueueError(f"{len(failed)} messages not handled ({failed[0].get('Code')})")


# -- teardown ------------------------------------------------------------------------------------


def teardown(
    settings: Settings, dry_run: bool = False, *, connection: Connection | None = None
) -> list[ResourceReport]:
    """Remove the topic, the queues (clients' too) and the buckets with every object version.

    Each must carry our tag; one named like ours without it is kept and reported.
    With ``dry_run`` nothing changes and the reports say what would be deleted.
    """
    conn = connection or connect(settings)
    names = conn.names
    reports = [_remove_topic(conn, dry_run)]
    with _boundary(QueueError, "listing the deployment's queues"):
        queues = list(conn.sqs.queues.filter(QueueNamePrefix=names.client_queue_prefix))
        found = (_find_queue(conn.sqs, n) for n in (names.jobs_queue, names.dead_letter_queue))
        queues += [q for q in found if q is not None]
    reports += [_remove_queue(conn, queue, dry_run) for queue in queues]
    reports += [_remove_bucket(conn, bucket, dry_run) for bucket in names.buckets]
    reports += _remove_mediaconvert(conn, dry_run)
    return [r for r in reports if r is not None]


def _remove_mediaconvert(conn: Connection, dry_run: bool) -> list[ResourceReport]:
    """The MediaConvert role and the clients' EventBridge rules, if setup made any."""
    names = conn.names
    reports = []
    events = conn.client("events")
    prefix = mediaconvert.rule_name(names.name, "")
    with _boundary(QueueError, "removing the MediaConvert event rules"):
        for page in events.get_paginator("list_rules").paginate(NamePrefix=prefix):
            for rule in page["Rules"]:
                tags = events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"]
                if {t["Key"]: t["Value"] for t in tags}.get(TAG_KEY) != names.name:
                    reports.append(_kept("rule", rule["Name"], names.tag))
                    continue
                if not dry_run:
                    targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
                    if targets:
                        events.remove_targets(Rule=rule["Name"], Ids=[t["Id"] for t in targets])
                    events.delete_rule(Name=rule["Name"])
                done = Status.WOULD_DELETE if dry_run else Status.DELETED
                reports.append(ResourceReport("rule", rule["Name"], done))
    iam = conn.session.resource("iam", region_name=names.region, endpoint_url=conn.endpoint_url)
    role = iam.Role(mediaconvert.role_name(names.name))
    with _boundary(BackendError, f"removing the MediaConvert role {role.name}"):
        if _absent(lambda: role.load() or True, "NoSuchEntity") is None:
            return reports
        if {t["Key"]: t["Value"] for t in role.tags or []}.get(TAG_KEY) != names.name:
            return [*reports, _kept("role", role.name, names.tag)]
        if not dry_run:
            for policy in role.policies.all():
                policy.delete()
            role.delete()
    done = Status.WOULD_DELETE if dry_run else Status.DELETED
    return [*reports, ResourceReport("role", role.name, done)]


def _remove_topic(conn: Connection, dry_run: bool) -> ResourceReport | None:
    names = conn.names
    topic = conn.sns.Topic(names.topic_arn)
    with _boundary(QueueError, f"deleting topic {names.topic_name}"):
        if not _topic_exists(topic):
            return None
        if _topic_tags(conn, names.topic_arn).get(TAG_KEY) != names.name:
            return _kept("topic", names.topic_name, names.tag)
        if dry_run:
            return ResourceReport("topic", names.topic_name, Status.WOULD_DELETE)
        subscriptions = list(topic.subscriptions.all())
        for subscription in subscriptions:
            subscription.delete()
        topic.delete()
    log.info("deleted topic %s", names.topic_arn)
    details = (f"{len(subscriptions)} subscriptions",) if subscriptions else ()
    return ResourceReport("topic", names.topic_name, Status.DELETED, details)


def _remove_queue(conn: Connection, queue: Any, dry_run: bool) -> ResourceReport:
    name = str(queue.url).rsplit("/", 1)[-1]
    with _boundary(QueueError, f"deleting queue {name}"):
        if queue_tags(conn.sqs, queue).get(TAG_KEY) != conn.names.name:
            return _kept("queue", name, conn.names.tag)
        if dry_run:
            return ResourceReport("queue", name, Status.WOULD_DELETE)
        queue.delete()
    log.info("deleted queue %s", name)
    return ResourceReport("queue", name, Status.DELETED)


def _remove_bucket(conn: Connection, name: str, dry_run: bool) -> ResourceReport | None:
    bucket = conn.s3.Bucket(name)
    with _boundary(StorageError, f"deleting bucket {name}"):
        if not _bucket_exists(conn.s3, name):
            return None
        if _bucket_tags(bucket).get(TAG_KEY) != conn.names.name:
            return _kept("bucket", name, conn.names.tag)
        if dry_run:
            return ResourceReport("bucket", name, Status.WOULD_DELETE)
        for upload in bucket.multipart_uploads.all():
            upload.abort()
        _check_errors(name, bucket.object_versions.delete())  # versions and delete markers
        bucket.delete()
        bucket.wait_until_not_exists()
    log.info("deleted bucket %s", name)
    return ResourceReport("bucket", name, Status.DELETED)


def _kept(kind: str, name: str, tag: dict[str, str]) -> ResourceReport:
    log.info("%s %s is named like ours but not tagged as ours; left alone", kind, name)
    return ResourceReport(kind, name, Status.KEPT, (f"not tagged {_tag_text(tag)}",))


# -- IAM -----------------------------------------------------------------------------------------


#: Each role's statements: Sid, actions, and which of the deployment's resources.
_POLICIES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "client": (
        # HeadBucket at start-up, listing a file's objects to delete them, tags for cleanup.
        (
            "OwnBuckets",
            "s3:ListBucket s3:ListBucketMultipartUploads s3:GetBucketTagging",
            "buckets",
        ),
        ("Inputs", "s3:PutObject s3:GetObject s3:DeleteObject s3:AbortMultipartUpload", "inputs"),
        ("Outputs", "s3:GetObject s3:DeleteObject s3:AbortMultipartUpload", "outputs"),
        ("SubmitJobs", "sqs:GetQueueUrl sqs:SendMessage", "jobs"),
        ("CountDeadLetters", "sqs:GetQueueUrl sqs:GetQueueAttributes", "dlq"),
        (
            "OwnNotificationQueue",
            "sqs:CreateQueue sqs:TagQueue sqs:ListQueueTags sqs:GetQueueUrl sqs:GetQueueAttributes"
            " sqs:SetQueueAttributes sqs:ReceiveMessage sqs:DeleteMessage"
            " sqs:ChangeMessageVisibility",
            "client queues",
        ),
        # SetSubscriptionAttributes: the filter that keeps other clients' notifications out.
        (
            "Notifications",
            "sns:GetTopicAttributes sns:Subscribe sns:SetSubscriptionAttributes",
            "topic",
        ),
    ),
    # A client with --engine mediaconvert: the client rows plus these.
    "client-mediaconvert": (
        ("StartMediaConvertJobs", "mediaconvert:CreateJob", "mediaconvert queue"),
        ("PassTheMediaConvertRole", "iam:PassRole", "mediaconvert role"),
        ("RouteJobEvents", "events:PutRule events:PutTargets events:TagResource", "rules"),
    ),
    "worker": (
        ("ReadInputs", "s3:GetObject", "inputs"),
        # GetObject too: HeadObject finds the outputs a crashed attempt already stored.
        ("WriteOutputs", "s3:PutObject s3:GetObject s3:AbortMultipartUpload", "outputs"),
        (
            # SendMessage: a stopped worker hands its job back as a copy (SQS cannot lower a
            # message's receive count), so a stop is not an attempt.
            "TakeJobs",
            "sqs:GetQueueUrl sqs:ReceiveMessage sqs:DeleteMessage sqs:ChangeMessageVisibility"
            " sqs:SendMessage",
            "jobs",
        ),
        ("RejectJobs", "sqs:GetQueueUrl sqs:SendMessage", "dlq"),
        ("Notify", "sns:GetTopicAttributes sns:Publish", "topic"),
    ),
    # The role MediaConvert assumes to read our inputs and write our outputs.
    "mediaconvert": (
        ("ReadInputs", "s3:GetObject", "inputs"),
        ("WriteOutputs", "s3:PutObject", "outputs"),
    ),
}
ROLES = ("client", "worker", "mediaconvert")


def iam_policy(
    settings: Settings,
    role: str,
    kms_key: str | None = None,
    *,
    connection: Connection | None = None,
) -> dict[str, Any]:
    """The least-privilege IAM policy document for ``role``: client, worker or mediaconvert.

    Specific actions on the deployment's own ARNs, objects narrowed to ``inputs/*`` or
    ``outputs/*``; the only pattern is the clients' notification queues
    (``<name>-client-*``), which each client creates. None needs sts:GetCallerIdentity,
    which AWS allows to everyone. ``kms_key`` (the key's ARN) adds the KMS actions that
    reading and writing SSE-KMS objects take.
    """
    if role not in ROLES:
        raise ConfigError(f"--role: choose one of {', '.join(ROLES)}")
    if kms_key is not None and not _KMS_KEY_ARN.match(kms_key):
        raise ConfigError(
            "--kms-key: give the key's ARN (arn:aws:kms:REGION:ACCOUNT:key/ID); "
            "IAM policies name keys by ARN, not by alias or id"
        )
    n = (connection or connect(settings)).names
    resources = {
        "buckets": [n.bucket_arn(b) for b in n.buckets],
        "inputs": [n.bucket_arn(n.input_bucket, f"{INPUT_PREFIX}*")],
        "outputs": [n.bucket_arn(n.output_bucket, f"{OUTPUT_PREFIX}*")],
        "jobs": [n.queue_arn(n.jobs_queue)],
        "dlq": [n.queue_arn(n.dead_letter_queue)],
        "client queues": [n.queue_arn(f"{n.client_queue_prefix}*")],
        "topic": [n.topic_arn],
        "key": [kms_key or ""],
        "mediaconvert queue": [
            f"arn:{n.partition}:mediaconvert:{n.region}:{n.account}:queues/Default"
        ],
        "mediaconvert role": [
            f"arn:{n.partition}:iam::{n.account}:role/{mediaconvert.role_name(n.name)}"
        ],
        "rules": [
            f"arn:{n.partition}:events:{n.region}:{n.account}:rule/"
            f"{mediaconvert.rule_name(n.name, '*')}"
        ],
    }
    rows = list(_POLICIES[role])
    if role == "client" and settings.engine == "mediaconvert":
        rows += _POLICIES["client-mediaconvert"]
    if kms_key is not None:
        rows.append(("BucketKey", "kms:Decrypt kms:GenerateDataKey", "key"))
    statements = [
        {"Sid": sid, "Effect": "Allow", "Action": actions.split(), "Resource": resources[which]}
        for sid, actions, which in rows
    ]
    return {"Version": "2012-10-17", "Statement": statements}


# -- helpers -------------------------------------------------------------------------------------


def _absent(get: Callable[[], Any], *codes: str) -> Any:
    """``get()``, or None when it fails with one of ``codes`` (the "not configured" ones)."""
    try:
        return get()
    except ClientError as exc:
        if _error_code(exc) in codes:
            return None
        raise


def _bucket_tags(bucket: Any) -> dict[str, str]:
    tag_set = _absent(lambda: bucket.Tagging().tag_set, "NoSuchTagSet") or []
    return {t["Key"]: t["Value"] for t in tag_set}


def _put_tags(bucket: Any, tags: dict[str, str]) -> None:
    """Add ``tags`` to the bucket's, keeping the others (PutBucketTagging replaces them all)."""
    merged = {**_bucket_tags(bucket), **tags}
    bucket.Tagging().put(Tagging={"TagSet": _tag_list(merged)})


def _topic_tags(conn: Connection, arn: str) -> dict[str, str]:
    tags = conn.sns.meta.client.list_tags_for_resource(ResourceArn=arn).get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags}


def _owned_queue(conn: Connection, name: str, report: CleanupReport) -> Any:
    queue = _find_queue(conn.sqs, name)
    if queue is None:
        report.notes.append(f"queue {name} does not exist")
    elif queue_tags(conn.sqs, queue).get(TAG_KEY) != conn.names.name:
        report.notes.append(_not_ours("queue", name, conn.names.tag) + "; left alone")
        return None
    return queue


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]
