"""``autotranscode`` (normally ``worker``) with the moment of each COMPLETED publish logged.

    .venv/bin/python bench/probed_worker.py worker -v [options as for autotranscode worker]

Used by completion.py, not a benchmark. The worker's own "job <id> completed" line
comes after it has also deleted the job message; on aws that delete takes about as
long as the notification's whole trip to the client, so the line is too late to
mark "worker finished". This wraps ``Worker._publish`` from outside (src/ is not
touched) and logs, at INFO, ``bench-probe job <id> published <start> <end>`` with
epoch times around the publish of each COMPLETED notification.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from autotranscode.cli import entry
from autotranscode.engines import worker
from autotranscode.messages import State

log = logging.getLogger("autotranscode.bench-probe")


def _install() -> None:
    original = getattr(worker.Worker, "_publish", None)
    if original is None:
        print("bench-probe unavailable: Worker._publish not found", file=sys.stderr)
        return

    def publish(self: worker.Worker, notification: Any) -> None:
        if getattr(notification, "state", None) != State.COMPLETED:
            original(self, notification)
            return
        start = time.time()
        original(self, notification)
        log.info("bench-probe job %s published %.6f %.6f", notification.job_id, start, time.time())

    worker.Worker._publish = publish  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    entry()
