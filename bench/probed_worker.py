"""A worker process, as ``autotranscode worker`` runs it, that logs the moment of each
COMPLETED publish.

    .venv/bin/python bench/probed_worker.py worker -v --state-dir DIR [--backend B]
        [--endpoint-url URL] [--name NAME]

Used by completion.py, not a benchmark. The worker's own "job <id> completed" line
comes after it has also deleted the job message; on aws that delete takes about as
long as the notification's whole trip to the client, so the line is too late to
mark "worker finished". This runs the worker with ``WorkerHooks`` that log, at INFO,
``bench-probe job <id> published <start> <end>`` with epoch times around the publish of
each COMPLETED notification. It builds the worker from the public API (settings from the
flags above only, not from a config file or AUTOTRANSCODE_* variables) and stops on
Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from autotranscode import settings as settings_mod
from autotranscode.backends import open_backend
from autotranscode.engines.hooks import WorkerHooks
from autotranscode.engines.workdirs import workdir_for
from autotranscode.engines.worker import Worker, WorkerPool
from autotranscode.media.transcoder import find_ffmpeg
from autotranscode.messages import Notification, State

log = logging.getLogger("autotranscode.bench-probe")


class PublishProbe(WorkerHooks):
    def __init__(self) -> None:
        self.started: dict[str, float] = {}

    def on_publishing(self, *, notification: Notification, **kwargs: Any) -> None:
        if notification.state == State.COMPLETED:
            self.started[notification.job_id] = time.time()

    def on_published(self, *, notification: Notification, **kwargs: Any) -> None:
        start, end = self.started.pop(notification.job_id, None), time.time()
        if start is not None:
            log.info("bench-probe job %s published %.6f %.6f", notification.job_id, start, end)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("command", choices=["worker"])
    p.add_argument("-v", "--verbose", action="count", default=0, help="(INFO is always on)")
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--backend", choices=["local", "aws"], default="local")
    p.add_argument("--endpoint-url")
    p.add_argument("--name")
    return p


def main() -> None:
    args = parser().parse_args()
    # As the CLI's worker command logs without a terminal: completion.py reads these lines.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    flags = {
        "backend": args.backend,
        "state_dir": args.state_dir,
        "endpoint_url": args.endpoint_url,
        "name": args.name,
    }
    s = settings_mod.build({k: v for k, v in flags.items() if v is not None})
    backend = open_backend(s, create=False)
    hooks = PublishProbe()
    workers = [
        Worker(
            backend,
            find_ffmpeg(s.ffmpeg),
            workdir_for(s.state_dir / "work", f"worker-{i + 1}"),
            visibility=s.visibility_timeout,
            max_attempts=s.max_attempts,
            name=f"worker-{i + 1}",
            hooks=hooks,
        )
        for i in range(max(s.workers, 1))
    ]
    pool = WorkerPool(workers)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    pool.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        pool.stop()
        backend.close()


if __name__ == "__main__":
    main()
