"""setup and teardown: the deployment's buckets, queues, topic and MediaConvert role.

    setup     create what the aws backend needs, or bring it in line; a second run changes nothing
    teardown  remove everything setup and the clients created, and nothing else

Ownership is the tag ``autotranscode:deployment=<name>``: setup puts it on every
resource and refuses to adopt a same-named resource without it; teardown touches
nothing that lacks it. At run time ``backends.aws`` only looks these resources up,
so clients and workers run without the rights to create them.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from ..backends.aws.api import (
    TAG_KEY,
    Connection,
    Names,
    absent,
    boundary,
    bucket_exists,
    bucket_tags,
    connect,
    ensure_queue,
    error_code,
    find_queue,
    queue_tags,
    refusal,
    tag_list,
    tag_text,
    topic_exists,
    topic_tags,
)
from ..errors import BackendError, QueueError, StorageError
from ..settings import Settings
from .cleanup import check_deleted
from .iam import iam_policy
from .reports import ResourceReport, Status

__all__ = [
    "DLQ_RETENTION_SECONDS",
    "LIFECYCLE_RULE",
    "PUBLIC_ACCESS_BLOCK",
    "ROLE_TRUST",
    "TAG_GRACE_SECONDS",
    "TLS_ONLY_SID",
    "ResourceReport",
    "Status",
    "ensure_role",
    "setup",
    "teardown",
    "tls_only_statement",
]

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
#: How long setup waits for a concurrent setup to tag a bucket it has just created.
TAG_GRACE_SECONDS = 2.0
#: Who may assume the MediaConvert role: MediaConvert.
ROLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "mediaconvert.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


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
    role = names.mediaconvert_role
    with boundary(BackendError, f"creating the MediaConvert role {role}"):
        existed = absent(lambda: iam.Role(role).load() or True, "NoSuchEntity") is not None
        ensure_role(iam, names, policy)
    return ResourceReport("role", role, Status.EXISTS if existed else Status.CREATED)


def ensure_role(iam: Any, names: Names, policy: dict[str, Any]) -> str:
    """The service role MediaConvert assumes (IAM resources: Role and RolePolicy), with
    ``policy`` (what ``autotranscode iam-policy --role mediaconvert`` prints); its ARN."""
    try:
        role = iam.Role(names.mediaconvert_role)
        role.load()
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        role = iam.create_role(
            RoleName=names.mediaconvert_role,
            AssumeRolePolicyDocument=json.dumps(ROLE_TRUST),
            Description="Lets MediaConvert read inputs and write outputs of autotranscode",
            Tags=tag_list(names.tag),
        )
    role.Policy("buckets").put(PolicyDocument=json.dumps(policy))
    return str(role.arn)


def _queue_report(conn: Connection, name: str, attributes: dict[str, str]) -> ResourceReport:
    _, created, changed = ensure_queue(conn.sqs, name, attributes, conn.names.tag)
    status = Status.CREATED if created else Status.UPDATED if changed else Status.EXISTS
    return ResourceReport("queue", name, status, tuple(changed))


def _ensure_bucket(conn: Connection, name: str, kms_key: str | None) -> ResourceReport:
    bucket = conn.s3.Bucket(name)
    client = conn.s3.meta.client
    changes: list[str] = []
    warnings: list[str] = []
    with boundary(StorageError, f"setting up bucket {name}"):
        created = _create_bucket(conn, bucket)
        if created:
            _put_tags(bucket, conn.names.tag)  # first: whatever fails next, teardown knows it
        elif not _tagged_ours(bucket, conn.names.name):
            raise refusal("bucket", name, conn.names.tag)
        # Bucket resources have no sub-resource for these two; their client has the actions.
        block = absent(
            lambda: client.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
            "NoSuchPublicAccessBlockConfiguration",
        )
        if block != PUBLIC_ACCESS_BLOCK:
            client.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK
            )
            changes.append("public access block")
        rules = absent(
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
        tags = bucket_tags(bucket)
        if tags.get(TAG_KEY) == name:
            return True
        if tags or time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def _create_bucket(conn: Connection, bucket: Any) -> bool:
    """Create the bucket unless it exists; whether it was created."""
    if bucket_exists(conn.s3, bucket.name):
        return False
    region = conn.names.region
    try:
        if region == "us-east-1":  # the one region that rejects its own LocationConstraint
            bucket.create()
        else:
            bucket.create(CreateBucketConfiguration={"LocationConstraint": region})
    except ClientError as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":  # created meanwhile by another setup
            raise
        return False
    bucket.wait_until_exists()
    log.info("created bucket %s", bucket.name)
    return True


def _ensure_lifecycle(bucket: Any) -> bool:
    """Our rule in the bucket's lifecycle, next to any others; whether it had to be written."""
    lifecycle = bucket.LifecycleConfiguration()
    rules = absent(lambda: list(lifecycle.rules), "NoSuchLifecycleConfiguration") or []
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
    text = absent(lambda: policy.policy, "NoSuchBucketPolicy")
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
    with boundary(QueueError, f"setting up topic {names.topic_name}"):
        if topic_exists(topic):
            if topic_tags(conn.sns, names.topic_arn).get(TAG_KEY) != names.name:
                raise refusal("topic", names.topic_name, names.tag)
            return ResourceReport("topic", names.topic_name, Status.EXISTS)
        conn.sns.create_topic(Name=names.topic_name, Tags=tag_list(names.tag))
    log.info("created topic %s", names.topic_arn)
    return ResourceReport("topic", names.topic_name, Status.CREATED)


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
    with boundary(QueueError, "listing the deployment's queues"):
        queues = list(conn.sqs.queues.filter(QueueNamePrefix=names.client_queue_prefix))
        found = (find_queue(conn.sqs, n) for n in (names.jobs_queue, names.dead_letter_queue))
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
    prefix = names.mediaconvert_rule("")
    with boundary(QueueError, "removing the MediaConvert event rules"):
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
    role = iam.Role(names.mediaconvert_role)
    with boundary(BackendError, f"removing the MediaConvert role {role.name}"):
        if absent(lambda: role.load() or True, "NoSuchEntity") is None:
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
    with boundary(QueueError, f"deleting topic {names.topic_name}"):
        if not topic_exists(topic):
            return None
        if topic_tags(conn.sns, names.topic_arn).get(TAG_KEY) != names.name:
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
    with boundary(QueueError, f"deleting queue {name}"):
        if queue_tags(conn.sqs, queue).get(TAG_KEY) != conn.names.name:
            return _kept("queue", name, conn.names.tag)
        if dry_run:
            return ResourceReport("queue", name, Status.WOULD_DELETE)
        queue.delete()
    log.info("deleted queue %s", name)
    return ResourceReport("queue", name, Status.DELETED)


