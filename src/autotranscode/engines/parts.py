"""Chunked jobs (``--chunk-seconds``): one long file across many workers, exactly once.

A job with ``chunkSeconds`` whose source is long enough, and with at least one output
that chunks, is split by the worker that takes it: it stores a plan beside the outputs
(``outputs/JOB/parts/plan.json``: the chunks, which outputs chunk, the source as probed
once), sends one job per chunk (the video of every chunked output over that range) and
one ``rest`` job (their audio, subtitles and metadata, encoded whole, plus every output
that does not chunk, made whole and stored at its own key), then deletes its own message.
Each part keeps the file's job id (the client, the queues and every notice see one job);
its ``part`` field says which piece it is, by a deterministic name (``c0007``, ``rest``,
``join``), so a split repeated after a crash sends the same parts.

A part stores its objects, then a marker (``c0007.json``), lists the parts, sends the
``join`` job once every marker is there, then deletes its message: a kill anywhere
leaves a message that is taken again, and a part found stored is not made again.
The join joins each chunked output without re-encoding, verifies it, stores it at the
output's own key, publishes the file's COMPLETED (or ERROR) as a whole job's, deletes the
parts, then its message. A chunk the verification names is deleted and sent again alone,
a bounded number of times; a join that finds the outputs stored announces them again.

Duplicate parts and joins (a redelivery, a split repeated, two last parts at once) cost
work, never a second different output: every step finds what an earlier one stored.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import msgspec

from .. import keys
from ..backends import Backend, Received
from ..errors import (
    AutotranscodeError,
    JoinError,
    MessageError,
    ObjectMissing,
    StorageError,
    TranscodeError,
)
from ..filelog import JobLog
from ..media import chunks, interlace, join, presets, transcoder
from ..media.chunks import Chunk
from ..media.probe import MediaInfo
from ..media.runner import FfmpegRun
from ..media.stamps import Stamp
from ..messages import MAX_CHUNKS, Job, OutputStatus, Part, State
from .outputs import (
    PROGRESS_INTERVAL_SECONDS,
    complete_status,
    content_hash,
    failures,
    one_line,
)
from .plans import (
    PART_EXTENSION,
    PLAN,
    Marker,
    PartObjects,
    Plan,
    PlannedChunk,
    check_part,
    chunked_outputs,
    part_name,
    unchunked_reason,
)

log = logging.getLogger(__name__)

#: How long a chunk's URL of the input is good for: ffmpeg opens it at once, and may
#: reconnect (a range request again) while it reads.
READ_URL_SECONDS = 6 * 3600
#: The query of a presigned URL, wherever ffmpeg repeats one in its own words.
_SIGNED = re.compile(r"\?[^\s'\"]*(?:Signature|X-Amz-Credential)[^\s'\"]*")

#: Times a join sends one chunk back for failing the verification before the file fails.
MAX_CHUNK_REDOS = 2


class Worker(Protocol):
    """What parts use of their ``worker.Worker``: its backend and settings, and the steps a
    whole job has too (an output made and stored, a notice, a dead letter)."""

    backend: Backend
    name: str
    identity: str
    ffmpeg: str
    workdir: Path
    catalog: presets.Catalog
    threads: int | None

    def _already_stored(self, job: Job) -> tuple[OutputStatus, ...] | None: ...

    def _source_info(self, job: Job, src: Path) -> MediaInfo: ...

    def _output(
        self,
        job: Job,
        index: int,
        source: MediaInfo,
        src: Path,
        cancel: threading.Event,
        handoff: None,
        previous: None,
        joblog: JobLog,
    ) -> OutputStatus: ...

    def _progress(
        self, job: Job, fraction: float, speed: float | None, eta: float | None = None
    ) -> None: ...

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
    ) -> None: ...

    def _dead_letter(self, message: Received, reason: str) -> None: ...


class Parts:
    """The part handling of one worker (``Worker.handle`` hands it the jobs it takes)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.store = worker.backend.store
        self.objects = PartObjects(self.store, worker.workdir)

    @staticmethod
    def takes(job: Job) -> bool:
        return job.part is not None or job.chunk_seconds is not None

    def handle(self, job: Job, message: Received, cancel: threading.Event, joblog: JobLog) -> bool:
        """Do ``job`` as a split or a part; False: it is not chunked, do it as a whole job.
        True: answered, its message deleted (or dead-lettered, for a part not in the plan)."""
        if job.part is None:
            return self._split(job, message, cancel, joblog)
        plan = self.objects.plan(job)
        if plan is None:
            if job.part.kind == "join" and self._announce_stored(job, None, joblog):
                self.worker.backend.jobs.delete(message)
                return True
            # The file was finished, failed or cancelled, and its objects removed.
            log.info("%s: part %s has no plan (its file is over); dropped", self.name, job.task)
            self.worker.backend.jobs.delete(message)
            return True
        try:
            check_part(job.part, plan)
        except MessageError as exc:
            log.warning("%s: rejected a part message: %s", self.name, exc)
            self.worker._dead_letter(message, f"rejected: {exc}")
            return True
        if job.part.kind == "chunk":
            self._chunk(job, job.part, plan, cancel, joblog)
        elif job.part.kind == "rest":
            self._rest(job, plan, cancel, joblog)
        else:
            self._join(job, plan, cancel, joblog)
        self.worker.backend.jobs.delete(message)
        return True

    @property
    def name(self) -> str:
        return self.worker.name

    # -- split

    def _split(self, job: Job, message: Received, cancel: threading.Event, joblog: JobLog) -> bool:
        assert job.chunk_seconds is not None
        detected = job.input.detected
        if not chunked_outputs(self._presets(job))[0]:
            joblog.say("not chunked: none of its outputs is made in chunks")
            return False  # a whole job, as without --chunk-seconds
        millis = detected.duration_millis if detected is not None else None
        if millis is not None and millis < 2000 * job.chunk_seconds:
            joblog.say(f"not chunked: shorter than two chunks of {job.chunk_seconds:g}s")
            return False
        if self.worker._already_stored(job) is not None:
            return False  # done before: the whole job's path announces it again
        stored = self.objects.plan(job)  # a split taken again: the parts not stored yet
        plan = stored or self._make_plan(job, cancel, joblog)
        if plan is None:
            return False
        for i, why in chunked_outputs(self._presets(job), plan.source)[1].items():
            joblog.say(f"{job.outputs[i].key}: not chunked ({why}); made whole")
        joblog.say(
            f"split into {plan.count} chunks of about {plan.chunk_seconds:g}s"
            f" and the rest (audio, subtitles, whole outputs)"
        )
        self.objects.store_log(job, "split", joblog)
        parts = self.objects.missing(job, plan) if stored is not None else plan.parts()
        for part in parts or [Part(kind="join", count=plan.count)]:
            self._send(job, part)
        self.worker.backend.jobs.delete(message)
        log.info("%s: job %s split into %d chunks", self.name, job.job_id, plan.count)
        return True

    def _make_plan(self, job: Job, cancel: threading.Event, joblog: JobLog) -> Plan | None:
        assert job.chunk_seconds is not None
        with self._source(job, joblog=joblog) as (src, source):
            chunked, _ = chunked_outputs(self._presets(job), source)
            planned = (
                chunks.chunk_plan(
                    src,
                    source,
                    job.chunk_seconds,
                    scene_cuts=bool(job.chunk_scenes),
                    ffmpeg=self.worker.ffmpeg,
                    cancel=cancel,
                    say=joblog.say,
                )
                if chunked
                else []
            )
        if not chunked:
            joblog.say("not chunked: none of its outputs is encoded in chunks for this source")
            return None
        if not planned:
            joblog.say(f"not chunked: {unchunked_reason(source, job.chunk_seconds)}")
            return None
        if len(planned) > MAX_CHUNKS:
            joblog.say(f"not chunked: {len(planned)} chunks, more than {MAX_CHUNKS}")
            return None
        plan = Plan(
            chunks=tuple(PlannedChunk(c.index, c.start, c.end, c.frames) for c in planned),
            chunked=chunked,
            source=source,
            chunk_seconds=job.chunk_seconds,
        )
        self.objects.put(job, PLAN, msgspec.json.encode(plan))
        return plan

    # -- chunk and rest

    def _chunk(
        self, job: Job, part: Part, plan: Plan, cancel: threading.Event, joblog: JobLog
    ) -> None:
        if self.objects.stored(job, part.name):
            joblog.say(f"{part.name}: stored by an earlier attempt")
        else:
            chunk = plan.chunks[part.index].chunk()
            length = chunk.length(plan.source.duration)
            joblog.say(f"{part.name}: {chunk.start:.3f}s to {chunk.end or 'the end'}")
            with self._range_source(job, joblog) as (src, ran):
                for n, i in enumerate(plan.chunked):
                    preset = self._preset(job, i)
                    dst = self.objects.tmp(job, f"{i}{PART_EXTENSION}")
                    cmd = chunks.chunk_command(
                        self.worker.ffmpeg,
                        preset,
                        plan.source,
                        src,
                        dst,
                        chunk,
                        threads=self.worker.threads,
                    )
                    progress = self._progress(job, n, len(plan.chunked))
                    for attempt in (1, 2):  # a chunk that fails its own check: made again here
                        chunks.run(
                            cmd,
                            duration=length,
                            progress=progress,
                            cancel=cancel,
                            ran=ran,
                            output=dst,
                        )
                        try:
                            join.check_chunk(dst, chunk)
                            break
                        except JoinError as exc:
                            joblog.say(f"{part.name}: {exc}")
                            dst.unlink(missing_ok=True)
                            if attempt == 2:
                                raise
                    self.objects.put_file(dst, job, f"{part.name}.o{i}{PART_EXTENSION}")
            self.objects.mark(job, part.name, Marker(self.worker.identity, part.redo), joblog)
        self._done(job, plan)

    def _rest(self, job: Job, plan: Plan, cancel: threading.Event, joblog: JobLog) -> None:
        if self.objects.stored(job, "rest"):
            joblog.say("rest: stored by an earlier attempt")
            self._done(job, plan)
            return
        statuses: list[OutputStatus] = []
        with self._source(job, plan) as (src, source):
            for i, output in enumerate(job.outputs):
                preset = self._preset(job, i)
                if i in plan.chunked:
                    if chunks.has_rest(preset, source):  # else the join takes the video alone
                        dst = self.objects.tmp(job, f"rest{i}{chunks.REST_SUFFIX}")
                        cmd = chunks.rest_command(self.worker.ffmpeg, preset, source, src, dst)
                        chunks.run(
                            cmd,
                            duration=source.duration,
                            cancel=cancel,
                            progress=self._progress(job, i, len(job.outputs)),
                            ran=joblog.ran,
                            output=dst,
                        )
                        self.objects.put_file(dst, job, f"rest.o{i}{chunks.REST_SUFFIX}")
                    continue
                try:
                    statuses.append(
                        self.worker._output(job, i, source, src, cancel, None, None, joblog)
                    )
                except AutotranscodeError as exc:
                    if exc.retryable or cancel.is_set():
                        raise
                    detail = one_line(str(exc))
                    joblog.say(f"{output.key}: failed: {detail}")
                    statuses.append(_error(job, i, detail))
        self.objects.mark(
            job, "rest", Marker(self.worker.identity, statuses=tuple(statuses)), joblog
        )
        self._done(job, plan)

    def _done(self, job: Job, plan: Plan) -> None:
        """Said once a part is stored: its progress at 100 %, and the join if it was the last
        (store, look, send: a part killed between them is taken again and looks again)."""
        self.worker._progress(job, 1.0, None)
        prefix = keys.parts_prefix(job.job_id)
        names = set(self.store.keys(job.output_bucket, prefix))
        if f"{prefix}{PLAN}" not in names:
            # The file ended meanwhile (failed, cancelled, joined by a copy of this part's
            # join) and its objects were removed: what this part just stored goes too.
            self.store.delete_prefix(job.output_bucket, prefix)
        elif not self.objects.missing(job, plan, names):
            self._send(job, Part(kind="join", count=plan.count))

    # -- join

    def _join(self, job: Job, plan: Plan, cancel: threading.Event, joblog: JobLog) -> None:
        if self._announce_stored(job, plan, joblog):
            return
        missing = self.objects.missing(job, plan)
        if missing:
            # Not all there (a part's objects went): those parts again; their end sends a join.
            joblog.say(f"join: parts missing ({', '.join(p.name for p in missing)}); sent again")
            for part in missing:
                self._send(job, part)
            return
        rest = self.objects.marker(job, "rest")
        made: dict[int, tuple[Path, MediaInfo]] = {}
        work = self.worker.workdir / f"{job.task}-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
        try:
            for i in plan.chunked:
                made[i] = self._join_output(job, plan, i, work, cancel, joblog)
            statuses = {s.key: s for s in (rest.statuses if rest is not None else ())}
            for i, (path, info) in made.items():
                key = job.outputs[i].key
                size = path.stat().st_size
                self.store.put(path, job.output_bucket, key)
                joblog.say(f"{key}: joined from {plan.count} chunks and stored ({size} bytes)")
                statuses[key] = complete_status(
                    key, job.outputs[i].preset_id, info, size, action="encoded"
                )
        except _BadChunk as bad:
            self._redo(job, plan, bad.index, bad.error, joblog)
            return
        except ObjectMissing as exc:
            # Another join of this job finished first and removed the parts.
            if self._announce_stored(job, plan, joblog, again=False):
                return
            raise StorageError(f"a part is gone: {exc}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        ordered = [
            statuses.get(o.key) or _error(job, n, "not made") for n, o in enumerate(job.outputs)
        ]
        self._finish(job, ordered, joblog)

    def _join_output(
        self,
        job: Job,
        plan: Plan,
        i: int,
        work: Path,
        cancel: threading.Event,
        joblog: JobLog,
    ) -> tuple[Path, MediaInfo]:
        """Output ``i`` joined and verified in ``work``: its file and what it is."""
        preset = self._preset(job, i)
        prefix = keys.parts_prefix(job.job_id)
        paths = []
        for planned in plan.chunks:
            path = work / f"{part_name('chunk', planned.index)}.o{i}{PART_EXTENSION}"
            key = f"{prefix}{path.name}"
            self.store.download(job.output_bucket, key, path)
            paths.append(path)
        rest: Path | None = work / f"rest.o{i}{chunks.REST_SUFFIX}"
        assert rest is not None
        try:
            self.store.download(job.output_bucket, f"{prefix}{rest.name}", rest)
        except ObjectMissing:
            rest = None  # nothing but video (the rest job had nothing to make for it)
        dst = work / f"joined-{i}{preset.extension}"
        stamp = Stamp(content_hash(job), presets.digest(preset))
        cuts = plan.planned()
        cmd = join.join_command(
            self.worker.ffmpeg,
            preset,
            plan.source,
            paths,
            rest,
            dst,
            tags=stamp.tags(),
            chunks=cuts,
        )
        progress = self._progress(job, plan.chunked.index(i), len(plan.chunked))
        chunks.run(
            cmd,
            duration=plan.source.duration,
            progress=progress,
            cancel=cancel,
            ran=joblog.ran,
            output=dst,
        )
        try:
            self._verify(job, plan, dst, cuts)
            info = transcoder.verify(preset, plan.source, dst)
        except JoinError as exc:
            if exc.bad_chunk is not None and 0 <= exc.bad_chunk < plan.count:
                raise _BadChunk(exc.bad_chunk, exc) from exc
            raise
        joblog.checked(job.outputs[i].key, info)
        for used in [*paths, rest]:  # the next output's chunks need the room
            if used is not None:
                used.unlink(missing_ok=True)
        return dst, info

    def _verify(self, job: Job, plan: Plan, dst: Path, planned: list[Chunk]) -> None:
        """``join.verify_join``; when it blames no chunk, again against the source itself
        (fetched only then: a source whose sound outlasts its picture is not a bad join)."""
        expected = chunks.expected_frames(planned)
        try:
            join.verify_join(dst, plan.source, expected, chunks=planned)
        except JoinError as exc:
            if exc.bad_chunk is not None:
                raise
            with self.store.local_path(job.input.bucket, job.input.key, dst.parent) as src:
                join.verify_join(dst, plan.source, expected, chunks=planned, source_path=src)

    def _redo(
        self, job: Job, plan: Plan, index: int, error: TranscodeError, joblog: JobLog
    ) -> None:
        """Chunk ``index`` failed the verification: deleted and sent again alone, never
        delivered; after MAX_CHUNK_REDOS times the file fails."""
        name = part_name("chunk", index)
        marker = self.objects.marker(job, name)
        redo = marker.redo if marker is not None else 0
        if redo >= MAX_CHUNK_REDOS:
            raise TranscodeError(f"chunk {name} failed the join's check {redo + 1} times: {error}")
        joblog.say(f"join: chunk {name} failed the check ({error}); made again")
        self.objects.store_log(job, "join", joblog)
        prefix = keys.parts_prefix(job.job_id)
        self.store.delete(job.output_bucket, f"{prefix}{name}.json")  # the marker first
        for i in plan.chunked:
            self.store.delete(job.output_bucket, f"{prefix}{name}.o{i}{PART_EXTENSION}")
        planned = plan.chunks[index]
        self._send(
            job,
            Part(
                kind="chunk",
                index=index,
                count=plan.count,
                start=planned.start,
                end=planned.end,
                redo=redo + 1,
            ),
        )
        log.warning(
            "%s: job %s chunk %s failed the join's check; sent again", self.name, job.job_id, name
        )

    def _announce_stored(
        self, job: Job, plan: Plan | None, joblog: JobLog, *, again: bool = True
    ) -> bool:
        """A join that finds the chunked outputs stored (an earlier join died after storing
        them) announces them again, as a whole job's redelivery does; False if not stored."""
        # Without the plan (the parts went with an earlier join's end): every file output.
        files = tuple(i for i, p in enumerate(self._presets(job)) if not p.folder)
        chunked = plan.chunked if plan is not None else files
        try:
            sizes = {i: self.store.size(job.output_bucket, job.outputs[i].key) for i in chunked}
        except StorageError:
            return False
        rest = self.objects.marker(job, "rest") if plan is not None else None
        statuses = {s.key: s for s in rest.statuses} if rest is not None else {}
        ordered = []
        for i, output in enumerate(job.outputs):
            if i in sizes:
                status = OutputStatus(key=output.key, preset_id=output.preset_id, size=sizes[i])
            else:
                status = statuses.get(output.key) or self._whole_status(job, i)
            ordered.append(status)
        if again:
            joblog.say("join: the outputs were stored by an earlier join; announcing them again")
            self._finish(job, ordered, joblog)
        else:
            self.store.delete_prefix(job.output_bucket, keys.parts_prefix(job.job_id))
        return True

    def _whole_status(self, job: Job, i: int) -> OutputStatus:
        output = job.outputs[i]
        if self.store.keys(job.output_bucket, f"{output.key}/") or self.objects.exists(
            job, output.key
        ):
            return OutputStatus(key=output.key, preset_id=output.preset_id)
        return _error(job, i, "not made")

    def _finish(self, job: Job, statuses: Sequence[OutputStatus], joblog: JobLog) -> None:
        """The file's answer, as a whole job's: its log (every part's), COMPLETED or ERROR,
        then the parts go."""
        failed = failures(statuses)
        joblog.say(f"job {job.job_id} " + (f"ended in ERROR: {failed}" if failed else "completed"))
        joblog.include(self.objects.part_logs(job))
        key = joblog.store(
            self.store, job.output_bucket, job.job_id, self.worker.workdir, whole=True
        )
        state = State.ERROR if failed else State.COMPLETED
        self.worker._publish(
            job, state, statuses, reason=failed, log_key=key, joblog=joblog if failed else None
        )
        self.store.delete_prefix(job.output_bucket, keys.parts_prefix(job.job_id))
        log.info("%s: job %s joined: %s", self.name, job.job_id, failed or "completed")

    # -- the objects

    def _send(self, job: Job, part: Part) -> None:
        body = msgspec.structs.replace(job, part=part, chunk_seconds=None, chunk_scenes=None)
        self.worker.backend.jobs.send(body.to_json())

    @contextmanager
    def _source(
        self, job: Job, plan: Plan | None = None, joblog: JobLog | None = None
    ) -> Iterator[tuple[Path, MediaInfo]]:
        """The input, and the source as the plan saw it (probed here for the plan)."""
        with self.store.local_path(job.input.bucket, job.input.key, self.worker.workdir) as src:
            if plan is not None:
                yield src, plan.source
                return
            source = self.worker._source_info(job, src)
            source, found = interlace.detect(self.worker.ffmpeg, src, source)
            if found and joblog is not None:
                joblog.say(found)
            yield src, source

    @contextmanager
    def _range_source(
        self, job: Job, joblog: JobLog
    ) -> Iterator[tuple[Path | str, Callable[[FfmpegRun], None]]]:
        """Where a chunk reads the input: a URL where the store has one (S3: ffmpeg fetches its
        range alone), else a local copy; and the log's ``ran``, which names the object,
        never the URL (it is a credential while it lasts)."""
        bucket, key = job.input.bucket, job.input.key
        url = self.store.read_url(bucket, key, READ_URL_SECONDS)
        if url is None:
            with self.store.local_path(bucket, key, self.worker.workdir) as src:
                yield src, joblog.ran
            return

        def hidden(text: str) -> str:
            return _SIGNED.sub("?(signed)", text.replace(url, f"s3://{bucket}/{key}"))

        def ran(run: FfmpegRun) -> None:
            joblog.ran(replace(run, command=hidden(run.command), stderr=hidden(run.stderr)))

        yield url, ran

    def _presets(self, job: Job) -> list[presets.Preset]:
        return [self.worker.catalog.resolve(o.preset_id, o.preset_spec) for o in job.outputs]

    def _preset(self, job: Job, i: int) -> presets.Preset:
        output = job.outputs[i]
        return self.worker.catalog.resolve(output.preset_id, output.preset_spec)

    def _progress(self, job: Job, n: int, total: int) -> Callable[[float, float | None], None]:
        """ffmpeg's reports of run ``n`` of ``total``, as the part's PROGRESSING notices (at
        most one per PROGRESS_INTERVAL_SECONDS, as a whole job's)."""
        last = -PROGRESS_INTERVAL_SECONDS

        def report(fraction: float, speed: float | None) -> None:
            nonlocal last
            now = time.monotonic()
            if fraction < 1.0 and now - last >= PROGRESS_INTERVAL_SECONDS:
                last = now
                self.worker._progress(job, (n + fraction) / total, speed)

        return report


class _BadChunk(Exception):
    def __init__(self, index: int, error: TranscodeError) -> None:
        super().__init__(str(error))
        self.index, self.error = index, error


def _error(job: Job, i: int, detail: str) -> OutputStatus:
    output = job.outputs[i]
    return OutputStatus(
        key=output.key, preset_id=output.preset_id, status="Error", status_detail=detail
    )
