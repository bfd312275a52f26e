"""What the deployment commands report: per resource (setup, teardown) and for cleanup."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    CREATED = "created"
    EXISTS = "exists"
    UPDATED = "updated"
    DELETED = "deleted"
    WOULD_DELETE = "would delete"
    KEPT = "kept"


@dataclass(frozen=True)
class ResourceReport:
    """What setup or teardown did to one resource, and anything the operator should know."""

    kind: str
    name: str
    status: Status
    details: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        more = f" ({', '.join(self.details)})" if self.details else ""
        return f"{self.kind} {self.name}: {self.status}{more}"


@dataclass
class CleanupReport:
    """What cleanup removed (or, in a dry run, would remove) and what it left, with why."""

    dry_run: bool
    deleted_objects: list[str] = field(default_factory=list)
    aborted_uploads: list[str] = field(default_factory=list)
    kept_objects: int = 0
    deleted_messages: int = 0
    kept_messages: int = 0
    #: Messages in the dead-letter queue (reported, never deleted); None if not looked at.
    dead_letters: int | None = None
    notes: list[str] = field(default_factory=list)
