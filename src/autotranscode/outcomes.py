"""How each output of a file ended, and so how the file did: done, partly done, failed.

An output that cannot be made (an audio preset on a file without audio, an encoder
error) does not cost the file its other outputs: they are delivered, the failed one is
recorded with its reason, and the file ends "partly done". The listener records what a
job's answer says of each output (made, with the worker's facts about it; or not, and
why); the pipeline records where each made output was placed in OUT, and asks which
failed: a partly done file keeps its source (it is still needed) and counts as not done
for ``transcode``'s exit status. All of it goes to the journal's ``story``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import identity, keys, outbox, sources
from .errors import AutotranscodeError, ConfigError
from .journal import FileRecord, FileState, Journal
from .media import presets
from .media.probe import MediaInfo, NotRegularFile, probe
from .messages import Notification
from .stages import STAGES, OutputStatus, Stage
from .story import OutputRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What became of one input, for ``transcode``'s summary."""

    path: Path
    state: FileState
    detail: str
    #: The word for it: done, partly done, failed, skipped (or the stage it stopped in).
    stage: Stage


def reported(journal: Journal, record: FileRecord, note: Notification) -> None:
    """What a job's answer (COMPLETED or ERROR) says of each output: made, with its size,
    duration and picture size; or not, with the reason. ``record`` lists every output it
    asked for, in preset order, as it does while its job runs."""
    preset_of = dict(zip(record.outputs, record.presets, strict=False))
    for out in note.outputs:
        preset = preset_of.get(out.key)
        if preset is None:
            continue
        if out.status == "Complete":
            told = OutputRecord(
                preset,
                OutputStatus.DONE,
                size=out.size,
                duration=out.duration,
                width=out.width,
                height=out.height,
                vmaf=out.vmaf,
                crf=out.crf,
                action=out.action,
                note=out.note,
            )
        else:
            told = OutputRecord(
                preset, OutputStatus.FAILED, reason=out.status_detail or note.reason
            )
        journal.story.record_output(record.id, told)


def failed_all(journal: Journal, record: FileRecord, reason: str, overrule: bool = False) -> None:
    """The file failed: each output not failed already for a reason of its own, for this.
    ``overrule``: every output for this (a cancel that a worker's late answer came after)."""
    own = {o.preset for o in journal.story.outputs_of(record.id) if o.status is OutputStatus.FAILED}
    if overrule:
        own = set()
    for preset in record.presets:
        if preset not in own:
            journal.story.record_output(
                record.id, OutputRecord(preset, OutputStatus.FAILED, reason=reason)
            )


def delivered(journal: Journal, record: FileRecord, placed: Iterable[tuple[str, str]]) -> None:
    """Each output placed in OUT (preset, path): where, how big, and what it is (the job's
    word when its answer gave it, else a probe of the file placed)."""
    told = {o.preset: o for o in journal.story.outputs_of(record.id)}
    for preset, path in placed:
        where = Path(os.path.abspath(path))
        before = told.get(preset)
        facts: tuple[float | None, int | None, int | None]
        if before is not None and before.status is OutputStatus.DONE and before.duration:
            facts = before.duration, before.width, before.height
        else:
            facts = _probed(where)
        duration, width, height = facts
        journal.story.record_output(
            record.id,
            OutputRecord(
                preset,
                OutputStatus.DONE,
                path=str(where),
                size=_size(where),
                duration=duration,
                width=width,
                height=height,
                vmaf=before.vmaf if before is not None else None,
                crf=before.crf if before is not None else None,
                action=before.action if before is not None else None,
                note=before.note if before is not None else None,
            ),
        )


def placed(catalog: presets.Catalog, record: FileRecord) -> list[tuple[str, str]]:
    """Each output of a delivered file (its preset, its path in OUT): by its key, or (keyed
    otherwise: a copy's, or what OUT held already) by the order of the presets."""
    try:
        named = outbox.output_names(catalog, record.job_id or "-", record.path, record.presets)
    except ConfigError:  # a custom preset no longer configured: its outputs are in OUT
        named = {}
    by_key = dict(zip(named, record.presets, strict=False))
    if all(key in by_key for key in record.outputs):
        return [(by_key[key], path) for key, path in record.outputs.items()]
    return list(zip(record.presets, record.outputs.values(), strict=False))


def failed(journal: Journal, record: FileRecord) -> list[OutputRecord]:
    """The outputs of the file that could not be made: a file delivered with some is
    partly done."""
    return [
        o
        for o in journal.story.outputs_of(record.id)
        if o.status is OutputStatus.FAILED and o.preset in record.presets
    ]


def stage_of(journal: Journal, record: FileRecord) -> Stage:
    """The file's stage; a delivered one is "partly done" when an output failed."""
    stage = STAGES[record.state]
    if stage is Stage.DONE and failed(journal, record):
        return Stage.PARTLY_DONE
    return stage


def outcome(journal: Journal, fid: str) -> Outcome:
    record = journal.get(fid)
    assert record is not None
    stage = stage_of(journal, record)
    detail = record.reason or done_detail(record)
    if stage is Stage.PARTLY_DONE:
        detail += "; " + not_made(failed(journal, record))
    if record.warning:
        detail += f" (warning: {record.warning})"
    return Outcome(record.path, record.state, detail, stage)


