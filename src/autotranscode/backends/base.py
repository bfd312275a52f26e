"""The small interfaces the pipeline and workers are written against.

A backend is three things: an object store, queues (job queue, its dead-letter
queue, and the client's notification queue) and a notification topic. The local
backend implements them with a folder and SQLite, the aws backend with S3, SQS
and SNS; nothing above this module knows which one it talks to.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import keys

#: Called with the number of bytes moved since the last call.
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class Received:
    """One message taken from a queue, invisible to others until its lease ends."""

    body: str
    receipt: str
    receive_count: int = 1
    #: Why the previous attempt ended without an answer, when the queue knows (a crash).
    note: str | None = None


class MessageQueue(abc.ABC):
    """At-least-once queue with visibility leases, as SQS defines them."""

    name: str

    @abc.abstractmethod
    def send(self, body: str, reason: str | None = None) -> None:
        """``reason``: why the message is here (a dead letter's), kept beside its body."""

    @abc.abstractmethod
    def receive(
        self, wait: float, max_messages: int = 1, cancel: threading.Event | None = None
    ) -> list[Received]:
        """Wait up to ``wait`` seconds for messages; an empty list means none came.

        Where the transport allows, a set ``cancel`` ends the wait early (a stop request).
        """

    @abc.abstractmethod
    def extend(self, message: Received, seconds: float) -> None:
        """Keep ``message`` invisible ``seconds`` from now (the heartbeat of a long job)."""

    @abc.abstractmethod
    def delete(self, message: Received) -> None: ...

    @abc.abstractmethod
    def release(self, message: Received) -> None:
        """Make ``message`` visible again now, for another consumer to retry."""

    @abc.abstractmethod
    def hand_back(self, message: Received) -> None:
        """Return ``message`` unfinished, visible now, without counting this receive.

        An interruption (Ctrl+C, SIGTERM, a restart) is not an attempt: were it counted, a
        user who stops ``run`` a few times during one long transcode would see the file
        fail, and its job dead-lettered, though nothing was ever wrong with it.
        """

    @abc.abstractmethod
    def count(self) -> int:
        """Messages in the queue, visible or not (approximate where the service is)."""

    def holds(self, job_id: str) -> bool | None:
        """Whether a message about job ``job_id`` is in the queue (visible or leased).

        None when the transport cannot tell (SQS cannot be searched): a client then falls
        back on a quiet period before it takes a job for lost.
        """
        return None

    def waiting(self) -> list[str] | None:
        """The job ids of the messages waiting to be taken (not leased), the next one first;
        None where the transport keeps no order it can tell (SQS)."""
        return None

    def to_front(self, job_id: str) -> bool | None:
        """Make the waiting message about ``job_id`` the next one taken; whether it was
        waiting (False: taken already, or gone). None where a queue cannot be reordered."""
        return None

    def withdraw(self, job_id: str) -> bool | None:
        """Delete the waiting message about ``job_id`` before anyone takes it; whether it was
        waiting. None where a message cannot be deleted unless received first (SQS)."""
        return None

    def wake(self) -> None:
        """End the waits of this process's receive() calls now (their ``cancel`` was just set).

        Only transports that wait in-process can; an SQS long poll in flight cannot be cut.
        """
        return None


class Topic(abc.ABC):
    """Where workers publish job notifications; ``arn`` identifies it in messages."""

    arn: str

    @abc.abstractmethod
    def publish(self, body: str, client: str | None = None) -> None:
        """``client``: the id of the client the notification is for, where subscriptions
        filter on it (SNS), so a client's queue receives only its own notifications."""


class ObjectStore(abc.ABC):
    """Input and output objects, addressed by bucket and key."""

    input_bucket: str
    output_bucket: str

    @abc.abstractmethod
    def upload(
        self, path: Path, bucket: str, key: str, progress: ProgressCallback | None = None
    ) -> None:
        """Store a copy of ``path``; the file itself is left as it is."""

    def take(
        self, path: Path, bucket: str, key: str, progress: ProgressCallback | None = None
    ) -> str:
        """Store a snapshot of ``path`` and return the BLAKE3 (hex) of what was read.

        Here: hash, then upload, two reads; the caller compares the file's stat before and
        after, so both reads saw the same content. A store that copies locally overrides
        this to copy once and hash the copy, exactly what will be transcoded.
        """
        digest = keys.content_hash(path)
        self.upload(path, bucket, key, progress)
        return digest

    @abc.abstractmethod
    def put(self, path: Path, bucket: str, key: str) -> None:
        """Store ``path`` and take it: the caller's file is gone afterwards (a worker's output)."""

    @abc.abstractmethod
    def download(
        self, bucket: str, key: str, dest: Path, progress: ProgressCallback | None = None
    ) -> None:
        """Write the object to ``dest`` (which must not exist yet)."""

    @abc.abstractmethod
    @contextmanager
    def local_path(self, bucket: str, key: str, workdir: Path) -> Iterator[Path]:
        """A readable local file with the object's content, for as long as the block runs."""

    def read_url(self, bucket: str, key: str, expires: float) -> str | None:
        """A URL that ffmpeg can read the object from, by ranges, for ``expires`` seconds;
        None where the store has none (read it through ``local_path``). A chunk of a long
        file (``engines.parts``) reads only its range instead of fetching the whole file."""
        return None

    @abc.abstractmethod
    def size(self, bucket: str, key: str) -> int: ...

    @abc.abstractmethod
    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many were deleted."""

    @abc.abstractmethod
    def keys(self, bucket: str, prefix: str = "") -> list[str]: ...

    @abc.abstractmethod
    def delete(self, bucket: str, key: str) -> None:
        """Delete one object, without listing (a worker may delete its heartbeat, not list
        the bucket); none there: nothing to do."""


class Backend(abc.ABC):
    """One deployment: store, job queue, dead-letter queue, topic and our notification queue."""

    kind: str
    store: ObjectStore
    jobs: MessageQueue
    dead_letters: MessageQueue
    topic: Topic
    notifications: MessageQueue

    @property
    def client_id(self) -> str | None:
        """This client's id, carried in its jobs (``userMetadata.clientId``) so workers
        address their notifications to it; None where one queue serves one client (local)."""
        return None

    @abc.abstractmethod
    def open_notification(self, body: str) -> str:
        """The notification inside a queue message; MessageError unless from our topic."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""