def _remove_bucket(conn: Connection, name: str, dry_run: bool) -> ResourceReport | None:
    bucket = conn.s3.Bucket(name)
    with boundary(StorageError, f"deleting bucket {name}"):
        if not bucket_exists(conn.s3, name):
            return None
        if bucket_tags(bucket).get(TAG_KEY) != conn.names.name:
            return _kept("bucket", name, conn.names.tag)
        if dry_run:
            return ResourceReport("bucket", name, Status.WOULD_DELETE)
        for upload in bucket.multipart_uploads.all():
            upload.abort()
        check_deleted(name, bucket.object_versions.delete())  # versions and delete markers
        bucket.delete()
        bucket.wait_until_not_exists()
    log.info("deleted bucket %s", name)
    return ResourceReport("bucket", name, Status.DELETED)


def _kept(kind: str, name: str, tag: dict[str, str]) -> ResourceReport:
    log.info("%s %s is named like ours but not tagged as ours; left alone", kind, name)
    return ResourceReport(kind, name, Status.KEPT, (f"not tagged {tag_text(tag)}",))


def _put_tags(bucket: Any, tags: dict[str, str]) -> None:
    """Add ``tags`` to the bucket's, keeping the others (PutBucketTagging replaces them all)."""
    merged = {**bucket_tags(bucket), **tags}
    bucket.Tagging().put(Tagging={"TagSet": tag_list(merged)})
