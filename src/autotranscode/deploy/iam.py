"""Least-privilege IAM policy documents for the client, the workers and MediaConvert."""

from __future__ import annotations

import re
from typing import Any

from ..backends.aws.api import Connection, Names, connect, names_for, session_for
from ..errors import ConfigError
from ..keys import INPUT_PREFIX, OUTPUT_PREFIX, WORKERS_PREFIX
from ..settings import Settings

_KMS_KEY_ARN = re.compile(r"^arn:[a-z-]+:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_ACCOUNT = re.compile(r"^\d{12}$")


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
        # The dashboard's workers panel: their heartbeats (listed through OwnBuckets).
        ("ReadHeartbeats", "s3:GetObject", "heartbeats"),
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
        ("Heartbeat", "s3:PutObject s3:DeleteObject", "heartbeats"),
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
    account: str | None = None,
    connection: Connection | None = None,
) -> dict[str, Any]:
    """The least-privilege IAM policy document for ``role``: client, worker or mediaconvert.

    Specific actions on the deployment's own ARNs, objects narrowed to ``inputs/*`` or
    ``outputs/*``; the only pattern is the clients' notification queues
    (``<name>-client-*``), which each client creates. None needs sts:GetCallerIdentity,
    which AWS allows to everyone. ``kms_key`` (the key's ARN) adds the KMS actions that
    reading and writing SSE-KMS objects take.

    With ``account`` no call is made (the region comes from the settings or the AWS
    chain's configuration); without it the credentials' account is read.
    """
    if role not in ROLES:
        raise ConfigError(f"--role: choose one of {', '.join(ROLES)}")
    if kms_key is not None and not _KMS_KEY_ARN.match(kms_key):
        raise ConfigError(
            "--kms-key: give the key's ARN (arn:aws:kms:REGION:ACCOUNT:key/ID); "
            "IAM policies name keys by ARN, not by alias or id"
        )
    n = _names(settings, account, connection)
    resources = {
        "buckets": [n.bucket_arn(b) for b in n.buckets],
        "inputs": [n.bucket_arn(n.input_bucket, f"{INPUT_PREFIX}*")],
        "outputs": [n.bucket_arn(n.output_bucket, f"{OUTPUT_PREFIX}*")],
        "heartbeats": [n.bucket_arn(n.output_bucket, f"{WORKERS_PREFIX}*")],
        "jobs": [n.queue_arn(n.jobs_queue)],
        "dlq": [n.queue_arn(n.dead_letter_queue)],
        "client queues": [n.queue_arn(f"{n.client_queue_prefix}*")],
        "topic": [n.topic_arn],
        "key": [kms_key or ""],
        "mediaconvert queue": [
            f"arn:{n.partition}:mediaconvert:{n.region}:{n.account}:queues/Default"
        ],
        "mediaconvert role": [n.role_arn(n.mediaconvert_role)],
        "rules": [n.rule_arn(n.mediaconvert_rule("*"))],
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


def _names(settings: Settings, account: str | None, connection: Connection | None) -> Names:
    if connection is not None:
        return connection.names
    if account is not None:
        if not _ACCOUNT.match(account):
            raise ConfigError(f"--account {account!r}: an AWS account id is 12 digits")
        return names_for(settings, account)
    session, _region = session_for(settings)
    if session.get_credentials() is None:
        raise ConfigError(
            "the policy names the deployment's account: pass --account ID (no credentials "
            "needed then), or give AWS credentials to read it from (--profile, "
            "AWS_ACCESS_KEY_ID…)"
        )
    return connect(settings).names
