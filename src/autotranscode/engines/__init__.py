"""Engines: who does the transcoding (our workers, or AWS Elemental MediaConvert)."""

from __future__ import annotations

from ..backends import Backend
from ..errors import ConfigError
from ..settings import Settings
from .base import Engine
from .workers import WorkersEngine

__all__ = ["Engine", "WorkersEngine", "open_engine"]


def open_engine(settings: Settings, backend: Backend) -> Engine:
    """The engine the settings name, wired to the backend's buckets and notification queue."""
    if settings.engine == "workers":
        return WorkersEngine(backend)
    from ..backends.aws import AwsBackend
    from .mediaconvert import MediaConvertEngine, role_name

    if not isinstance(backend, AwsBackend):
        raise ConfigError("--engine mediaconvert needs --backend aws (MediaConvert reads S3)")
    names = backend.names
    role = settings.mediaconvert_role or (
        f"arn:{names.partition}:iam::{names.account}:role/{role_name(settings.name)}"
    )
    backend.notifications  # noqa: B018 - creates the queue and the EventBridge rule feeding it
    return MediaConvertEngine(
        backend.connection.client("mediaconvert", custom_endpoint=False),
        role_arn=role,
        client_id=backend.client_id,
        account=names.account,
        output_bucket=backend.store.output_bucket,
        catalog=settings.catalog,
    )
