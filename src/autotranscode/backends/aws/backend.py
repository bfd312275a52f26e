"""AwsBackend: one deployment's buckets, job queue, dead-letter queue and topic, looked up.

At run time the backend only looks these resources up, which the least-privilege
client and worker policies allow (``deploy.iam``); one that is missing raises
``DeploymentMissing``, and creating it is ``deploy``'s job (a client's first use
sets the deployment up there). The one thing it creates is the client's own
notification queue, on first use, so worker processes never leave one behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ...errors import QueueError, StorageError
from ...messages import unwrap_sns
from ...settings import Settings
from ..base import Backend, MessageQueue
from .adapters import S3Store, SnsTopic, SqsQueue
from .api import (
    Connection,
    DeploymentMissing,
    boundary,
    bucket_exists,
    client_id,
    connect,
    ensure_queue,
    find_queue,
    queue_policy,
    topic_exists,
)

log = logging.getLogger(__name__)

#: A notification is handled in milliseconds; after a crash it should come back soon.
NOTIFICATION_VISIBILITY_SECONDS = 10


def look_up(conn: Connection, buckets: bool) -> tuple[Any, Any, Any]:
    """The job queue, dead-letter queue and topic; with ``buckets``, check those exist too.

    Only reads, each allowed by the client policy (workers have no s3:ListBucket, which
    HeadBucket needs: their jobs name the buckets, and a missing one fails the job).
    """
    names = conn.names
    if buckets:
        for bucket in names.buckets:
            with boundary(StorageError, f"looking up bucket {bucket}"):
                if not bucket_exists(conn.s3, bucket):
                    raise DeploymentMissing(f"bucket {bucket}", names)
    queues = []
    for name in (names.jobs_queue, names.dead_letter_queue):
        with boundary(QueueError, f"looking up queue {name}"):
            queue = find_queue(conn.sqs, name)
        if queue is None:
            raise DeploymentMissing(f"queue {name}", names)
        queues.append(queue)
    topic = conn.sns.Topic(names.topic_arn)
    with boundary(QueueError, f"looking up topic {names.topic_name}"):
        if not topic_exists(topic):
            raise DeploymentMissing(f"topic {names.topic_name}", names)
    return queues[0], queues[1], topic


class AwsBackend(Backend):
    kind = "aws"

    def __init__(
        self,
        settings: Settings,
        conn: Connection,
        jobs: Any,
        dlq: Any,
        topic: Any,
    ) -> None:
        names = conn.names
        self.settings = settings
        self.connection = conn
        self.names = names
        self.store = S3Store(conn.s3, names.input_bucket, names.output_bucket, settings.transfers)
        self.jobs: SqsQueue = SqsQueue(jobs, names.jobs_queue)
        self.dead_letters = SqsQueue(dlq, names.dead_letter_queue)
        self.topic: SnsTopic = SnsTopic(topic)
        self._sqs = conn.sqs
        self._notifications: MessageQueue | None = None
        self._routes: list[Callable[[str], None]] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        check_buckets: bool = True,
        connection: Connection | None = None,
    ) -> AwsBackend:
        """Connect (or use ``connection``) and look the deployment up; DeploymentMissing if
        part of it does not exist. ``check_buckets``: a client's start-up checks the buckets
        too; a worker's cannot (it holds no s3:ListBucket), and its jobs name them anyway.
        """
        conn = connection or connect(settings)
        jobs, dlq, topic = look_up(conn, buckets=check_buckets)
        log.info(
            "aws backend %s ready in account %s, %s",
            settings.name,
            conn.names.account,
            conn.names.region,
        )
        return cls(settings, conn, jobs, dlq, topic)

    def open_notifications(self, route: Callable[[str], None] | None = None) -> MessageQueue:
        """This client's notification queue, created and subscribed to the topic on the
        first call (so worker processes, which never call it, leave no client queues).

        ``route``, where something besides the topic sends to the queue (MediaConvert's
        EventBridge rule), is called with the queue's ARN now and each time the queue has
        to be created again.
        """
        with self._lock:
            if route is not None:
                self._routes.append(route)
            if self._notifications is None:
                self._notifications = self._open_client_queue()
            elif route is not None:
                route(self.names.queue_arn(self._client_queue))
            return self._notifications

    @property
    def notifications(self) -> MessageQueue:
        return self.open_notifications()

    @notifications.setter
    def notifications(self, queue: MessageQueue) -> None:
        self._notifications = queue

    @property
    def client_id(self) -> str:
        found = client_id(self.settings.state_dir)
        assert found is not None
        return found

    @property
    def _client_queue(self) -> str:
        return f"{self.names.client_queue_prefix}{self.client_id}"

    def _open_client_queue(self) -> SqsQueue:
        return SqsQueue(
            self._create_client_queue(), self._client_queue, reopen=self._create_client_queue
        )

    def _create_client_queue(self) -> Any:
        """The queue (created if missing, or gone), subscribed, and each route pointed at it."""
        name = self._client_queue
        arn = self.names.queue_arn(name)
        rule_arn = None
        if self.settings.engine == "mediaconvert":
            rule_arn = self.names.rule_arn(self.names.mediaconvert_rule(self.client_id))
        policy = queue_policy(arn, self.topic.arn, rule_arn)
        attributes = {"Policy": policy, "VisibilityTimeout": str(NOTIFICATION_VISIBILITY_SECONDS)}
        queue, _, _ = ensure_queue(self._sqs, name, attributes, self.names.tag)
        self.topic.subscribe_queue(arn, self.client_id)
        log.info("notification queue %s subscribed to %s", name, self.topic.arn)
        for route in self._routes:
            route(arn)
        return queue

    def open_notification(self, body: str) -> str:
        return unwrap_sns(body, self.topic.arn)
