"""cleanup: remove what the pipeline left in the deployment's buckets and in this
client's notification queue, as this state dir's journal decides; nothing else.

Only resources tagged as the deployment's are touched (``api.TAG_KEY``); the
dead-letter queue is counted, never emptied (its messages are for a human).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from ..backends.aws.adapters import SqsQueue
from ..backends.aws.api import (
    TAG_KEY,
    Connection,
    boundary,
    bucket_exists,
    bucket_tags,
    client_id,
    connect,
    find_queue,
    not_ours,
    queue_tags,
)
from ..errors import MessageError, QueueError, StorageError
from ..journal import FileRecord, Journal
from ..keys import INPUT_PREFIX, OUTPUT_PREFIX
from ..messages import Notification, parse_notification, unwrap_sns
from ..settings import Settings
from .reports import CleanupReport

log = logging.getLogger(__name__)

#: cleanup takes objects that no job of this client's journal explains for another client's,
#: until they are this old.
DEFAULT_ORPHAN_HOURS = 24.0
#: cleanup hides the notifications it inspects this long, then hands back those it keeps.
CLEANUP_VISIBILITY_SECONDS = 30
_DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys
_SQS_BATCH = 10  # and SQS's batch actions this many entries


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
        with boundary(QueueError, f"counting the messages in {names.dead_letter_queue}"):
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
    with boundary(StorageError, f"cleaning up s3://{name}/{prefix}"):
        if not bucket_exists(conn.s3, name):
            report.notes.append(f"bucket {name} does not exist")
            return
        if bucket_tags(bucket).get(TAG_KEY) != conn.names.name:
            report.notes.append(not_ours("bucket", name, conn.names.tag) + "; left alone")
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
        check_deleted(bucket.name, [response])


def check_deleted(bucket: str, responses: Iterable[dict[str, Any]]) -> None:
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
    cid = client_id(settings.state_dir, create=False)
    if cid is None:
        report.notes.append(f"no notification queue: {settings.state_dir} never ran a client")
        return
    name = f"{conn.names.client_queue_prefix}{cid}"
    with boundary(QueueError, f"cleaning up queue {name}"):
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


def _owned_queue(conn: Connection, name: str, report: CleanupReport) -> Any:
    queue = find_queue(conn.sqs, name)
    if queue is None:
        report.notes.append(f"queue {name} does not exist")
    elif queue_tags(conn.sqs, queue).get(TAG_KEY) != conn.names.name:
        report.notes.append(not_ours("queue", name, conn.names.tag) + "; left alone")
        return None
    return queue
