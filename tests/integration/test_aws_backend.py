"""The aws backend against a real S3/SQS/SNS endpoint (moto's server), spoken to over HTTP."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from autotranscode import settings as settings_mod
from autotranscode.backends.aws import AwsBackend
from autotranscode.backends.base import Received
from autotranscode.deploy import open_aws
from autotranscode.deploy.provision import setup
from autotranscode.errors import BackendError, ConfigError, MessageError, StorageError

MIB = 1024 * 1024


def _settings(deployment_name: str, tmp_path: Path, endpoint: str, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "backend": "aws",
        "name": deployment_name,
        "state_dir": tmp_path / "state",
        "endpoint_url": endpoint,
    }
    values.update(extra)
    return settings_mod.build(values)


@pytest.fixture
def backend(
    aws_env: dict[str, str], moto_endpoint: str, deployment_name: str, tmp_path: Path
) -> AwsBackend:
    return open_aws(_settings(deployment_name, tmp_path, moto_endpoint))


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    """Above the multipart thresholds (8 MiB up, 16 MiB down): both go in parts."""
    path = tmp_path / "big.mov"
    path.write_bytes(os.urandom(20 * MIB + 12345))
    return path


def _until(get: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


# --- setup ---------------------------------------------------------------------------------------


def test_setup_is_idempotent_and_hardens_the_buckets(
    aws_env: dict[str, str],
    moto_endpoint: str,
    deployment_name: str,
    tmp_path: Path,
    boto_session: boto3.Session,
) -> None:
    settings = _settings(deployment_name, tmp_path, moto_endpoint)
    first = open_aws(settings)
    second = open_aws(settings)
    assert first.kind == "aws"
    assert first.store.input_bucket == f"{deployment_name}-in-123456789012-us-east-1"
    assert first.store.output_bucket == f"{deployment_name}-out-123456789012-us-east-1"
    assert (first.store.input_bucket, first.store.output_bucket) == (
        second.store.input_bucket,
        second.store.output_bucket,
    )
    assert first.jobs.name == second.jobs.name == f"{deployment_name}-jobs"
    assert first.dead_letters.name == f"{deployment_name}-jobs-dlq"
    assert first.topic.arn == second.topic.arn
    assert first.topic.arn.endswith(f":{deployment_name}-notifications")

    s3 = boto_session.client("s3")
    names = [
        b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(deployment_name)
    ]
    assert sorted(names) == sorted([first.store.input_bucket, first.store.output_bucket])
    for bucket in names:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        default = rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == "AES256"
        (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert rule["Status"] == "Enabled"
        assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
        assert rule["Expiration"]["Days"] == 7
        tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
        assert {"Key": "autotranscode:deployment", "Value": deployment_name} in tags

    sqs = boto_session.client("sqs")
    urls = sqs.list_queues(QueueNamePrefix=deployment_name)["QueueUrls"]
    assert sorted(u.rsplit("/", 1)[1] for u in urls) == [
        f"{deployment_name}-jobs",
        f"{deployment_name}-jobs-dlq",
    ], "no client queue before backend.notifications is used"
    jobs_url = sqs.get_queue_url(QueueName=f"{deployment_name}-jobs")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=jobs_url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "60"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{deployment_name}-jobs-dlq")
    assert int(redrive["maxReceiveCount"]) == 4, "max_attempts + 1: the last receive reports"
    assert sqs.list_queue_tags(QueueUrl=jobs_url)["Tags"] == {
        "autotranscode:deployment": deployment_name
    }
    sns = boto_session.client("sns")
    topic_tags = sns.list_tags_for_resource(ResourceArn=first.topic.arn)["Tags"]
    assert {"Key": "autotranscode:deployment", "Value": deployment_name} in topic_tags


def test_changed_settings_update_the_existing_job_queue_in_setup_only(
    aws_env: dict[str, str],
    moto_endpoint: str,
    deployment_name: str,
    tmp_path: Path,
    boto_session: boto3.Session,
) -> None:
    open_aws(_settings(deployment_name, tmp_path, moto_endpoint))
    changed = _settings(
        deployment_name, tmp_path, moto_endpoint, visibility_timeout=120, max_attempts=5
    )
    sqs = boto_session.client("sqs")
    url = sqs.get_queue_url(QueueName=f"{deployment_name}-jobs")["QueueUrl"]

    def attrs() -> dict[str, str]:
        got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return {k: got[k] for k in ("VisibilityTimeout", "RedrivePolicy")}

    before = attrs()
    open_aws(changed, create=False)
    assert attrs() == before, "starting only looks the queue up: it needs no admin rights"

    reports = {r.name: r for r in setup(changed)}
    assert reports[f"{deployment_name}-jobs"].status == "updated"
    assert reports[f"{deployment_name}-jobs"].details == ("RedrivePolicy", "VisibilityTimeout")
    assert attrs()["VisibilityTimeout"] == "120"
    assert int(json.loads(attrs()["RedrivePolicy"])["maxReceiveCount"]) == 6


def test_unreachable_endpoint_is_a_backend_error(
    aws_env: dict[str, str], deployment_name: str, tmp_path: Path
) -> None:
    settings = _settings(deployment_name, tmp_path, "http://127.0.0.1:9")
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"127\.0\.0\.1:9.*cannot be reached"):
        open_aws(settings)
    assert time.monotonic() - started < 15


def test_missing_credentials_is_a_config_error(
    aws_env: dict[str, str],
    moto_endpoint: str,
    deployment_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match="no AWS credentials found"):
        open_aws(_settings(deployment_name, tmp_path, moto_endpoint))


def test_unknown_profile_is_a_config_error(
    aws_env: dict[str, str],
    moto_endpoint: str,
    deployment_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    settings = _settings(deployment_name, tmp_path, moto_endpoint, profile="nope")
    with pytest.raises(ConfigError, match="'nope'"):
        open_aws(settings)


# --- objects -------------------------------------------------------------------------------------


def test_multipart_round_trip(
    backend: AwsBackend, big_file: Path, tmp_path: Path, boto_session: boto3.Session
) -> None:
    store = backend.store
    bucket = store.input_bucket
    sent: list[int] = []
    store.upload(big_file, bucket, "inputs/a/big.mov", sent.append)
    assert big_file.exists(), "upload keeps the caller's file"
    assert sum(sent) == big_file.stat().st_size
    head = boto_session.client("s3").head_object(Bucket=bucket, Key="inputs/a/big.mov")
    assert head["ETag"].endswith('-3"'), "8 MiB parts: a 20 MiB file goes in three"
    assert head["ServerSideEncryption"] == "AES256"
    assert store.size(bucket, "inputs/a/big.mov") == big_file.stat().st_size

    got: list[int] = []
    dest = tmp_path / "back.mov"
    store.download(bucket, "inputs/a/big.mov", dest, got.append)
    assert sum(got) == big_file.stat().st_size
    assert dest.read_bytes() == big_file.read_bytes()

    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 10)
    store.put(small, bucket, "inputs/a/small.txt")
    assert not small.exists(), "put takes the file"
    store.upload(dest, bucket, "inputs/b/other.mov")
    assert store.keys(bucket, "inputs/a/") == ["inputs/a/big.mov", "inputs/a/small.txt"]
    assert len(store.keys(bucket)) == 3
    assert store.delete_prefix(bucket, "inputs/a/") == 2
    assert store.keys(bucket) == ["inputs/b/other.mov"]
    assert store.delete_prefix(bucket, "inputs/a/") == 0
    assert store.keys(store.output_bucket) == []


def test_delete_prefix_also_aborts_unfinished_multipart_uploads(
    backend: AwsBackend, tmp_path: Path, boto_session: boto3.Session
) -> None:
    """A transfer killed mid-way leaves parts that are not objects; cleanup must see them too."""
    s3 = boto_session.client("s3")
    bucket = backend.store.input_bucket
    small = tmp_path / "x"
    small.write_bytes(b"x")
    backend.store.upload(small, bucket, "inputs/f1/done.mov")
    s3.create_multipart_upload(Bucket=bucket, Key="inputs/f1/killed.mov")
    s3.create_multipart_upload(Bucket=bucket, Key="inputs/other/keep.mov")
    assert backend.store.delete_prefix(bucket, "inputs/f1/") == 1
    left = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in left] == ["inputs/other/keep.mov"]
    assert backend.store.keys(bucket) == []


def test_missing_object_is_a_storage_error(backend: AwsBackend, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="inputs/none"):
        backend.store.download(backend.store.input_bucket, "inputs/none", tmp_path / "x")
    with pytest.raises(StorageError, match="inputs/none"):
        backend.store.size(backend.store.input_bucket, "inputs/none")
    assert not (tmp_path / "x").exists()


def test_short_download_is_refused(
    backend: AwsBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"0123456789" * 100)
    backend.store.upload(src, backend.store.input_bucket, "inputs/c/clip.mp4")

    def truncated(self: Any, bucket: str, key: str, filename: str, *a: Any, **kw: Any) -> None:
        Path(filename).write_bytes(b"012")

    monkeypatch.setattr(boto3.s3.transfer.S3Transfer, "download_file", truncated)
    dest = tmp_path / "out.mp4"
    with pytest.raises(StorageError, match="3 bytes instead of 1000"):
        backend.store.download(backend.store.input_bucket, "inputs/c/clip.mp4", dest)
    assert not dest.exists()


def test_local_path_is_removed_after_use(backend: AwsBackend, tmp_path: Path) -> None:
    src = tmp_path / "clip.mkv"
    src.write_bytes(b"matroska-ish")
    backend.store.upload(src, backend.store.output_bucket, "outputs/j/clip.mkv")
    work = tmp_path / "work"
    work.mkdir()
    with backend.store.local_path(backend.store.output_bucket, "outputs/j/clip.mkv", work) as p:
        assert p.suffix == ".mkv"
        assert p.is_relative_to(work)
        assert p.read_bytes() == b"matroska-ish"
    assert not p.exists()
    assert list(work.iterdir()) == []
    with (
        pytest.raises(RuntimeError),
        backend.store.local_path(backend.store.output_bucket, "outputs/j/clip.mkv", work),
    ):
        raise RuntimeError("the block failed")
    assert list(work.iterdir()) == []


# --- queues --------------------------------------------------------------------------------------


def test_job_queue_leases(backend: AwsBackend) -> None:
    jobs = backend.jobs
    assert jobs.receive(wait=0) == []
    jobs.send('{"job": 1}')
    assert jobs.count() == 1
    (msg,) = jobs.receive(wait=1)
    assert (msg.body, msg.receive_count) == ('{"job": 1}', 1)
    assert jobs.count() == 1, "an invisible message still counts"
    assert jobs.receive(wait=0) == [], "leased messages are invisible"
    jobs.extend(msg, 30)
    assert jobs.receive(wait=0) == []
    jobs.release(msg)
    (again,) = jobs.receive(wait=1)
    assert again.body == msg.body
    assert again.receive_count == 2
    jobs.delete(again)
    assert jobs.count() == 0
    assert jobs.receive(wait=0) == []


def test_cancelled_receive_returns_at_once(backend: AwsBackend) -> None:
    backend.jobs.send("x")
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    assert backend.jobs.receive(wait=20, cancel=stop) == []
    assert time.monotonic() - started < 1
    assert backend.jobs.count() == 1, "nothing was taken"


def test_receive_takes_several(backend: AwsBackend) -> None:
    for i in range(4):
        backend.jobs.send(str(i))
    got: list[Received] = []
    deadline = time.monotonic() + 5
    while len(got) < 4 and time.monotonic() < deadline:
        got += backend.jobs.receive(wait=1, max_messages=50)
    assert sorted(m.body for m in got) == ["0", "1", "2", "3"]


def test_redrive_to_dead_letter_queue(
    aws_env: dict[str, str], moto_endpoint: str, deployment_name: str, tmp_path: Path
) -> None:
    settings = _settings(
        deployment_name, tmp_path, moto_endpoint, visibility_timeout=10, max_attempts=2
    )
    backend = open_aws(settings)
    backend.jobs.send("poison")
    for attempt in (1, 2, 3):
        (msg,) = backend.jobs.receive(wait=1)
        assert msg.receive_count == attempt
        backend.jobs.release(msg)
    assert backend.jobs.receive(wait=0) == []
    (dead,) = _until(lambda: backend.dead_letters.receive(wait=1))
    assert dead.body == "poison"
    assert backend.jobs.count() == 0


def test_stale_receipt_is_a_queue_error(backend: AwsBackend) -> None:
    from autotranscode.errors import QueueError

    with pytest.raises(QueueError, match=backend.jobs.name):
        backend.jobs.extend(Received("x", "not-a-receipt-handle"), 30)


# --- notifications -------------------------------------------------------------------------------


def test_notifications_reach_the_client_queue(
    backend: AwsBackend, tmp_path: Path, boto_session: boto3.Session
) -> None:
    queue = backend.notifications
    assert queue is backend.notifications, "created once"
    client_id = (tmp_path / "state" / "aws-client-id").read_text().strip()
    assert queue.name == f"{backend.settings.name}-client-{client_id}"

    backend.topic.publish('{"state": "COMPLETED"}', client=client_id)
    (msg,) = _until(lambda: queue.receive(wait=2))
    envelope = json.loads(msg.body)
    assert envelope["Type"] == "Notification", "the standard envelope, not raw delivery"
    assert backend.open_notification(msg.body) == '{"state": "COMPLETED"}'
    queue.delete(msg)
    assert queue.count() == 0

    subs = boto_session.client("sns").list_subscriptions_by_topic(TopicArn=backend.topic.arn)
    assert len(subs["Subscriptions"]) == 1


def test_client_queue_persists_and_admits_only_our_topic(
    aws_env: dict[str, str],
    moto_endpoint: str,
    deployment_name: str,
    tmp_path: Path,
    boto_session: boto3.Session,
) -> None:
    settings = _settings(deployment_name, tmp_path, moto_endpoint)
    first = open_aws(settings).notifications
    backend = open_aws(settings)
    assert backend.notifications.name == first.name, "the client id is kept in the state dir"
    subs = boto_session.client("sns").list_subscriptions_by_topic(TopicArn=backend.topic.arn)
    assert len(subs["Subscriptions"]) == 1, "subscribing again is idempotent"

    sqs = boto_session.client("sqs")
    url = sqs.get_queue_url(QueueName=first.name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy", "QueueArn"])
    (statement,) = json.loads(attrs["Attributes"]["Policy"])["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == attrs["Attributes"]["QueueArn"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": backend.topic.arn}}


def test_notification_from_another_topic_is_rejected(
    backend: AwsBackend, boto_session: boto3.Session
) -> None:
    queue = backend.notifications
    sqs = boto_session.resource("sqs")
    queue_arn = sqs.get_queue_by_name(QueueName=queue.name).attributes["QueueArn"]
    other = boto_session.resource("sns").create_topic(Name=f"{backend.settings.name}-other")
    other.subscribe(Protocol="sqs", Endpoint=queue_arn)
    other.publish(Message='{"state": "COMPLETED"}')
    (msg,) = _until(lambda: queue.receive(wait=2))
    assert json.loads(msg.body)["TopicArn"] == other.arn
    with pytest.raises(MessageError, match="unexpected topic"):
        backend.open_notification(msg.body)
    with pytest.raises(MessageError):
        backend.open_notification('{"Type": "Notification", "Message": "x"}')
    with pytest.raises(MessageError):
        backend.open_notification("not json")


def test_workers_never_create_client_queues(
    aws_env: dict[str, str],
    moto_endpoint: str,
    deployment_name: str,
    tmp_path: Path,
    boto_session: boto3.Session,
) -> None:
    backend = open_aws(_settings(deployment_name, tmp_path, moto_endpoint))
    backend.jobs.send("x")
    backend.topic.publish("y")
    backend.close()
    urls = boto_session.client("sqs").list_queues(QueueNamePrefix=f"{deployment_name}-client")
    assert urls.get("QueueUrls", []) == []
    assert not (tmp_path / "state" / "aws-client-id").exists()


# --- hand-backs, reasons, a lost client queue (issue 13, cases 5, 6 and 12) ----------------------


def test_a_hand_back_keeps_the_attempts_made_but_not_this_one(backend: AwsBackend) -> None:
    """SQS cannot lower a receive count: the copy a hand-back sends carries the count."""
    backend.jobs.send("the job")
    (first,) = _until(lambda: backend.jobs.receive(wait=1))
    backend.jobs.release(first)  # a counted attempt (a failure)
    (second,) = _until(lambda: backend.jobs.receive(wait=1))
    assert second.receive_count == 2
    for _ in range(4):  # stops: none of them counts
        backend.jobs.hand_back(second)
        (second,) = _until(lambda: backend.jobs.receive(wait=1))
        assert (second.body, second.receive_count) == ("the job", 2)
    backend.jobs.delete(second)
    assert _until(lambda: backend.jobs.count() == 0)


def test_dead_letters_keep_their_reason(backend: AwsBackend) -> None:
    backend.dead_letters.send("the job", reason="rejected: not ours")
    (got,) = _until(lambda: backend.dead_letters.receive(wait=1))
    assert (got.body, got.note) == ("the job", "rejected: not ours")


def test_a_deleted_client_queue_is_made_again(
    backend: AwsBackend, boto_session: boto3.Session
) -> None:
    queue = backend.notifications
    boto_session.resource("sqs").get_queue_by_name(QueueName=queue.name).delete()
    assert queue.receive(wait=0) == []
    backend.topic.publish('{"state": "COMPLETED"}', client=backend.client_id)
    (msg,) = _until(lambda: queue.receive(wait=1))
    assert backend.open_notification(msg.body) == '{"state": "COMPLETED"}'
