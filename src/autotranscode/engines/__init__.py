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
    from .mediaconvert import MediaConvertEngine, check_presets, route_events

    check_presets(settings.catalog.get(p) for p in settings.preset)
    if not isinstance(backend, AwsBackend):
        raise ConfigError("--engine mediaconvert needs --backend aws (MediaConvert reads S3)")
    names = backend.names
    client_id = backend.client_id
    connection = backend.connection
    backend.open_notifications(route=lambda arn: route_events(connection, client_id, arn))
    return MediaConvertEngine(
        connection.client("mediaconvert", custom_endpoint=False),
        role_arn=settings.mediaconvert_role or names.role_arn(names.mediaconvert_role),
        client_id=client_id,
        account=names.account,
        output_bucket=backend.store.output_bucket,
        catalog=settings.catalog,
    )
