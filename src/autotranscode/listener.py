"""The notification side of the flow: one thread that long-polls the notification queue and
moves files from SUBMITTED to TRANSCODING, COMPLETED or FAILED, and finds lost jobs.

Every in-flight state has a deadline and an owner: a job no worker answers (its message
gone, or never taken on aws) is submitted again, same job id, up to MAX_RESUBMITS times.
The pipeline does the steps; this module only hears about them, through ``Flow``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from . import keys, outcomes
from .backends import Backend, Received
from .engines import Engine, WorkersEngine
from .engines.heartbeat import MAX_FIELD
from .errors import AutotranscodeError, BackendError, JournalError, MessageError, ObjectMissing
from .journal import RESUBMIT, FileRecord, FileState, Journal
from .messages import Notification, State
from .parts import PartsProgress
from .procs import yield_cpu_to_ffmpeg
from .progress import Subscriber

log = logging.getLogger(__name__)

#: How long one receive on the notification queue waits; also bounds how long stop() takes.
LISTEN_WAIT_SECONDS = 2.0
#: How often the listener looks for files reset by ``autotranscode retry`` from another shell.
PICK_UP_INTERVAL_SECONDS = 5.0
#: How often the listener looks for jobs that were lost (no notice will ever come).
DEADLINE_CHECK_SECONDS = 5.0
#: A job that no worker answers is submitted again (same job id) this often, then the file
#: fails: a job that keeps vanishing points at a problem a user must look at.
MAX_RESUBMITS = 3


class Flow(Protocol):
    """What the listener asks of the pipeline (``Pipeline`` is one): the moves it makes are
    the pipeline's, with its hooks and its bookkeeping of files in flight."""

    def advance(
        self,
        record: FileRecord,
        state: FileState,
        *,
        outputs: dict[str, str] | None = None,
        expect: FileState | None = None,
    ) -> bool: ...

    def fail(self, record: FileRecord, reason: str, expect: FileState | None = None) -> bool: ...

    def schedule(self, fid: str) -> None: ...

    def pick_up(self) -> None: ...

    def in_flight(self) -> set[str]: ...


