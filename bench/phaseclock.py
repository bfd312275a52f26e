"""Clocks the two phases of a multipart upload through botocore's event hooks.

Sending the parts is the client's work; CompleteMultipartUpload is the server assembling
the object (on moto, a 1 GB object takes seconds), the same request from any client.
bench/s3.py's child and the AWS CLI process it times both import this, so both tools are
clocked the same way; it uses the standard library only (the CLI may run another Python).
"""

from __future__ import annotations

import time
from typing import Any

_OPERATIONS = ("UploadPart", "CompleteMultipartUpload")


class PhaseClock:
    def __init__(self) -> None:
        self._marks: list[tuple[str, float]] = []

    def watch(self, events: Any) -> None:
        """Register on a botocore Session (before its clients exist) or a client's emitter."""
        for operation in _OPERATIONS:
            for when in ("before-call", "after-call"):
                events.register(f"{when}.s3.{operation}", self._mark)

    def _mark(self, event_name: str, **_: Any) -> None:
        self._marks.append((event_name.rsplit(".", 1)[1], time.perf_counter()))

    def phases(self) -> dict[str, float]:
        """Seconds sending parts (first part sent to last answered) and assembling; {} if
        the transfer was not a multipart upload."""
        parts = [t for operation, t in self._marks if operation == "UploadPart"]
        complete = [t for operation, t in self._marks if operation == "CompleteMultipartUpload"]
        if not parts or len(complete) != 2:
            return {}
        return {"parts": max(parts) - min(parts), "assemble": complete[1] - complete[0]}
