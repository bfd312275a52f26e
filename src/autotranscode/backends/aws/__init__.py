"""The aws backend: ``api`` (connection, names, error boundary, find/ensure/tag helpers
shared with ``deploy``), ``adapters`` (S3Store, SqsQueue, SnsTopic) and ``backend``
(AwsBackend, which looks a deployment up and never creates its shared resources)."""

from __future__ import annotations

from .api import TAG_KEY, Connection, DeploymentMissing, Names, connect
from .backend import AwsBackend

__all__ = ["TAG_KEY", "AwsBackend", "Connection", "DeploymentMissing", "Names", "connect"]
