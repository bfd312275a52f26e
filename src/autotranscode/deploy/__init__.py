"""The aws deployment from first to last: ``provision`` (setup, teardown), ``cleanup``,
``iam`` (least-privilege policies) and ``reports``; here, ``open_backend``, which sets
the deployment up on a client's first use."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import backends
from ..backends import Backend
from ..errors import BackendError
from ..settings import Settings

if TYPE_CHECKING:
    from ..backends.aws import AwsBackend

__all__ = ["open_aws", "open_backend"]

log = logging.getLogger(__name__)


def open_backend(settings: Settings, create: bool = True) -> Backend:
    """``backends.open_backend``, setting the aws deployment up first where it is missing
    and ``create`` allows (a client: "created on first use"). Workers pass ``create=False``:
    they hold no rights to create anything, and are told to run setup instead.
    """
    if settings.backend == "aws":
        return open_aws(settings, create)
    return backends.open_backend(settings)


def open_aws(settings: Settings, create: bool = True) -> AwsBackend:
    """The aws backend of ``open_backend``: connect, look up, and set up what is missing."""
    # boto3 only where it is used: the local backend's commands start without it.
    from ..backends.aws import AwsBackend, DeploymentMissing, connect
    from .provision import setup

    conn = connect(settings)
    try:
        return AwsBackend.from_settings(settings, check_buckets=create, connection=conn)
    except DeploymentMissing as missing:
        if not create:
            raise
        log.warning("%s does not exist yet: setting up deployment %s", missing.what, settings.name)
        try:
            setup(settings, connection=conn)
        except BackendError as exc:
            raise type(exc)(
                f"{exc} (while creating the missing {missing.what}; where clients may not create "
                "resources, an administrator runs `autotranscode setup` once)"
            ) from exc
    return AwsBackend.from_settings(settings, check_buckets=False, connection=conn)