class Listener:
    """Hears the jobs' notices and finds the jobs that were lost; ``stop`` is the pipeline's
    stop event, set before ``join``."""

    def __init__(
        self,
        flow: Flow,
        backend: Backend,
        engine: Engine,
        journal: Journal,
        hooks: Subscriber,
        stop: threading.Event,
        resubmit_after: float,
    ) -> None:
        self.flow = flow
        self.backend = backend
        self.engine = engine
        self.journal = journal
        self.hooks = hooks
        self.resubmit_after = resubmit_after
        self._stop = stop
        self._resume = True
        self._thread: threading.Thread | None = None
        #: When each file waiting for a notice last heard of its job (or we started).
        self._heard: dict[str, float] = {}
        #: The parts heard of, for each chunked file (``parts``).
        self._parts = PartsProgress()

    def start(self, resume: bool) -> None:
        """``resume``: look after every unfinished file, not only those in flight here
        (``transcode`` and ``retry`` look after their own)."""
        self._resume = resume
        self._thread = threading.Thread(target=self._listen, name="autotranscode-listener")
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self.backend.notifications.wake()  # the wait ends now, not at its poll
            self._thread.join()
            self._thread = None

    def resubmit(self, record: FileRecord, why: str) -> None:
        """Send the file's job again, same job id, from its stored input (or upload it again
        if that is gone too); after MAX_RESUBMITS the file fails with ``why``.

        Workers and this client take a second completion of one job in their stride (a
        worker finds the outputs stored and announces them again; a finished file ignores
        the notice), so a job that was not lost after all costs a little work, not a file.
        """
        done = self.journal.resubmits(record.id)
        if done >= MAX_RESUBMITS:
            self.flow.fail(record, f"{why}; gave up after submitting its job {done + 1} times")
            return
        store = self.backend.store
        state = FileState.UPLOADED
        if record.input_key is None:
            state = FileState.DISCOVERED
        else:
            try:
                store.size(store.input_bucket, record.input_key)
            except ObjectMissing:
                state = FileState.UPLOADING  # same key and job id, uploaded again
        log.warning(
            "%s: %s; submitting its job again (%d of %d)", record.name, why, done + 1, MAX_RESUBMITS
        )
        if self.journal.advance(
            record.id, state, detail=f"{RESUBMIT}: {why}", expect=record.state, durable=True
        ):
            self.hooks.on_state(path=record.path, state=state, detail=why)
            self._heard.pop(record.id, None)
            self.flow.schedule(record.id)

    def _listen(self) -> None:
        yield_cpu_to_ffmpeg()
        queue = self.backend.notifications
        next_pick_up = time.monotonic() + PICK_UP_INTERVAL_SECONDS
        next_deadlines = 0.0  # at once: a restart finds lost jobs without delay
        while not self._stop.is_set():
            if time.monotonic() >= next_pick_up:
                next_pick_up = time.monotonic() + PICK_UP_INTERVAL_SECONDS
                try:
                    self.flow.pick_up()
                except JournalError as exc:
                    log.warning("%s", exc)
            if time.monotonic() >= next_deadlines:
                next_deadlines = time.monotonic() + DEADLINE_CHECK_SECONDS
                try:
                    self._check_deadlines()
                except AutotranscodeError as exc:
                    log.warning("cannot look for lost jobs (%s); trying again later", exc)
            try:
                batch = queue.receive(LISTEN_WAIT_SECONDS, max_messages=10, cancel=self._stop)
            except AutotranscodeError as exc:
                log.warning("cannot receive notifications (%s); retrying", exc)
                self._stop.wait(LISTEN_WAIT_SECONDS)
                continue
            for message in batch:
                try:
                    self._on_message(message)
                    queue.delete(message)
                except BackendError as exc:
                    log.warning("notification not handled yet (%s); it will come back", exc)
                except Exception:
                    log.exception("notification handling failed; deleting it")
                    queue.delete(message)

    def _check_deadlines(self) -> None:
        """Files waiting for a notice whose job is gone get it submitted again.

        Runs on the listener thread, between batches, so no notice is being handled while
        it looks: a job is lost when the job queue no longer holds it and no notice about
        it waits in ours (a worker publishes before it deletes the job). Where queues cannot
        be searched (SQS), a job is taken for lost after ``resubmit_after`` seconds without
        a notice while the job queue is empty. Only our own workers' jobs go through the
        job queue; another engine's are its own business.
        """
        if not isinstance(self.engine, WorkersEngine):
            return
        now = time.monotonic()
        ours = self.flow.in_flight()
        waiting = [
            r
            for r in self.journal.unfinished()
            if r.state in (FileState.SUBMITTED, FileState.TRANSCODING)
            and r.job_id
            and (self._resume or r.id in ours)  # transcode and retry: only their own files
        ]
        for fid in set(self._heard) - {r.id for r in waiting}:
            del self._heard[fid]
        empty: bool | None = None
        for record in waiting:
            assert record.job_id is not None
            heard = self._heard.setdefault(record.id, now)
            held = self.backend.jobs.holds(record.job_id)
            if held is None:
                if now - heard < self.resubmit_after:
                    continue
                if empty is None:
                    empty = self.backend.jobs.count() == 0
                if not empty:
                    continue
                why = (
                    f"no worker answered its job for {now - heard:.0f}s and the job queue is empty"
                )
            elif held or self.backend.notifications.holds(record.job_id):
                self._heard[record.id] = now
                continue
            else:
                why = "its job is no longer in the job queue"
            current = self.journal.get(record.id)
            if current is not None and current.state == record.state:
                self.resubmit(current, why)

    def _on_message(self, message: Received) -> None:
        try:
            note = self.engine.read(message.body)
        except MessageError as exc:
            log.warning("ignored a notification: %s", exc)
            return
        record = self.journal.by_job(note.job_id)
        if record is None or note.user_metadata.get("fileId") != record.id:
            log.warning("ignored a notification for job %s, which is not ours", note.job_id)
            return
        if record.state not in (FileState.SUBMITTED, FileState.TRANSCODING, FileState.UPLOADED):
            if note.state in (State.COMPLETED, State.ERROR) and record.state.finished:
                # A job run twice (a worker died after publishing): drop its second output,
                # or the log of a second run that found the input gone.
                self.backend.store.delete_prefix(
                    self.backend.store.output_bucket, f"{keys.OUTPUT_PREFIX}{note.job_id}/"
                )
            return
        self._heard[record.id] = time.monotonic()
        if note.state == State.PROGRESSING:
            self._on_progress(record, note)
            return
        self._parts.forget(record.id)
        if note.state == State.COMPLETED:
            self._on_completed(record, note)
        elif note.state == State.ERROR:
            self._on_error(record, note)
        else:
            log.warning("%s: worker warning: %s", record.name, note.reason)

    def _on_progress(self, record: FileRecord, note: Notification) -> None:
        moving = record.state != FileState.TRANSCODING
        if moving and not self.flow.advance(record, FileState.TRANSCODING, expect=record.state):
            return  # cancelled meanwhile
        if note.outputs:
            fraction = min((o.percent or 0.0) for o in note.outputs) / 100
        else:  # engines that report one figure for the whole job
            fraction = float(note.user_metadata.get("percent", 0.0)) / 100
        worker = note.user_metadata.get("worker")  # a message's word: bounded, shown as text
        part = note.user_metadata.get("part")
        if part is not None:  # a chunked file: its parts' progress summed
            parts = note.user_metadata.get("parts")
            fraction, worker = self._parts.heard(record.id, part, parts, fraction, worker)
        self.hooks.on_progress(
            path=record.path,
            stage="transcoding",
            fraction=fraction,
            speed=note.user_metadata.get("speed"),
            eta=note.user_metadata.get("eta"),
            worker=worker[:MAX_FIELD] if worker else None,
        )

    def _on_completed(self, record: FileRecord, note: Notification) -> None:
        """The outputs made go to OUT; those an ERROR says were not are recorded with their
        reasons, and the file ends partly done."""
        got = {o.key for o in note.outputs}
        if got != set(record.outputs):
            raise MessageError(f"job {note.job_id} ended with outputs we did not ask for")
        outcomes.reported(self.journal, record, note)
        made = {o.key for o in note.made}
        outputs = None
        if made != got:
            log.warning("%s: %s", record.name, note.message_details or note.reason)
            outputs = {k: v for k, v in record.outputs.items() if k in made}
        if self.flow.advance(record, FileState.COMPLETED, outputs=outputs, expect=record.state):
            self.flow.schedule(record.id)
        else:
            self._overtaken(record, note)

    def _overtaken(self, record: FileRecord, note: Notification) -> None:
        """The file's answer came as a user cancelled it: it stays cancelled (its outputs as
        the cancel recorded them), and what the worker stored goes."""
        current = self.journal.get(record.id)
        if current is not None and current.state.finished:
            if current.state is FileState.FAILED:
                outcomes.failed_all(self.journal, current, current.reason or "", overrule=True)
            self.backend.store.delete_prefix(
                self.backend.store.output_bucket, f"{keys.OUTPUT_PREFIX}{note.job_id}/"
            )

    def _on_error(self, record: FileRecord, note: Notification) -> None:
        """Some outputs made: delivered as a completed job's are. None: the file failed, each
        output with its own reason where the notice gives one."""
        if note.made:
            self._on_completed(record, note)
            return
        if {o.key for o in note.outputs} <= set(record.outputs):
            outcomes.reported(self.journal, record, note)
        if not self.flow.fail(record, note.reason, expect=record.state):
            self._overtaken(record, note)
