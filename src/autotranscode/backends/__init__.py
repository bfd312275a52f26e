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


def open_backend(settings: Settings) -> Backend:
    """Connect to (and, on first use, create) the backend the settings name."""
    if settings.backend == "aws":
        from .aws import AwsBackend

        return AwsBackend.from_settings(settings)
    from .local import LocalBackend

    return LocalBackend.from_settings(settings)
