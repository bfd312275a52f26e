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
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import msgspec

from .. import keys
from ..backends import Backend, Received
from ..errors import AutotranscodeError, MessageError, ObjectMissing, StorageError, TranscodeError
from ..filelog import JobLog
from ..media import chunks, interlace, presets, transcoder
from ..media.probe import MediaInfo
from ..media.stamps import Stamp
from ..messages import MAX_CHUNKS, Job, OutputStatus, Part, State
from .outputs import complete_status, content_hash, failures, one_line

log = logging.getLogger(__name__)

PLAN = "plan.json"
#: The container of chunks and of the rest: Matroska holds any codec the presets make.
PART_EXTENSION = ".mkv"
#: Times a join sends one chunk back for failing the verification before the file fails.
MAX_CHUNK_REDOS = 2
#: Times two part boundaries may differ and still be the same (float round trips).
_EPSILON = 1e-6


class PlannedChunk(msgspec.Struct, frozen=True):
    index: int
    start: float
    end: float | None
    frames: int | None = None

    def chunk(self) -> chunks.Chunk:
        return chunks.Chunk(self.index, self.start, self.end, self.frames)


class Plan(msgspec.Struct, frozen=True):
    """What the split decided, stored once: every part works from the same facts."""

    chunks: tuple[PlannedChunk, ...]
    #: The indexes of the job's outputs made of chunks; the others the rest job makes whole.
    chunked: tuple[int, ...]
    source: MediaInfo
    chunk_seconds: float

    @property
    def count(self) -> int:
        return len(self.chunks)

    def frames(self) -> int | None:
        """The frames the joined video must have, when every chunk's count is known."""
        counts = [c.frames for c in self.chunks]
        return None if any(n is None for n in counts) else sum(n or 0 for n in counts)


class Marker(msgspec.Struct, frozen=True):
    """A part's last object: the part is stored. The rest's carries its outputs' statuses."""

    worker: str
    redo: int = 0
    statuses: tuple[OutputStatus, ...] = ()


class Worker(Protocol):
    """What parts use of their ``worker.Worker``: its backend and settings, and the steps a
    whole job has too (an output made and stored, a notice, a dead letter)."""

    backend: Backend
    name: str
    identity: str
    ffmpeg: str
    workdir: Path
    catalog: presets.Catalog

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


def part_name(kind: str, index: int = 0) -> str:
    return f"c{index:04d}" if kind == "chunk" else kind


