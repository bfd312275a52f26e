"""Telling the world a file has finished: ``--notify-url`` and ``--on-done``.

On the aws backend a deployment's SNS topic already says when a job ends; the local
backend has no topic, and a home server wants to tell something else (a media library's
rescan, a chat hook). ``Notifier`` is a progress ``Subscriber``: when a file reaches its
final state it POSTs the file's notification, Elastic Transcoder's JSON as the workers
send it (``messages.notification``: COMPLETED, or ERROR with the reason and each
output's status), and runs a command with the output paths as arguments.

Neither may hold the pipeline up or change a file's outcome: they run on a thread of
their own, an HTTP delivery is tried a bounded number of times with a growing pause,
and whatever fails is written into the file's log (and the process log), nothing more.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shlex
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from . import keys, messages
from .errors import AutotranscodeError, ConfigError
from .journal import FileRecord, FileState, Journal
from .progress import Subscriber
from .stages import OutputStatus
from .text import shown

log = logging.getLogger(__name__)

#: Where a file's log is kept in the state dir (``status`` shows ``logs/<file id>.log``).
LOGS_FOLDER = "logs"
#: An HTTP delivery is tried this many times, pausing BACKOFF_SECONDS, then twice as long...
ATTEMPTS = 5
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
HTTP_TIMEOUT_SECONDS = 10.0
#: An --on-done command still running after this is stopped (and said so in the log).
COMMAND_TIMEOUT_SECONDS = 600.0
#: At stop, what is still to send gets this long; the rest is said to be abandoned.
DRAIN_SECONDS = 10.0
#: Statuses worth asking again: the receiver is busy or failing, not refusing.
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class NotifyConfig:
    """``url``: where each finished file's notification is POSTed; ``command``: the
    ``--on-done`` command line (split like a shell would, never run by one)."""

    url: str | None = None
    command: tuple[str, ...] = ()

    @classmethod
    def parse(cls, url: str | None, command: str | None) -> NotifyConfig | None:
        """From the options' text; ConfigError for a URL or command that cannot work."""
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"--notify-url {url!r}: give an http:// or https:// URL")
        argv: tuple[str, ...] = ()
        if command:
            try:
                argv = tuple(shlex.split(command))
            except ValueError as exc:
                raise ConfigError(f"--on-done {command!r}: {exc}") from exc
        if not url and not argv:
            return None
        return cls(url or None, argv)


@dataclass(frozen=True)
class _Finished:
    """What is sent for one file, built on the pipeline's thread from the journal."""

    fid: str
    name: str
    stage: str
    body: bytes
    outputs: tuple[str, ...]
    env: dict[str, str]
    log: Path


