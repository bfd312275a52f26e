"""The runtime adapters: our ObjectStore, MessageQueue and Topic over S3, SQS and SNS.

Everything goes through boto3 resources (buckets, objects, queues, messages, topics
and their collections) and s3transfer, so retries, multipart, checksums and
endpoint/credential resolution are boto3's, not ours; ``api.boundary`` turns their
errors into ours. They use resources that exist; none creates one.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from ...errors import QueueError, StorageError
from ..base import MessageQueue, ObjectStore, ProgressCallback, Received, Topic
from .api import NO_QUEUE, UPLOAD_PARTS_IN_FLIGHT, boundary, error_code

log = logging.getLogger(__name__)

#: Upload parts: the AWS CLI's and s3transfer's size; on moto as fast as 16 MiB at 1 GB,
#: with half the buffers. Downloads use bigger ranges: fewer GETs for the same bytes.
_UPLOAD_PART = 8 * 1024 * 1024
_DOWNLOAD_PART = 16 * 1024 * 1024
_IO_QUEUE = 16
_IO_CHUNK = 64 * 1024
_COUNTS = ("", "NotVisible", "Delayed")


class S3Store(ObjectStore):
    def __init__(self, s3: Any, input_bucket: str, output_bucket: str, transfers: int) -> None:
        self._s3 = s3
        self.input_bucket = input_bucket
        self.output_bucket = output_bucket
        self._upload = TransferConfig(
            multipart_threshold=_UPLOAD_PART,
            multipart_chunksize=_UPLOAD_PART,
            max_concurrency=max(transfers, UPLOAD_PARTS_IN_FLIGHT),
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
        with boundary(StorageError, f"uploading {path} to s3://{bucket}/{key}"):
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
        with boundary(StorageError, f"downloading s3://{bucket}/{key}"):
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

    def read_url(self, bucket: str, key: str, expires: float) -> str:
        """A presigned GET: ffmpeg seeks in it with range requests (``https`` is built in)."""
        with boundary(StorageError, f"presigning s3://{bucket}/{key}"):
            url: str = self._s3.meta.client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(expires)
            )
        return url

    def size(self, bucket: str, key: str) -> int:
        with boundary(StorageError, f"reading the size of s3://{bucket}/{key}"):
            return int(self._s3.Object(bucket, key).content_length)

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Objects and unfinished multipart uploads (a killed transfer's parts) alike."""
        with boundary(StorageError, f"deleting s3://{bucket}/{prefix}*"):
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

    def delete(self, bucket: str, key: str) -> None:
        with boundary(StorageError, f"deleting s3://{bucket}/{key}"):
            self._s3.Object(bucket, key).delete()

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        with boundary(StorageError, f"listing s3://{bucket}/{prefix}*"):
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
        with boundary(QueueError, f"reading the ARN of {self.name}"):
            return str(self._queue.attributes["QueueArn"])

    def send(self, body: str, reason: str | None = None) -> None:
        attributes = {}
        if reason:
            attributes[_REASON] = {"DataType": "String", "StringValue": reason[:_MAX_REASON]}
        self._send(body, attributes)

    def _send(self, body: str, attributes: dict[str, Any]) -> None:
        with boundary(QueueError, f"sending a message to {self.name}"):
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
            with boundary(QueueError, f"creating queue {self.name} again"):
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
        with boundary(QueueError, f"receiving from {self.name}"):
            return list(
                self._queue.receive_messages(
                    WaitTimeSeconds=int(min(max(wait, 0), 20)),
                    MaxNumberOfMessages=min(max(max_messages, 1), 10),
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                    MessageAttributeNames=[_ATTEMPTS, _REASON],
                )
            )

    def extend(self, message: Received, seconds: float) -> None:
        with boundary(QueueError, f"changing the lease of a message on {self.name}"):
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
        with boundary(QueueError, f"deleting a message from {self.name}"):
            self._queue.Message(message.receipt).delete()

    def count(self) -> int:
        with boundary(QueueError, f"counting the messages in {self.name}"):
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
    return isinstance(cause, ClientError) and error_code(cause) in NO_QUEUE


class SnsTopic(Topic):
    def __init__(self, topic: Any) -> None:
        self._topic = topic
        self.arn = str(topic.arn)

    def publish(self, body: str, client: str | None = None) -> None:
        attributes = {}
        if client:
            attributes[CLIENT_ATTRIBUTE] = {"DataType": "String", "StringValue": client}
        with boundary(QueueError, f"publishing on {self.arn}"):
            self._topic.publish(Message=body, MessageAttributes=attributes)

    def subscribe_queue(self, queue_arn: str, client: str | None = None) -> None:
        """Idempotent; not raw delivery, as the envelope's TopicArn is how we check the source.

        With ``client``, the subscription delivers only notifications addressed to that
        client: without the filter a stopped client's queue collected every other client's.
        A subscription made before filters existed gets it too.
        """
        with boundary(QueueError, f"subscribing {queue_arn} to {self.arn}"):
            subscription = self._topic.subscribe(
                Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
            )
            if client:
                subscription.set_attributes(
                    AttributeName="FilterPolicy",
                    AttributeValue=json.dumps({CLIENT_ATTRIBUTE: [client]}),
                )
