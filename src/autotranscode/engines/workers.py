"""The built-in engine: ``autotranscode worker`` processes fed by the job queue."""

from __future__ import annotations

from ..backends import Backend
from ..media.probe import MediaInfo
from ..messages import Job, Notification, parse_notification
from .base import Engine


class WorkersEngine(Engine):
    name = "workers"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def submit(self, job: Job, source: MediaInfo) -> None:
        self.backend.jobs.send(job.to_json())

    def read(self, body: str) -> Notification:
        return parse_notification(self.backend.open_notification(body))
