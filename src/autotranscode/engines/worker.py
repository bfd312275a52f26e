"""The transcoding service: take a job, transcode, upload, notify, delete the job.

A job message is deleted only after its outputs are stored and COMPLETED (or
ERROR) is published, so a worker that dies mid-job leaves the message to
reappear when its lease ends, for another worker. Errors say whether they are
``retryable``: bad media is answered with an ERROR notification at once
(retrying cannot help); storage or queue trouble, and an ffmpeg killed by a
signal, are retried through the lease until ``max_attempts``, then the job goes
to the dead-letter queue with an ERROR notification, so no client waits forever.
A stop (Ctrl+C, SIGTERM) hands the job back without counting an attempt.
Bad media for one output only (an audio preset on a file without audio, an
encoder error) fails that output; the others are still made and stored, and the
ERROR notification says how each output ended, as Elastic Transcoder's did.
A job with ``chunkSeconds`` (one long file across many workers) and the parts it is split
into are handled by ``parts``, inside the same lease, attempt and stop rules.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import shutil
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from ..backends import Backend, Received
from ..errors import (
    AutotranscodeError,
    ConfigError,
    FfmpegKilled,
    MessageError,
    ObjectMissing,
    StorageError,
)
from ..filelog import JobLog
from ..hours import Hours
from ..media import interlace, presets, recipe, remux, video
from ..media.probe import MediaInfo, probe
from ..media.stamps import Stamp
from ..messages import (
    MAX_DETAIL,
    Job,
    OutputStatus,
    State,
    notification,
    parse_job,
)
from ..procs import IoPriority, lower_priority
from .heartbeat import Heartbeat, worker_identity
from .hooks import WorkerHooks
from .leases import Leases
from .outputs import (
    FfmpegEvents,
    Handoff,
    ThrottledProgress,
    complete_status,
    content_hash,
    failures,
    one_line,
)
from .parts import Parts
from .tuning import Tuning
from .workdirs import clean_stale_workdirs

log = logging.getLogger(__name__)
#: The job this thread is doing: its log lines carry it as a field (``--log-format json``).
_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


class _JobField(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        job_id = _job_id.get()
        if job_id is not None and not hasattr(record, "job_id"):
            record.job_id = job_id
        return True


log.addFilter(_JobField())

#: Long-poll this long for a job; also bounds how long a stop request waits.
RECEIVE_WAIT_SECONDS = 2.0
#: How long a job's output checks wait for the next job's ffmpeg to start (``Handoff``).
HANDOFF_WAIT_SECONDS = 0.1
#: What a content hash in a job looks like (BLAKE3's 64 hex digits, or a shorter digest).
#: At most one PROGRESSING notification per job this often.


class Worker:
    def __init__(
        self,
        backend: Backend,
        ffmpeg: str,
        workdir: Path,
        *,
        visibility: float,
        max_attempts: int,
        name: str = "worker",
        catalog: presets.Catalog = presets.DEFAULT_CATALOG,
        hooks: WorkerHooks | None = None,
        handoff_wait: float = HANDOFF_WAIT_SECONDS,
        nice: int | None = None,
        ionice: IoPriority | None = None,
        hours: Hours | None = None,
        threads: int | None = None,
    ) -> None:
        """``handoff_wait``: how long a job's output checks wait for the next job's ffmpeg
        to start (see ``Handoff``). ``nice``, ``ionice``: the job threads', so ffmpeg's.
        ``hours``: when a job may start (``--hours``); one running at their end finishes.
        ``threads``: each encode's encoder threads (``--threads``; None: ffmpeg's choice).
        ``identity`` (``host:pid/name``) names the worker in its heartbeat and in its
        progress notices (``userMetadata.worker``)."""
        self.backend = backend
        #: Where a job's preset ids are looked up, when the job carries no definition.
        self.catalog = catalog
        self.ffmpeg = ffmpeg
        self.workdir = workdir
        self.visibility = visibility
        self.max_attempts = max_attempts
        self.name = name
        self.hooks = hooks or WorkerHooks()
        self.handoff_wait = handoff_wait
        self._polite = functools.partial(lower_priority, nice, ionice)
        self.hours = hours
        self.threads = threads
        self._leases = Leases(backend.jobs, visibility, name)
        self.identity = worker_identity(name)
        self.heartbeat = Heartbeat(backend.store, self.identity, workdir)
        self.parts = Parts(self)

    def run(self, stop: threading.Event) -> None:
        """Process jobs until ``stop`` is set; a job under way is stopped and released."""
        clean_stale_workdirs(self.workdir.parent)
        self.workdir.mkdir(parents=True, exist_ok=True)
        log.info("%s waiting for jobs on %s", self.name, self.backend.jobs.name)
        # One ffmpeg at a time, but a job's output check, upload and notice overlap the
        # next job's ffmpeg instead of idling the CPU between them: two handler threads,
        # kept from job to job (a thread, and its database connections, per job costs).
        handlers = ThreadPoolExecutor(
            2, thread_name_prefix=f"autotranscode-{self.name}-job", initializer=self._polite
        )
        finishing: Future[None] | None = None
        last: Handoff | None = None  # the job whose ffmpeg ended last
        # Leases renewed and the beat kept until the last handler is done, not just the loop.
        with self._leases, self.heartbeat:
            try:
                while not stop.is_set():
                    if self.hours is not None and (closed := self.hours.wait(datetime.now())):
                        if last is not None:
                            last.go.set()  # no next ffmpeg comes before the hours
                        stop.wait(closed)
                        continue
                    # Just after an ffmpeg ends, only look: if no job is there, the last
                    # job's output checks need not wait for the next ffmpeg.
                    quick = last is not None and not last.go.is_set()
                    try:
                        batch = self.backend.jobs.receive(
                            wait=0 if quick else RECEIVE_WAIT_SECONDS, cancel=stop
                        )
                    except AutotranscodeError as exc:
                        log.warning("%s: cannot receive jobs (%s); retrying", self.name, exc)
                        batch = []
                        if not quick:
                            stop.wait(RECEIVE_WAIT_SECONDS)
                    if not batch and last is not None:
                        last.go.set()
                    for message in batch:
                        handoff = Handoff(self.handoff_wait)
                        handling = handlers.submit(
                            self._handle_logged, message, stop, handoff, last
                        )
                        handoff.exited.wait()
                        if finishing is not None:
                            finishing.result()
                        finishing, last = handling, handoff
            finally:
                if last is not None:
                    last.go.set()
                handlers.shutdown(wait=True)

    def _handle_logged(
        self,
        message: Received,
        stop: threading.Event,
        handoff: Handoff | None = None,
        previous: Handoff | None = None,
    ) -> None:
        try:
            self.handle(message, stop, handoff, previous)
        except AutotranscodeError as exc:
            # The job message stays: its lease runs out and it is tried again.
            log.warning("%s: could not finish a job (%s); it will be retried", self.name, exc)
        except Exception:
            log.exception("%s: unexpected error; the job will be retried", self.name)
        finally:
            _job_id.set(None)
            self.heartbeat.done(message.receipt)
            if handoff is not None:
                handoff.exited.set()
            if previous is not None:
                previous.go.set()

    def handle(
        self,
        message: Received,
        stop: threading.Event | None = None,
        handoff: Handoff | None = None,
        previous: Handoff | None = None,
    ) -> None:
        """Do one job. ``run`` calls it: its lease keeper renews the job, and the handoffs
        order this job's ffmpeg around the jobs before and after it (see ``Handoff``)."""
        try:
            job = parse_job(message.body)
            _job_id.set(job.job_id)
            if job.topic != self.backend.topic.arn:
                raise MessageError(f"job {job.job_id} names a topic that is not ours: {job.topic}")
            self._check_buckets(job)
            for output in job.outputs:
                self.catalog.resolve(output.preset_id, output.preset_spec)
        except (MessageError, ConfigError) as exc:
            log.warning("%s: rejected a job message: %s", self.name, exc)
            self._dead_letter(message, f"rejected: {exc}")
            return
        joblog = JobLog(self.name, part=job.part.name if job.part else None)
        if message.receive_count > 1:
            joblog.resume(self.backend.store, job.output_bucket, job.job_id, self.workdir)
        joblog.say(
            f"job {job.job_id} received, attempt {message.receive_count} of {self.max_attempts}"
            f" (input {job.input.key})"
        )
        if message.receive_count > self.max_attempts:
            # Earlier attempts never ended: the workers running them crashed or hung.
            why = message.note or "attempts that did not finish"
            reason = f"gave up after {self.max_attempts} attempts: {why}"
            log.error("%s: job %s %s", self.name, job.job_id, reason)
            self._publish_error(job, reason, joblog)
            self._dead_letter(message, reason)
            return
        cancel = stop or threading.Event()
        try:
            with self._leases.hold(message):
                self.heartbeat.working(message.receipt, job.task, job.input.key)
                self.hooks.on_job_received(job=job, receive_count=message.receive_count)
                if self.parts.takes(job) and self.parts.handle(job, message, cancel, joblog):
                    return  # a chunked job's split or part (``parts``): answered there
                outputs = self._transcode(job, cancel, joblog, handoff, previous)
        except (AutotranscodeError, OSError) as exc:
            if cancel.is_set():
                # A stop (Ctrl+C, SIGTERM) is not an attempt: the job goes back uncounted.
                log.info(
                    "%s: stopped during job %s; handed back for another worker",
                    self.name,
                    job.job_id,
                )
                self.backend.jobs.hand_back(message)
                return
            self._failed(job, message, exc, joblog)
            return
        failed = failures(outputs)
        # As Elastic Transcoder did: a job with a failed output is in ERROR, each output
        # saying how it ended; the client still takes the outputs that were made.
        state = State.ERROR if failed else State.COMPLETED
        joblog.say(f"job {job.job_id} " + (f"ended in ERROR: {failed}" if failed else "completed"))
        key = joblog.store(self.backend.store, job.output_bucket, job.job_id, self.workdir)
        self._publish(
            job, state, outputs, reason=failed, log_key=key, joblog=joblog if failed else None
        )
        self.backend.jobs.delete(message)
        log.info("%s: job %s %s", self.name, job.job_id, failed or "completed")

    def _failed(
        self, job: Job, message: Received, exc: AutotranscodeError | OSError, joblog: JobLog
    ) -> None:
        """One policy (the error's ``retryable``): answer at once, or count an attempt."""
        retryable = exc.retryable if isinstance(exc, AutotranscodeError) else True
        if not retryable:
            # Bad media: retrying fails the same way. A missing input: a redelivered copy of
            # a job whose file was finished and cleaned up, or the input expired.
            reason = f"the input is gone: {exc}" if isinstance(exc, ObjectMissing) else str(exc)
            log.warning("%s: job %s failed: %s", self.name, job.job_id, reason)
            self._publish_error(job, reason, joblog)
            self.backend.jobs.delete(message)
        elif message.receive_count >= self.max_attempts:
            reason = f"gave up after {message.receive_count} attempts: {exc}"
            log.error("%s: job %s %s", self.name, job.job_id, reason)
            self._publish_error(job, reason, joblog)
            self._dead_letter(message, reason)
        else:
            log.warning(
                "%s: job %s attempt %d failed (%s); it will be retried",
                self.name,
                job.job_id,
                message.receive_count,
                exc,
            )
            joblog.say(f"attempt {message.receive_count} failed ({exc}); it will be retried")
            joblog.store(self.backend.store, job.output_bucket, job.job_id, self.workdir)
            if isinstance(exc, FfmpegKilled):
                # Nothing to wait for (memory is free again once ffmpeg is gone): the next
                # attempt may start now; storage trouble waits out the lease instead.
                self.backend.jobs.release(message)

    def _check_buckets(self, job: Job) -> None:
        """Only this deployment's buckets, as the backend knows them, never the job's word:
        a forged job must not make a worker read or write anyone else's bucket."""
        store = self.backend.store
        wanted = (store.input_bucket, store.output_bucket)
        named = (job.input.bucket, job.output_bucket)
        if named != wanted:
            raise MessageError(
                f"job {job.job_id} names buckets {named[0]!r} and {named[1]!r}, "
                f"not this deployment's {wanted[0]!r} and {wanted[1]!r}"
            )

    def _transcode(
        self,
        job: Job,
        cancel: threading.Event,
        joblog: JobLog,
        handoff: Handoff | None = None,
        previous: Handoff | None = None,
    ) -> tuple[OutputStatus, ...]:
        store = self.backend.store
        done = self._already_stored(job)
        if done is not None:
            log.info("%s: job %s was done before; announcing it again", self.name, job.job_id)
            joblog.say("its outputs were stored by an earlier attempt; announcing them again")
            return done
        results = []
        with store.local_path(job.input.bucket, job.input.key, self.workdir) as src:
            source = self._source_info(job, src)
            if not all(
                self.catalog.resolve(o.preset_id, o.preset_spec).audio_only for o in job.outputs
            ):
                source, found = interlace.detect(self.ffmpeg, src, source)
                if found:
                    joblog.say(found)
            for index, output in enumerate(job.outputs):
                try:
                    status = self._output(
                        job, index, source, src, cancel, handoff, previous, joblog
                    )
                except AutotranscodeError as exc:
                    if exc.retryable or cancel.is_set():
                        raise  # not this output's fault: the whole job is tried again
                    # This output cannot be made from this input (a preset needing audio on
                    # a file without it, an encoder error): the others still can.
                    log.warning(
                        "%s: job %s output %s failed: %s", self.name, job.job_id, output.key, exc
                    )
                    status = OutputStatus(
                        key=output.key,
                        preset_id=output.preset_id,
                        status="Error",
                        status_detail=one_line(str(exc)),
                    )
                    joblog.say(f"{output.key}: failed: {status.status_detail}")
                    # It may have failed before its ffmpeg ran: the jobs around go on now.
                    if previous is not None:
                        previous.go.set()
                    if handoff is not None and index == len(job.outputs) - 1:
                        handoff.exited.set()
                results.append(status)
        return tuple(results)

    def _output(
        self,
        job: Job,
        index: int,
        source: MediaInfo,
        src: Path,
        cancel: threading.Event,
        handoff: Handoff | None,
        previous: Handoff | None,
        joblog: JobLog,
    ) -> OutputStatus:
        """Make and store one output of the job; its "Complete" status."""
        output = job.outputs[index]
        preset = self.catalog.resolve(output.preset_id, output.preset_spec)
        # Unique per attempt: a redelivered copy of this job (its lease ran out, say in an
        # outage) can run here while this one is still being finished.
        tmp = self.workdir / f"{job.job_id}-{uuid.uuid4().hex[:8]}-{index}{preset.extension}"
        for note in [*recipe.notes(preset, source), *recipe.warnings(preset, source)]:
            joblog.say(f"{output.key}: {note}")
        report = ThrottledProgress(self._progress, job, index, source.duration)
        last = index == len(job.outputs) - 1
        stamp = Stamp(content_hash(job), presets.digest(preset))
        say = functools.partial(_say, joblog, output.key)
        tuning = Tuning(self.ffmpeg, preset, source, src, self.workdir, report, say, cancel)
        ffmpeg = FfmpegEvents(
            self.hooks,
            job,
            tmp,
            previous if index == 0 else None,
            handoff if last else None,
        )
        made = remux.make(
            self.ffmpeg,
            video.threaded(tuning.search(), self.threads),
            source,
            src,
            tmp,
            tuning.progress,
            cancel,
            started=ffmpeg.started,
            ended=ffmpeg.ended,
            ran=joblog.ran,
            stamp=stamp,
        )
        info = made.info
        if made.action == "remuxed":
            joblog.say(f"{output.key}: remuxed (streams copied): {made.note}")
        joblog.checked(output.key, info)
        self.hooks.on_output_checked(job=job, output=tmp, info=info)
        scores = tuning.scores(tmp)
        size = self._store_output(tmp, job.output_bucket, output.key)
        joblog.say(f"{output.key}: stored ({size} bytes)")
        return complete_status(
            output.key, preset.id, info, size, action=made.action, note=made.note, **scores
        )

    def _source_info(self, job: Job, src: Path) -> MediaInfo:
        """Our own probe, for the facts the recipe needs beyond the client's (every stream,
        colour, field order); the client's rotation, when its probe is of this very object
        (same size), spares decoding a first frame."""
        detected = job.input.detected
        if detected is not None and detected.file_size == src.stat().st_size:
            return replace(probe(src, rotation=False, detail=True), rotation=detected.rotation)
        info = probe(src, detail=True)
        self.hooks.on_source_probed(job=job, path=src, info=info)
        return info

    def _store_output(self, path: Path, bucket: str, key: str) -> int:
        """A file goes to ``key``; a folder (HLS, thumbnails) to objects under ``key/``."""
        if not path.is_dir():
            size = path.stat().st_size
            self.backend.store.put(path, bucket, key)
            return size
        total = 0
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            total += file.stat().st_size
            self.backend.store.put(file, bucket, f"{key}/{file.relative_to(path).as_posix()}")
        shutil.rmtree(path, ignore_errors=True)
        return total

    def _already_stored(self, job: Job) -> tuple[OutputStatus, ...] | None:
        """Outputs of a redelivered job that an earlier attempt stored before it died.

        Only when every output is stored: an attempt that ended with a failed output
        answered at once (ERROR) and deleted its job, so a copy of it that finds an output
        missing does the job again and answers the same way."""
        store = self.backend.store
        if any(self.catalog.resolve(o.preset_id, o.preset_spec).folder for o in job.outputs):
            return None  # a folder may be half stored: do it again
        try:
            sizes = [store.size(job.output_bucket, o.key) for o in job.outputs]
        except StorageError:
            return None
        return tuple(
            OutputStatus(key=o.key, preset_id=o.preset_id, status="Complete", size=size)
            for o, size in zip(job.outputs, sizes, strict=True)
        )

    def _progress(
        self, job: Job, fraction: float, speed: float | None, eta: float | None = None
    ) -> None:
        status = [
            OutputStatus(
                key=o.key,
                preset_id=o.preset_id,
                status="Progressing",
                percent=round(fraction * 100, 1),
            )
            for o in job.outputs
        ]
        meta = dict(job.user_metadata)
        meta["worker"] = self.identity
        if job.part is not None:  # the client sums a chunked file's parts (``parts``)
            meta |= {"part": job.part.name, "parts": str(job.part.count + 1)}
        if speed:
            meta["speed"] = f"{speed:.2f}"
        if eta is not None:
            meta["eta"] = f"{eta:.0f}"
        try:
            self._publish(job, State.PROGRESSING, status, metadata=meta)
        except AutotranscodeError as exc:
            log.debug("progress notification not sent: %s", exc)

    def _publish_error(self, job: Job, reason: str, joblog: JobLog) -> None:
        """ERROR with ``reason``, the key of the job's log and the end of that log."""
        reason = reason[:MAX_DETAIL]
        joblog.say(f"job {job.job_id} failed: {reason}")
        status = tuple(
            OutputStatus(key=o.key, preset_id=o.preset_id, status="Error", status_detail=reason)
            for o in job.outputs
        )
        key = joblog.store(self.backend.store, job.output_bucket, job.job_id, self.workdir)
        self._publish(job, State.ERROR, status, reason=reason, log_key=key, joblog=joblog)

    def _publish(
        self,
        job: Job,
        state: State,
        outputs: Sequence[OutputStatus],
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        log_key: str | None = None,
        joblog: JobLog | None = None,
    ) -> None:
        """Addressed to the client that sent the job (its id travels in the job), so other
        clients' subscriptions filter it out. ``joblog``: its end travels with the notice."""
        note = notification(
            state,
            job_id=job.job_id,
            pipeline_id=job.pipeline_id,
            input=job.input,
            user_metadata=job.user_metadata if metadata is None else metadata,
            outputs=outputs,
            reason=reason,
            log_key=log_key,
            log_tail=joblog.text() if joblog is not None else None,
        )
        self.hooks.on_publishing(notification=note)
        client = note.user_metadata.get("clientId")
        self.backend.topic.publish(note.to_json(), client=client)
        self.hooks.on_published(notification=note)

    def _dead_letter(self, message: Received, reason: str) -> None:
        self.backend.dead_letters.send(message.body, reason=reason)
        self.backend.jobs.delete(message)


class WorkerPool:
    """N workers on threads: the in-process transcoding service of ``run`` and ``transcode``."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for w in self.workers:
            t = threading.Thread(target=w.run, args=(self._stop,), name=f"autotranscode-{w.name}")
            t.start()
            self._threads.append(t)

    def signal_stop(self) -> None:
        """Ask every worker to stop, without waiting for them."""
        self._stop.set()
        for w in self.workers:
            w.backend.jobs.wake()

    def stop(self) -> None:
        self.signal_stop()
        for t in self._threads:
            t.join()
        self._threads.clear()


def _say(joblog: JobLog, key: str, text: str) -> None:
    joblog.say(f"{key}: {text}")