class Notifier(Subscriber):
    """Sends each finished file's notification and runs ``--on-done``, on its own thread.

    ``close`` waits up to DRAIN_SECONDS for what is queued (``transcode`` exits right
    after its last file), then gives the rest up, saying so in each file's log.
    """

    def __init__(
        self, journal: Journal, state_dir: Path, pipeline_id: str, config: NotifyConfig
    ) -> None:
        self.journal = journal
        self.logs = state_dir / LOGS_FOLDER
        self.pipeline_id = pipeline_id
        self.config = config
        self._queue: queue.Queue[_Finished | None] = queue.Queue()
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="autotranscode-notify", daemon=True)
        self._thread.start()

    def on_state(
        self, *, path: Path, state: FileState, detail: str | None = None, **kwargs: Any
    ) -> None:
        if state not in (FileState.CLEANED, FileState.FAILED):
            return  # skipped files were never transcoded: nothing to tell
        try:
            versions = self.journal.versions_of(path)
            if versions:
                self._queue.put(self._finished(versions[-1], state, detail))
        except AutotranscodeError as exc:  # a journal busy, a notification that does not check
            log.warning("%s: no notification made: %s", shown(path.name), exc)

    def close(self) -> None:
        """After the pipeline has stopped: send what is queued (bounded), then stop."""
        self._deadline = time.monotonic() + DRAIN_SECONDS
        self._queue.put(None)
        self._thread.join(DRAIN_SECONDS + HTTP_TIMEOUT_SECONDS + 5)

    # -- on the pipeline's thread: what to send ---------------------------------------------

    def _finished(self, record: FileRecord, state: FileState, detail: str | None) -> _Finished:
        outputs = self.journal.story.outputs_of(record.id)
        done = [o for o in outputs if o.status is OutputStatus.DONE and o.path]
        failed = [o for o in outputs if o.status is OutputStatus.FAILED]
        if state is FileState.FAILED:
            stage, reason = "failed", record.reason or detail or "failed"
        elif failed:
            stage = "partly done"
            reason = "; ".join(f"{o.preset} failed: {o.reason or 'failed'}" for o in failed)
        else:
            stage, reason = "done", None
        job = record.job_id or record.id
        statuses = [
            messages.OutputStatus(
                # Keys as the job named them (a client reads them as it reads a worker's);
                # where each landed in OUT is in userMetadata, "output.PRESET".
                key=_output_key(job, o.path, o.preset),
                preset_id=o.preset,
                status="Complete" if o.status is OutputStatus.DONE else "Error",
                status_detail=(o.reason or "failed")[: messages.MAX_DETAIL]
                if o.status is OutputStatus.FAILED
                else None,
                duration=o.duration,
                width=o.width,
                height=o.height,
                size=o.size,
                vmaf=o.vmaf,
                crf=o.crf,
            )
            for o in outputs
        ]
        metadata = {
            "fileId": record.id,
            "source": _text(str(record.path)),
            "stage": stage,
            **{f"output.{o.preset}": _text(o.path) for o in done if o.path},
        }
        note = messages.notification(
            messages.State.ERROR if reason else messages.State.COMPLETED,
            job_id=job,
            pipeline_id=self.pipeline_id,
            input={"bucket": "local", "key": record.input_key or keys.input_key(job, record.path)},
            user_metadata=metadata,
            outputs=[] if state is FileState.FAILED else statuses,
            reason=reason,
        )
        env = {
            "AUTOTRANSCODE_FILE_ID": record.id,
            "AUTOTRANSCODE_STAGE": stage,
            "AUTOTRANSCODE_SOURCE": _text(str(record.path)),
            "AUTOTRANSCODE_REASON": reason or "",
        }
        return _Finished(
            record.id,
            record.name,
            stage,
            msgspec.json.encode(note),
            tuple(o.path for o in done if o.path),
            env,
            self.logs / f"{record.id}.log",
        )

    # -- on the notifier's thread: sending ----------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._late():
                self._say(item, "not notified: autotranscode stopped before it could be")
                continue
            if self.config.url:
                self._post(item, self.config.url)
            if self.config.command:
                self._command(item)

    def _late(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _post(self, item: _Finished, url: str) -> None:
        pause = BACKOFF_SECONDS
        problem = ""
        for attempt in range(1, ATTEMPTS + 1):
            request = urllib.request.Request(
                url,
                data=item.body,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "autotranscode"},
            )
            try:
                with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as answer:
                    answer.read(64 * 1024)
                log.debug("%s: notified %s", shown(item.name), url)
                return
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code} {exc.reason}"
                if exc.code not in _RETRYABLE:
                    break
            except (OSError, ValueError) as exc:  # refused, unreachable, timed out, bad URL
                cause = getattr(exc, "reason", None) or exc
                problem = getattr(cause, "strerror", None) or str(cause)
            if attempt == ATTEMPTS or self._late():
                break
            self._wait(pause)
            pause = min(pause * 2, MAX_BACKOFF_SECONDS)
        self._say(item, f"notification to {url} not delivered after {attempt} tries: {problem}")

    def _wait(self, seconds: float) -> None:
        if self._deadline is not None:
            seconds = max(min(seconds, self._deadline - time.monotonic()), 0.0)
        time.sleep(seconds)

    def _command(self, item: _Finished) -> None:
        argv = [*self.config.command, *item.outputs]
        shown_argv = shlex.join(shown(a) for a in argv)
        try:
            done = subprocess.run(
                argv,
                env={**os.environ, **item.env},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=COMMAND_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self._say(item, f"--on-done {shown_argv} stopped after {COMMAND_TIMEOUT_SECONDS:.0f}s")
            return
        except OSError as exc:
            self._say(item, f"--on-done {shown_argv} could not run: {exc.strerror or exc}")
            return
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            tail = f": {shown(said[-1])}" if said else ""
            self._say(item, f"--on-done {shown_argv} exited with {done.returncode}{tail}")
        else:
            log.debug("%s: --on-done ran", shown(item.name))

    def _say(self, item: _Finished, text: str) -> None:
        """A failure of ours, in the file's log and the process log; never the file's."""
        log.warning("%s: %s", shown(item.name), text)
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with contextlib.suppress(OSError):
            self.logs.mkdir(parents=True, exist_ok=True)
            with item.log.open("a", encoding="utf-8") as fh:
                fh.write(f"{at} notify: {text}\n")


def _output_key(job: str, path: str | None, preset: str) -> str:
    name = Path(path).name if path else preset
    return f"{keys.OUTPUT_PREFIX}{job}/{keys.safe_name(name)}"


def _text(value: str) -> str:
    """JSON holds text only: bytes of a name that are not UTF-8 go as ``\\xNN``."""
    return os.fsencode(value).decode("utf-8", "backslashreplace")