class Parts:
    """The part handling of one worker (``Worker.handle`` hands it the jobs it takes)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.store = worker.backend.store

    @staticmethod
    def takes(job: Job) -> bool:
        return job.part is not None or job.chunk_seconds is not None

    def handle(self, job: Job, message: Received, cancel: threading.Event, joblog: JobLog) -> bool:
        """Do ``job`` as a split or a part; False: it is not chunked, do it as a whole job.
        True: answered, its message deleted (or dead-lettered, for a part not in the plan)."""
        if job.part is None:
            return self._split(job, message, cancel, joblog)
        plan = self._plan(job)
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
        resolved = [self.worker.catalog.resolve(o.preset_id, o.preset_spec) for o in job.outputs]
        chunked = tuple(i for i, p in enumerate(resolved) if chunks.chunkable(p))
        detected = job.input.detected
        short = (
            detected is not None
            and detected.duration_millis is not None
            and detected.duration_millis / 1000 < 2 * job.chunk_seconds
        )
        if not chunked or short or self.worker._already_stored(job) is not None:
            return False  # a whole job, as without --chunk-seconds
        plan = self._plan(job)
        if plan is None:
            plan = self._make_plan(job, chunked, cancel, joblog)
            if plan is None:
                return False
        for i, preset in enumerate(resolved):
            if i not in plan.chunked:
                why = "HLS keeps its own segments" if preset.kind == "hls" else preset.kind
                joblog.say(f"{job.outputs[i].key}: not chunked ({why}); made whole")
        joblog.say(
            f"split into {plan.count} chunks of about {plan.chunk_seconds:g}s"
            f" and the rest (audio, subtitles, whole outputs)"
        )
        self._store_log(job, "split", joblog)
        for planned in plan.chunks:
            self._send(
                job,
                Part(
                    kind="chunk",
                    index=planned.index,
                    count=plan.count,
                    start=planned.start,
                    end=planned.end,
                ),
            )
        self._send(job, Part(kind="rest", count=plan.count))
        self.worker.backend.jobs.delete(message)
        log.info("%s: job %s split into %d chunks", self.name, job.job_id, plan.count)
        return True

    def _make_plan(
        self, job: Job, chunked: tuple[int, ...], cancel: threading.Event, joblog: JobLog
    ) -> Plan | None:
        assert job.chunk_seconds is not None
        with self._source(job) as (src, source):
            planned = chunks.chunk_plan(src, source, job.chunk_seconds)
        if not planned:
            joblog.say(f"not chunked: too short for chunks of {job.chunk_seconds:g}s")
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
        self._put(job, PLAN, msgspec.json.encode(plan))
        return plan

    # -- chunk and rest

    def _chunk(
        self, job: Job, part: Part, plan: Plan, cancel: threading.Event, joblog: JobLog
    ) -> None:
        if self._stored(job, part.name):
            joblog.say(f"{part.name}: stored by an earlier attempt")
        else:
            chunk = plan.chunks[part.index]
            length = (chunk.end or plan.source.duration or chunk.start + 1) - chunk.start
            joblog.say(f"{part.name}: {chunk.start:.3f}s to {chunk.end or 'the end'}")
            with self._source(job, plan) as (src, source):
                for n, i in enumerate(plan.chunked):
                    preset = self._preset(job, i)
                    dst = self._tmp(job, f"{i}{PART_EXTENSION}")
                    cmd = chunks.chunk_command(
                        self.worker.ffmpeg, preset, source, src, dst, chunk.chunk()
                    )
                    progress = self._progress(job, n, len(plan.chunked))
                    chunks.run(
                        cmd, duration=length, progress=progress, cancel=cancel, ran=joblog.ran
                    )
                    self._put_file(dst, job, f"{part.name}.o{i}{PART_EXTENSION}")
            self._mark(job, part.name, Marker(self.worker.identity, part.redo), joblog)
        self._done(job, plan)

    def _rest(self, job: Job, plan: Plan, cancel: threading.Event, joblog: JobLog) -> None:
        if self._stored(job, "rest"):
            joblog.say("rest: stored by an earlier attempt")
            self._done(job, plan)
            return
        statuses: list[OutputStatus] = []
        with self._source(job, plan) as (src, source):
            for i, output in enumerate(job.outputs):
                preset = self._preset(job, i)
                if i in plan.chunked:
                    dst = self._tmp(job, f"rest{i}{PART_EXTENSION}")
                    cmd = chunks.rest_command(self.worker.ffmpeg, preset, source, src, dst)
                    if cmd:
                        chunks.run(
                            cmd,
                            duration=source.duration or 0.0,
                            cancel=cancel,
                            progress=self._progress(job, i, len(job.outputs)),
                            ran=joblog.ran,
                        )
                        self._put_file(dst, job, f"rest.o{i}{PART_EXTENSION}")
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
        self._mark(job, "rest", Marker(self.worker.identity, statuses=tuple(statuses)), joblog)
        self._done(job, plan)

    def _done(self, job: Job, plan: Plan) -> None:
        """Said once a part is stored: its progress at 100 %, and the join if it was the last
        (store, look, send: a part killed between them is taken again and looks again)."""
        self.worker._progress(job, 1.0, None)
        if not self._missing(job, plan):
            self._send(job, Part(kind="join", count=plan.count))

    # -- join

    def _join(self, job: Job, plan: Plan, cancel: threading.Event, joblog: JobLog) -> None:
        if self._announce_stored(job, plan, joblog):
            return
        missing = self._missing(job, plan)
        if missing:
            # Not all there (a part's objects went): those parts again; their end sends a join.
            joblog.say(f"join: parts missing ({', '.join(p.name for p in missing)}); sent again")
            for part in missing:
                self._send(job, part)
            return
        rest = self._marker(job, "rest")
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
                statuses[key] = complete_status(key, job.outputs[i].preset_id, info, size)
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
        rest: Path | None = work / f"rest.o{i}{PART_EXTENSION}"
        assert rest is not None
        try:
            self.store.download(job.output_bucket, f"{prefix}{rest.name}", rest)
        except ObjectMissing:
            rest = None  # nothing but video (the rest job had nothing to make for it)
        dst = work / f"joined-{i}{preset.extension}"
        stamp = Stamp(content_hash(job), presets.digest(preset))
        cmd = chunks.join_command(
            self.worker.ffmpeg, preset, plan.source, paths, rest, dst, tags=stamp.tags()
        )
        chunks.run(cmd, duration=plan.source.duration or 0.0, cancel=cancel, ran=joblog.ran)
        try:
            chunks.verify_join(dst, plan.source, plan.frames())
            info = transcoder.verify(preset, plan.source, dst)
        except TranscodeError as exc:
            bad = getattr(exc, "bad_chunk", None)
            if isinstance(bad, int) and 0 <= bad < plan.count:
                raise _BadChunk(bad, exc) from exc
            raise
        joblog.checked(job.outputs[i].key, info)
        return dst, info

    def _redo(
        self, job: Job, plan: Plan, index: int, error: TranscodeError, joblog: JobLog
    ) -> None:
        """Chunk ``index`` failed the verification: deleted and sent again alone, never
        delivered; after MAX_CHUNK_REDOS times the file fails."""
        name = part_name("chunk", index)
        marker = self._marker(job, name)
        redo = marker.redo if marker is not None else 0
        if redo >= MAX_CHUNK_REDOS:
            raise TranscodeError(f"chunk {name} failed the join's check {redo + 1} times: {error}")
        joblog.say(f"join: chunk {name} failed the check ({error}); made again")
        self._store_log(job, "join", joblog)
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
        chunked = (
            plan.chunked
            if plan is not None
            else tuple(
                i for i, o in enumerate(job.outputs) if chunks.chunkable(self._preset(job, i))
            )
        )
        try:
            sizes = {i: self.store.size(job.output_bucket, job.outputs[i].key) for i in chunked}
        except StorageError:
            return False
        rest = self._marker(job, "rest") if plan is not None else None
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
        if self.store.keys(job.output_bucket, f"{output.key}/") or self._exists(job, output.key):
            return OutputStatus(key=output.key, preset_id=output.preset_id)
        return _error(job, i, "not made")

    def _finish(self, job: Job, statuses: Sequence[OutputStatus], joblog: JobLog) -> None:
        """The file's answer, as a whole job's: its log (every part's), COMPLETED or ERROR,
        then the parts go."""
        failed = failures(statuses)
        joblog.say(f"job {job.job_id} " + (f"ended in ERROR: {failed}" if failed else "completed"))
        joblog.include(self._part_logs(job))
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

    def _missing(self, job: Job, plan: Plan) -> list[Part]:
        """The parts whose markers are not stored, as the parts to send again."""
        prefix = keys.parts_prefix(job.job_id)
        names = set(self.store.keys(job.output_bucket, prefix))
        missing = [
            Part(kind="chunk", index=c.index, count=plan.count, start=c.start, end=c.end)
            for c in plan.chunks
            if f"{prefix}{part_name('chunk', c.index)}.json" not in names
        ]
        if f"{prefix}rest.json" not in names:
            missing.append(Part(kind="rest", count=plan.count))
        return missing

    def _send(self, job: Job, part: Part) -> None:
        body = msgspec.structs.replace(job, part=part, chunk_seconds=None)
        self.worker.backend.jobs.send(body.to_json())

    def _plan(self, job: Job) -> Plan | None:
        data = self._get(job, PLAN)
        if data is None:
            return None
        try:
            return msgspec.json.decode(data, type=Plan)
        except msgspec.MsgspecError as exc:
            raise StorageError(f"job {job.job_id}: its stored plan is unreadable: {exc}") from exc

    def _marker(self, job: Job, name: str) -> Marker | None:
        data = self._get(job, f"{name}.json")
        return None if data is None else msgspec.json.decode(data, type=Marker)

    def _mark(self, job: Job, name: str, marker: Marker, joblog: JobLog) -> None:
        self._store_log(job, name, joblog)
        self._put(job, f"{name}.json", msgspec.json.encode(marker))

    def _stored(self, job: Job, name: str) -> bool:
        return self._exists(job, f"{keys.parts_prefix(job.job_id)}{name}.json")

    def _exists(self, job: Job, key: str) -> bool:
        try:
            self.store.size(job.output_bucket, key)
        except StorageError:
            return False
        return True

    def _get(self, job: Job, name: str) -> bytes | None:
        tmp = self._tmp(job, name)
        try:
            self.store.download(job.output_bucket, f"{keys.parts_prefix(job.job_id)}{name}", tmp)
            return tmp.read_bytes()
        except ObjectMissing:
            return None
        finally:
            tmp.unlink(missing_ok=True)

    def _put(self, job: Job, name: str, data: bytes) -> None:
        tmp = self._tmp(job, name)
        tmp.write_bytes(data)
        self._put_file(tmp, job, name)

    def _put_file(self, path: Path, job: Job, name: str) -> None:
        self.store.put(path, job.output_bucket, f"{keys.parts_prefix(job.job_id)}{name}")

    def _tmp(self, job: Job, name: str) -> Path:
        self.worker.workdir.mkdir(parents=True, exist_ok=True)
        return self.worker.workdir / f"{job.task}-{uuid.uuid4().hex[:8]}-{name}"

    def _store_log(self, job: Job, name: str, joblog: JobLog) -> None:
        joblog.store(self.store, job.output_bucket, job.job_id, self.worker.workdir, part=name)

    def _part_logs(self, job: Job) -> str:
        """The split's and every part's logs, in order: the file's log tells them all."""
        prefix = keys.parts_prefix(job.job_id)
        names = sorted(
            k.removeprefix(prefix).removesuffix(".log")
            for k in self.store.keys(job.output_bucket, prefix)
            if k.endswith(".log")
        )
        order = {"split": 0, "rest": 2, "join": 3}
        texts = []
        for name in sorted(names, key=lambda n: (order.get(n, 1), n)):
            data = self._get(job, f"{name}.log")
            if data:
                texts.append(data.decode(errors="replace"))
        return "".join(texts)

    @contextmanager
    def _source(self, job: Job, plan: Plan | None = None) -> Iterator[tuple[Path, MediaInfo]]:
        """The input, and the source as the plan saw it (probed here for the plan)."""
        with self.store.local_path(job.input.bucket, job.input.key, self.worker.workdir) as src:
            if plan is not None:
                yield src, plan.source
                return
            source = self.worker._source_info(job, src)
            source, _found = interlace.detect(self.worker.ffmpeg, src, source)
            yield src, source

    def _preset(self, job: Job, i: int) -> presets.Preset:
        output = job.outputs[i]
        return self.worker.catalog.resolve(output.preset_id, output.preset_spec)

    def _progress(self, job: Job, n: int, total: int) -> Callable[[float, float | None], None]:
        def report(fraction: float, speed: float | None) -> None:
            if fraction < 1.0:
                self.worker._progress(job, (n + fraction) / total, speed)

        return report


class _BadChunk(Exception):
    def __init__(self, index: int, error: TranscodeError) -> None:
        super().__init__(str(error))
        self.index, self.error = index, error


def check_part(part: Part, plan: Plan) -> None:
    """MessageError unless ``part`` is one the stored plan made (a forged or stale part)."""
    if part.count != plan.count:
        raise MessageError(f"part {part.name} of {part.count} parts; the plan has {plan.count}")
    if part.kind != "chunk":
        return
    planned = plan.chunks[part.index]
    end_differs = (part.end is None) != (planned.end is None) or (
        part.end is not None and planned.end is not None and abs(part.end - planned.end) > _EPSILON
    )
    if abs(part.start - planned.start) > _EPSILON or end_differs:
        raise MessageError(f"part {part.name} is not the plan's chunk {planned.index}")


def _error(job: Job, i: int, detail: str) -> OutputStatus:
    output = job.outputs[i]
    return OutputStatus(
        key=output.key, preset_id=output.preset_id, status="Error", status_detail=detail
    )