def partly_done(journal: Journal, paths: set[str] | None) -> list[FileRecord]:
    """The files whose newest record (per path and OUT) is partly done: of ``paths``, or
    (None) all; what ``retry`` does again."""
    newest: dict[tuple[str, str], FileRecord] = {}
    for record in journal.recent(1_000_000):  # newest first
        newest.setdefault((str(record.path), str(record.out_dir)), record)
    return [
        r
        for r in newest.values()
        if (paths is None or str(r.path) in paths) and stage_of(journal, r) is Stage.PARTLY_DONE
    ]


def redo(journal: Journal, catalog: presets.Catalog, record: FileRecord) -> FileRecord:
    """A partly done file again, for the outputs it lacks: a new record of the file for
    OUT and just those presets (as they are defined now), forced (done whatever was done
    before), recorded DISCOVERED for the pipeline to take.

    Not the same record started over: a delivered file's record stays as it ended
    (CLEANED is final, its outputs in OUT are its own), and a job for every preset would
    make a second copy of what OUT holds already.
    """
    missing = tuple(o.preset for o in failed(journal, record))
    digests = tuple(presets.digest(catalog.get(p)) for p in missing)
    dest = identity.destination(record.out_dir, missing, digests)
    fid = keys.file_id(f"{record.path}\0redo:{uuid.uuid4().hex}", dest)
    try:
        st = record.path.stat()
        version = {"ctime_ns": st.st_ctime_ns, "dev": st.st_dev, "ino": st.st_ino}
        size, mtime_ns = st.st_size, st.st_mtime_ns
    except OSError:  # gone or unreadable: its take says so, as a retry's does
        version, size, mtime_ns = {}, 0, 0
    again, _ = journal.record(
        fid,
        record.path,
        record.out_dir,
        missing,
        size,
        mtime_ns,
        digests=digests,
        forced=True,
        **version,
    )
    log.info("%s: trying again the outputs it lacks: %s", record.name, ", ".join(missing))
    return again


def source_facts(source: MediaInfo) -> dict[str, object]:
    """The source's probe facts that ``status`` shows (``story.describe``)."""
    return {
        "duration": source.duration,
        "format": source.format_name,
        "video_codec": source.video_codec,
        "audio_codec": source.audio_codec,
        "width": source.width,
        "height": source.height,
    }


def done_detail(record: FileRecord) -> str:
    """What a finished file's line says: its outputs, and where they came from if copied."""
    names = ", ".join(Path(p).name for p in record.outputs.values())
    return f"{names} (same content as {record.same_as})" if record.same_as else names


def not_made(outputs: Iterable[OutputRecord]) -> str:
    """The failed outputs of a partly done file, each with its reason."""
    return "not made: " + "; ".join(f"{o.preset} ({o.reason or 'failed'})" for o in outputs)


def _size(path: Path) -> int | None:
    """Bytes of an output in OUT (a folder: all its files)."""
    try:
        if path.is_dir():
            return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return path.stat().st_size
    except OSError:
        return None


def _probed(path: Path) -> tuple[float | None, int | None, int | None]:
    """Duration and picture size of a file output; unknown for a folder (HLS, thumbnails)."""
    if path.is_dir():
        return None, None, None
    try:
        info: MediaInfo = probe(path)
    except (AutotranscodeError, OSError) as exc:  # the facts must not cost the delivery
        log.debug("%s: not probed: %s", path.name, exc)
        return None, None, None
    return info.duration, info.width, info.height


def skipped(
    journal: Journal, path: Path, out_dir: Path, preset_ids: tuple[str, ...], reason: str
) -> tuple[str, bool]:
    """Record ``path`` as SKIPPED for ``reason``, once (a file looked at and not taken: a
    FIFO, a file converted in place before): its id, and whether it is new."""
    destination = f"{out_dir}\0{','.join(preset_ids)}"
    fid = keys.file_id(f"skipped:{path}\0{reason}", destination)
    _, created = journal.record(fid, path, out_dir, preset_ids, 0, 0)
    if created:
        journal.skip(fid, reason)
    return fid, created


def restart(
    journal: Journal, catalog: presets.Catalog, record: FileRecord
) -> tuple[FileRecord, FileState]:
    """``retry``'s restart of a file, and the state it restarts in: a partly done one anew
    for the outputs it lacks, a failed one (or one with no job yet) from the start, a
    stuck one from its upload under the job id it has."""
    if record.state == FileState.CLEANED:
        return redo(journal, catalog, record), FileState.DISCOVERED
    if record.state == FileState.FAILED or record.job_id is None:
        sources.reset_failed(journal, record)
        return record, FileState.DISCOVERED
    journal.advance(record.id, FileState.UPLOADING, detail="retry", expect=record.state)
    return record, FileState.UPLOADING


def unreadable(
    journal: Journal,
    path: Path,
    out_dir: Path,
    dest: tuple[str, tuple[str, ...], tuple[str, ...]],
    exc: OSError,
    retry_failed: bool,
) -> tuple[FileRecord, str | None]:
    """The record of a file we cannot read (``dest``: its destination, preset ids and
    digests), and the reason to fail it with: None when it failed so before (unless
    ``retry_failed``), so ``status`` and ``retry`` know of it once."""
    destination, preset_ids, digests = dest
    fid = keys.file_id(f"unreadable:{path}", destination)
    record, created = journal.record(fid, path, out_dir, preset_ids, 0, 0, digests=digests)
    if not (created or record.state != FileState.FAILED or retry_failed):
        return record, None
    if isinstance(exc, NotRegularFile):
        return record, f"{exc.strerror}; only regular files are transcoded"
    return record, f"cannot read the file: {exc.strerror or exc}"
