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


def open_backend(settings: Settings, check_buckets: bool = True) -> Backend:
    """Connect to the backend the settings name.

    On aws the deployment must exist (``DeploymentMissing`` otherwise: a client's first
    use sets it up through ``deploy.open_backend``). Workers pass ``check_buckets=False``:
    they run with rights to use the deployment, not to list its buckets.
    """
    if settings.backend == "aws":
        from .aws import AwsBackend

        return AwsBackend.from_settings(settings, check_buckets=check_buckets)
    from .local import LocalBackend

    return LocalBackend.from_settings(settings)
