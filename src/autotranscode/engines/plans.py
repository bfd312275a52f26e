"""A chunked job's objects in the store (``engines.parts``): its plan, each part's objects
and marker, its parts' logs, all under ``keys.parts_prefix``, beside the job's outputs, so
that what removes a file's objects removes them too.

The plan is what the split decided, stored once: every part works from the same facts (the
chunks, which outputs chunk, the source as probed once). A part's marker is its last
object: the part is stored. A part message is checked against the plan (``check_part``):
one it did not make is forged or stale.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from pathlib import Path

import msgspec

from .. import keys
from ..backends import ObjectStore
from ..errors import MessageError, ObjectMissing, PlanError, StorageError
from ..filelog import JobLog
from ..media import chunks, conform, interlace, presets
from ..media.chunks import Chunk
from ..media.probe import MediaInfo
from ..messages import MAX_CHUNKS, Job, OutputStatus, Part

PLAN = "plan.json"
#: The container of chunks and of the rest (``chunks``: Matroska).
PART_EXTENSION = chunks.CHUNK_SUFFIX
#: Times two part boundaries may differ and still be the same (float round trips).
_EPSILON = 1e-6


class PlannedChunk(msgspec.Struct, frozen=True):
    index: int
    start: float
    end: float | None
    frames: int | None = None

    def chunk(self) -> Chunk:
        return Chunk(self.index, self.start, self.end, self.frames)


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

    def planned(self) -> list[Chunk]:
        return [c.chunk() for c in self.chunks]

    def parts(self) -> list[Part]:
        """The jobs the split sends: the rest first, then one per chunk. The rest (the whole
        audio, at ~20-60x realtime) is the floor of a file's time once workers are many: taken
        last it would start only when the chunks are nearly done (bench/chunking.py's model:
        26.8 -> 22.8 min for a 2-hour file on 8 workers)."""
        every = [
            Part(kind="chunk", index=c.index, count=self.count, start=c.start, end=c.end)
            for c in self.chunks
        ]
        return [Part(kind="rest", count=self.count), *every]


class Marker(msgspec.Struct, frozen=True):
    """A part's last object: the part is stored. The rest's carries its outputs' statuses."""

    worker: str
    redo: int = 0
    statuses: tuple[OutputStatus, ...] = ()


def part_name(kind: str, index: int = 0) -> str:
    return f"c{index:04d}" if kind == "chunk" else kind


def chunked_outputs(
    resolved: Sequence[presets.Preset], source: MediaInfo | None = None
) -> tuple[tuple[int, ...], dict[int, str]]:
    """The indexes of the outputs made in chunks, and why each other one is made whole (the
    source's facts, when given, decide a remux: a copy of the streams is never cut)."""
    chunked: list[int] = []
    whole: dict[int, str] = {}
    for i, preset in enumerate(resolved):
        if not chunks.chunkable(preset):
            if preset.kind == "hls":
                whole[i] = "HLS: its renditions' segments come from one whole encode"
            elif preset.kind == "video":
                whole[i] = "its encoder or frame rate is not one that chunks"
            else:
                whole[i] = f"{preset.kind} outputs are never cut"
        elif preset.quality is not None or preset.measure_quality:
            whole[i] = "its VMAF is searched or measured on the whole file"
        elif source is not None and conform.judge(preset, source).conforms:
            whole[i] = "the source is remuxed (its streams copied), not encoded"
        else:
            chunked.append(i)
    return tuple(chunked), whole


