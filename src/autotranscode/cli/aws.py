"""The aws deployment's life: ``setup``, ``cleanup``, ``teardown``, and ``iam-policy``."""

from __future__ import annotations

import json
from typing import Any

import click

from ..journal import Journal
from ..service import JOURNAL_FILE, client_lock
from .logs import Logs, logging_options, start_logging
from .options import (
    Command,
    aws_backend_option,
    config_option,
    endpoint_option,
    engine_option,
    errors,
    name_option,
    options,
    profile_option,
    region_option,
    setting,
    settings_from,
    state_dir_option,
)

#: Where the deployment is, for the commands that manage it (all on the aws backend).
_deployment_options = options(
    config_option,
    aws_backend_option,
    endpoint_option,
    region_option,
    profile_option,
    name_option,
)


def _orphan_hours() -> str:
    """cleanup's default age, from deploy (loaded only when help is shown: boto3 is slow)."""
    from ..deploy import cleanup

    return f"{cleanup.DEFAULT_ORPHAN_HOURS:g}"


def _resources(reports: list[Any]) -> None:
    for r in reports:
        details = f"  ({', '.join(r.details)})" if r.details else ""
        click.echo(f"{r.kind:<7} {r.status:<13} {r.name}{details}")


@click.command("setup", cls=Command)
@click.option(
    "--kms-key",
    metavar="ARN",
    help="Encrypt objects with this KMS key (SSE-KMS) [default: S3-managed keys, SSE-S3].",
)
@_deployment_options
@engine_option
@logging_options
def setup_cmd(kms_key: str | None, logs: Logs, **params: Any) -> None:
    """Create the aws deployment's buckets, queues and topic, or check them (safe to repeat).

    It needs rights to create them (an administrator's); clients and workers then run
    with the narrower policies `autotranscode iam-policy` prints. Run it again after
    changing visibility-timeout or max-attempts.
    """
    with errors():
        start_logging(logs)
        from ..deploy import provision

        reports = provision.setup(settings_from(params), kms_key)
    _resources(reports)
    for r in reports:
        for warning in r.warnings:
            click.echo(f"warning: {r.name}: {warning}", err=True)


@click.command("cleanup", cls=Command)
@click.option("--s3", is_flag=True, help="Objects the pipeline left, and unfinished uploads.")
@click.option("--sqs", is_flag=True, help="Stale notifications; count the dead-letter queue.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; change nothing.")
@setting(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="HOURS",
    help="Objects of files this --state-dir does not know may be another client's: they are "
    "removed only once this old",
    default_text=_orphan_hours,
)
@state_dir_option
@_deployment_options
@logging_options
def cleanup_cmd(
    s3: bool, sqs: bool, dry_run: bool, older_than: float | None, logs: Logs, **params: Any
) -> None:
    """Remove what the pipeline left on aws (neither --s3 nor --sqs: both).

    This --state-dir's journal decides: objects and notifications of files still in
    progress stay; those of finished files go. Only one client per state dir, so it
    waits for no run/transcode: it refuses while one is active.
    """
    with errors():
        start_logging(logs)
        from ..deploy import cleanup

        s = settings_from(params)
        both = not (s3 or sqs)
        with client_lock(s.state_dir):
            journal = Journal(s.state_dir / JOURNAL_FILE)
            try:
                report = cleanup.cleanup(
                    s,
                    journal,
                    s3=s3 or both,
                    sqs=sqs or both,
                    dry_run=dry_run,
                    older_than_hours=cleanup.DEFAULT_ORPHAN_HOURS
                    if older_than is None
                    else older_than,
                )
            finally:
                journal.close()
    would = "would " if dry_run else ""
    deleted, aborted = ("to delete", "to abort") if dry_run else ("deleted", "aborted")
    for url in report.aborted_uploads:
        click.echo(f"{would}abort upload {url}")
    for url in report.deleted_objects:
        click.echo(f"{would}delete {url}")
    if s3 or both:
        click.echo(
            f"objects: {len(report.deleted_objects)} {deleted}, "
            f"{len(report.aborted_uploads)} uploads {aborted}, {report.kept_objects} kept"
        )
    if sqs or both:
        click.echo(
            f"notifications: {report.deleted_messages} {deleted}, {report.kept_messages} kept"
        )
    if report.dead_letters is not None:
        click.echo(f"dead-letter queue: {report.dead_letters} messages (inspect, then purge)")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)


@click.command("teardown", cls=Command)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_deployment_options
@logging_options
def teardown_cmd(yes: bool, logs: Logs, **params: Any) -> None:
    """Delete the aws deployment: topic, queues, and buckets with every object in them.

    Only what carries the tag autotranscode:deployment=NAME goes; anything named like
    it without that tag is kept and listed.
    """
    with errors():
        start_logging(logs)
        from ..backends.aws import connect
        from ..deploy import provision

        s = settings_from(params)
        conn = connect(s)
        plan = provision.teardown(s, dry_run=True, connection=conn)
        doomed = [r for r in plan if r.status == provision.Status.WOULD_DELETE]
        if doomed and not yes:
            _resources(plan)
            click.confirm(
                f"Delete these {len(doomed)} resources of deployment {s.name!r} "
                f"(account {conn.names.account}, {conn.names.region}) and all they hold?",
                abort=True,
            )
        reports = provision.teardown(s, connection=conn) if doomed else plan
    _resources(reports)
    if not doomed:
        click.echo(f"nothing to delete: deployment {s.name!r} has no resources here")


@click.command("iam-policy", cls=Command)
@click.option(
    "--role",
    type=click.Choice(["client", "worker", "mediaconvert"]),
    required=True,
    help="client: run/transcode/retry/cleanup; worker: `autotranscode worker`; "
    "mediaconvert: the role MediaConvert assumes.",
)
@click.option("--kms-key", metavar="ARN", help="The KMS key the buckets encrypt with, if any.")
@click.option(
    "--account",
    metavar="ID",
    help="The deployment's AWS account id (12 digits): with a region, no credentials are "
    "needed [default: the account of the credentials].",
)
@_deployment_options
@engine_option
@logging_options
def iam_policy_cmd(
    role: str, kms_key: str | None, account: str | None, logs: Logs, **params: Any
) -> None:
    """Print the least-privilege IAM policy (JSON) for a role of this deployment.

    Offline given --account and a region (--region, or the AWS chain's); otherwise the
    account is read from the credentials (sts:GetCallerIdentity, allowed to everyone).
    """
    with errors():
        start_logging(logs)
        from ..deploy import iam

        policy = iam.iam_policy(settings_from(params), role, kms_key, account=account)
    click.echo(json.dumps(policy, indent=2))
