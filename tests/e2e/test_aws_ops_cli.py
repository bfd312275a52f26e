"""``setup``, ``cleanup``, ``teardown`` and ``iam-policy`` as an operator runs them (aws: moto).

One deployment's whole life in one test (setup twice, a transcode, cleanup, teardown),
then the edges: SSE-KMS, a worker started before setup, the local backend.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cli_harness import Cli, make_cli, open_cli

from conftest import Clip, check_output

TAG = "autotranscode:deployment"


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "aws")


def _session() -> boto3.Session:
    return boto3.Session(region_name="us-east-1")


def _tagged(endpoint: str | None, name: str | None) -> list[str]:
    tagging = _session().client("resourcegroupstaggingapi", endpoint_url=endpoint)
    found = tagging.get_resources(TagFilters=[{"Key": TAG, "Values": [str(name)]}])
    return sorted(r["ResourceARN"] for r in found["ResourceTagMappingList"])


def _rows(stdout: str) -> dict[str, str]:
    """``kind status name`` lines: name -> status."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(
            r"^(bucket|queue|topic)\s+(created|exists|updated|deleted|would delete|kept)"
            r"\s+(\S+)",
            line,
        )
        if m:
            rows[m.group(3)] = m.group(2)
    return rows


def test_a_deployment_from_setup_to_teardown(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    first = cli.run("setup")
    assert first.returncode == 0, first
    assert "Traceback" not in first.stderr
    created = _rows(first.stdout)
    assert sorted(created.values()) == ["created"] * 5, first.stdout
    assert first.stderr.count("warning:") == 2, "the TLS-only policy needs an https endpoint"
    assert "TLS-only bucket policy not applied" in first.stderr

    second = cli.run("setup")
    assert second.returncode == 0, second
    assert _rows(second.stdout) == dict.fromkeys(created, "exists"), second.stdout

    out = tmp_path / "out"
    clip = clips["h264.mp4"]
    done = cli.run("transcode", clip.path, "--out", out)
    assert done.returncode == 0, done
    check_output(out / "h264.mp4", clip)

    # A crash's leftovers: an input of a file this client does not know.
    s3 = _session().resource("s3", endpoint_url=cli.endpoint)
    (bucket,) = [n for n in created if n.startswith(f"{cli.deployment}-in-")]
    s3.Bucket(bucket).put_object(Key="inputs/0123abcd/lost.mov", Body=b"x")
    left = f"s3://{bucket}/inputs/0123abcd/lost.mov"

    young = cli.run("cleanup", "--dry-run")
    assert young.returncode == 0, young
    assert left not in young.stdout, "unknown and young: maybe another client's"
    dry = cli.run("cleanup", "--dry-run", "--older-than", "0")
    assert dry.returncode == 0, dry
    assert f"would delete {left}" in dry.stdout.splitlines(), dry.stdout
    assert "dead-letter queue: 0 messages" in dry.stdout
    assert [o.key for o in s3.Bucket(bucket).objects.all()] == ["inputs/0123abcd/lost.mov"]
    real = cli.run("cleanup", "--s3", "--older-than", "0")
    assert real.returncode == 0, real
    assert f"delete {left}" in real.stdout.splitlines()
    assert "notifications:" not in real.stdout, "--s3 alone leaves the queues be"
    assert list(s3.Bucket(bucket).objects.all()) == []
    cli.assert_no_leftovers()

    tagged = _tagged(cli.endpoint, cli.deployment)
    assert len(tagged) == 6  # two buckets, job queue, dead-letter queue, topic, client queue
    refused = cli.run("teardown")  # no terminal to answer the question: nothing happens
    assert refused.returncode != 0
    assert "Delete these 6 resources" in refused.stdout + refused.stderr
    assert _tagged(cli.endpoint, cli.deployment) == tagged

    gone = cli.run("teardown", "--yes")
    assert gone.returncode == 0, gone
    assert list(_rows(gone.stdout).values()) == ["deleted"] * 6, gone.stdout
    assert _tagged(cli.endpoint, cli.deployment) == []
    again = cli.run("teardown", "--yes")
    assert again.returncode == 0 and "nothing to delete" in again.stdout, again


def test_setup_with_a_kms_key_encrypts_with_it(cli: Cli) -> None:
    key = _session().client("kms", endpoint_url=cli.endpoint).create_key()["KeyMetadata"]["Arn"]

    result = cli.run("setup", "--kms-key", key)

    assert result.returncode == 0, result
    s3 = _session().client("s3", endpoint_url=cli.endpoint)
    for role in ("in", "out"):
        bucket = f"{cli.deployment}-{role}-123456789012-us-east-1"
        assert _rows(result.stdout)[bucket] == "created"
        (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        assert rule["ApplyServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": key,
        }
        assert rule["BucketKeyEnabled"] is True
    again = cli.run("setup", "--kms-key", key)
    assert set(_rows(again.stdout).values()) == {"exists"}, again.stdout
    without = cli.run("setup")
    assert set(_rows(without.stdout).values()) == {"exists"}, "SSE-KMS is kept, not undone"

    policy = cli.run("iam-policy", "--role", "worker", "--kms-key", key)
    assert policy.returncode == 0, policy
    statements = json.loads(policy.stdout)["Statement"]
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= {a for s in statements for a in s["Action"]}
    assert cli.run("teardown", "--yes").returncode == 0


def test_a_worker_started_before_setup_says_to_run_it(cli: Cli) -> None:
    result = cli.run("worker", timeout=60)

    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert re.search(
        rf"error: queue {cli.deployment}-jobs of deployment '{cli.deployment}' does not exist "
        r".*run `autotranscode setup` first",
        result.stderr,
    ), result.stderr
    assert _tagged(cli.endpoint, cli.deployment) == [], "a worker creates nothing"


@pytest.mark.parametrize("role", ["client", "worker", "mediaconvert"])
def test_iam_policy_prints_a_policy_document(cli: Cli, role: str) -> None:
    result = cli.run("iam-policy", "--role", role)
    assert result.returncode == 0, result
    policy = json.loads(result.stdout)
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert all(cli.deployment in arn for arn in statement["Resource"]), statement


@pytest.mark.parametrize(
    "command",
    [["setup"], ["cleanup"], ["teardown", "--yes"], ["iam-policy", "--role", "client"]],
    ids=lambda c: c[0],
)
def test_operations_are_for_the_aws_backend(
    request: pytest.FixtureRequest, tmp_path: Path, command: list[str]
) -> None:
    """They imply the aws backend; only an explicit --backend local is a mistake to say."""
    local = make_cli(request, tmp_path, "local")
    result = local.run(*command)
    assert result.returncode == 2, result
    assert (
        f"Error: {command[0]} manages the aws backend's cloud resources: drop --backend local"
        in (result.stderr)
    )
