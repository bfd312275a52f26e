"""Who transcodes: an engine submits a job and reads that service's notifications.

The pipeline knows jobs and notifications in our Elastic-Transcoder shape only;
an engine turns them into its service's requests and events, and back.
"""

from __future__ import annotations

import abc

from ..media.probe import MediaInfo
from ..messages import Job, Notification


class Engine(abc.ABC):
    name: str

    @abc.abstractmethod
    def submit(self, job: Job, source: MediaInfo) -> None:
        """Start transcoding ``job``; ``source`` is the probed input (for sizes and bounds)."""

    @abc.abstractmethod
    def read(self, body: str) -> Notification:
        """The notification in a message from the notification queue; MessageError if not ours."""
