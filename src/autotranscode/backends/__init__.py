"""Backends: where objects, jobs and notifications live; ``open_backend`` picks one."""

from __future__ import annotations

from ..settings import Settings
from .base import Backend, MessageQueue, ObjectStore, ProgressCallback, Received, Topic

__all__ = [
    "Backend",
    "MessageQueue",
    "ObjectStore",
    "ProgressCallback",
    "Received",
    "Topic",
    "open_backend",
]


def open_backend(settings: Settings, create: bool = True) -> Backend:
    """Connect to the backend the settings name; with ``create``, set up what is missing.

    Workers pass ``create=False``: on aws they run with rights to use the deployment,
    not to create it, and a missing one should say "run setup", not fail on IAM.
    """
    if settings.backend == "aws":
        from .aws import AwsBackend

        return AwsBackend.from_settings(settings, create=create)
    from .local import LocalBackend

    return LocalBackend.from_settings(settings)
