"""MediaConvert's surroundings on a real endpoint (moto over HTTP): the service role
(IAM resources) and the EventBridge rule that brings job events to the client's queue."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import boto3

from autotranscode.backends.aws import Names
from autotranscode.deploy.provision import ensure_role
from autotranscode.engines.mediaconvert import META_CLIENT, ensure_rule, parse_event
from autotranscode.messages import State

ACCOUNT = "123456789012"  # moto's


def role_policy(input_bucket: str, output_bucket: str) -> dict[str, Any]:
    """The shape `autotranscode iam-policy --role mediaconvert` gives."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadInputs",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{input_bucket}/inputs/*"],
            },
            {
                "Sid": "WriteOutputs",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": [f"arn:aws:s3:::{output_bucket}/outputs/*"],
            },
        ],
    }


def _event(client_id: str, bucket: str) -> dict[str, Any]:
    return {
        "timestamp": 1671476832124,
        "accountId": ACCOUNT,
        "queue": f"arn:aws:mediaconvert:us-east-1:{ACCOUNT}:queues/Default",
        "jobId": "1671476818694-phptj0",
        "status": "COMPLETE",
        "userMetadata": {
            "autotranscodeJobId": "a1b2c3",
            META_CLIENT: client_id,
            "autotranscodeInput": "inputs/f1/clip.mov",
            "fileId": "f1",
        },
        "outputGroupDetails": [
            {
                "outputDetails": [
                    {
                        "outputFilePaths": [f"s3://{bucket}/outputs/a1b2c3/clip.web-720p.mp4"],
                        "durationInMs": 2000,
                        "videoDetails": {"widthInPx": 320, "heightInPx": 240},
                    }
                ],
                "type": "FILE_GROUP",
            }
        ],
    }


def test_service_role_is_created_once_and_scoped_to_the_two_buckets(
    boto_session: boto3.Session, deployment_name: str
) -> None:
    iam = boto_session.resource("iam")
    names = Names(deployment_name, ACCOUNT, "us-east-1")
    tag = {"autotranscode:deployment": deployment_name}
    wanted = role_policy("in-bucket", "out-bucket")
    arn = ensure_role(iam, names, wanted)
    assert ensure_role(iam, names, wanted) == arn
    role = iam.Role(f"{deployment_name}-mediaconvert")
    trust = role.assume_role_policy_document
    assert trust["Statement"][0]["Principal"] == {"Service": "mediaconvert.amazonaws.com"}
    policy = role.Policy("buckets").policy_document
    assert policy == wanted
    for statement in policy["Statement"]:
        assert not any("*" in action for action in statement["Action"])
        for resource in statement["Resource"]:
            assert resource.startswith(("arn:aws:s3:::in-bucket/", "arn:aws:s3:::out-bucket/"))
    assert {t["Key"]: t["Value"] for t in role.tags} == tag


def test_job_events_reach_the_client_queue_and_read_as_notifications(
    boto_session: boto3.Session, deployment_name: str
) -> None:
    sqs = boto_session.resource("sqs")
    events = boto_session.client("events")
    queue = sqs.create_queue(QueueName=f"{deployment_name}-client-c1")
    queue_arn = queue.attributes["QueueArn"]
    names = Names(deployment_name, ACCOUNT, "us-east-1")
    rule_arn = ensure_rule(events, names, "c1", queue_arn)
    assert rule_arn == names.rule_arn(f"{deployment_name}-mediaconvert-c1")
    assert ensure_rule(events, names, "c1", queue_arn) == rule_arn  # idempotent

    ours = _event("c1", "out-bucket")
    someone_elses = copy.deepcopy(ours)
    someone_elses["userMetadata"][META_CLIENT] = "c2"
    entries = [
        {
            "Source": "aws.mediaconvert",
            "DetailType": "MediaConvert Job State Change",
            "Detail": json.dumps(detail),
        }
        for detail in (someone_elses, ours)
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0

    got: list[Any] = []
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        got = queue.receive_messages(WaitTimeSeconds=1)
    assert len(got) == 1, "only this client's job events match its rule"
    delivered = json.loads(got[0].body)
    assert delivered["detail"] == ours
    # EventBridge always sets the account; moto 5.2 leaves it out of the envelope.
    delivered.setdefault("account", ACCOUNT)
    body = json.dumps(delivered)
    note = parse_event(body, account=ACCOUNT, client_id="c1", output_bucket="out-bucket")
    assert note.state == State.COMPLETED and note.job_id == "a1b2c3"
    assert [o.key for o in note.outputs] == ["outputs/a1b2c3/clip.web-720p.mp4"]
    assert queue.receive_messages(WaitTimeSeconds=1) == []