class PartObjects:
    """A worker's reads and writes of chunked jobs' objects (through ``workdir``)."""

    def __init__(self, store: ObjectStore, workdir: Path) -> None:
        self.store = store
        self.workdir = workdir

    def missing(self, job: Job, plan: Plan, names: set[str] | None = None) -> list[Part]:
        """The parts whose markers are not stored (among ``names``, the keys under the parts'
        prefix, listed here if not given), as the parts to send again."""
        prefix = keys.parts_prefix(job.job_id)
        if names is None:
            names = set(self.store.keys(job.output_bucket, prefix))
        return [p for p in plan.parts() if f"{prefix}{p.name}.json" not in names]

    def plan(self, job: Job) -> Plan | None:
        data = self.get(job, PLAN)
        if data is None:
            return None
        try:
            plan = msgspec.json.decode(data, type=Plan)
        except msgspec.MsgspecError as exc:
            raise PlanError(f"job {job.job_id}: its stored plan is unreadable: {exc}") from exc
        fault = plan_fault(plan, len(job.outputs))
        if fault:
            raise PlanError(f"job {job.job_id}: its stored plan is not a split's: {fault}")
        return plan

    def marker(self, job: Job, name: str) -> Marker | None:
        data = self.get(job, f"{name}.json")
        return None if data is None else msgspec.json.decode(data, type=Marker)

    def mark(self, job: Job, name: str, marker: Marker, joblog: JobLog) -> None:
        self.store_log(job, name, joblog)
        self.put(job, f"{name}.json", msgspec.json.encode(marker))

    def stored(self, job: Job, name: str) -> bool:
        return self.exists(job, f"{keys.parts_prefix(job.job_id)}{name}.json")

    def exists(self, job: Job, key: str) -> bool:
        try:
            self.store.size(job.output_bucket, key)
        except StorageError:
            return False
        return True

    def get(self, job: Job, name: str) -> bytes | None:
        tmp = self.tmp(job, name)
        try:
            self.store.download(job.output_bucket, f"{keys.parts_prefix(job.job_id)}{name}", tmp)
            return tmp.read_bytes()
        except ObjectMissing:
            return None
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, job: Job, name: str, data: bytes) -> None:
        tmp = self.tmp(job, name)
        tmp.write_bytes(data)
        self.put_file(tmp, job, name)

    def put_file(self, path: Path, job: Job, name: str) -> None:
        self.store.put(path, job.output_bucket, f"{keys.parts_prefix(job.job_id)}{name}")

    def tmp(self, job: Job, name: str) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir / f"{job.task}-{uuid.uuid4().hex[:8]}-{name}"

    def store_log(self, job: Job, name: str, joblog: JobLog) -> None:
        joblog.store(self.store, job.output_bucket, job.job_id, self.workdir, part=name)

    def part_logs(self, job: Job) -> str:
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
            data = self.get(job, f"{name}.log")
            if data:
                texts.append(data.decode(errors="replace"))
        return "".join(texts)


def unchunked_reason(source: MediaInfo, chunk_seconds: float) -> str:
    """Why ``chunks.chunk_plan`` made no chunks of ``source``, for the file's log."""
    if interlace.interlaced(source):
        return f"interlaced, for chunks of {chunk_seconds:g}s"
    if not source.duration:
        return "its duration is unknown (a raw stream?): nothing to cut it by"
    if source.duration < 2 * chunk_seconds:
        return f"too short for chunks of {chunk_seconds:g}s"
    return f"too few keyframes to cut into chunks of {chunk_seconds:g}s"


def plan_fault(plan: Plan, outputs: int) -> str | None:
    """Why ``plan`` is not one a split of a job of ``outputs`` outputs makes (damaged or
    forged in the store), or None: every part indexes its chunks and outputs by it."""
    if not 2 <= plan.count <= MAX_CHUNKS:
        return f"{plan.count} chunks"
    if any(not 0 <= i < outputs for i in plan.chunked) or len(set(plan.chunked)) != len(
        plan.chunked
    ):
        return f"chunked outputs {list(plan.chunked)} of {outputs}"
    duration = plan.source.duration
    for n, c in enumerate(plan.chunks):
        end = plan.chunks[n + 1].start if n + 1 < plan.count else None
        if c.index != n or not math.isfinite(c.start) or c.start < 0 or c.end != end:
            return f"chunk {n} is not the one after the chunk before it"
        if duration is not None and c.start >= duration:
            return f"chunk {n} starts at {c.start:g}s, past the source's {duration:g}s"
    return None


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
