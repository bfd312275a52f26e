"""A file's log: what happened to it and why, in lines a person reads, kept in the state dir.

Two parts, written by the two sides of the contract. The worker keeps a log per job
(``JobLog``): the job received, each attempt, each output's exact ffmpeg command line and
the bounded tail of what ffmpeg said (a successful run's too), the checks, what was stored
or why it failed. When the job ends it stores that log as an object next to the outputs
(``keys.log_key``), and its notification names it; an attempt that fails and will be
retried stores it too, and the next attempt (any worker) goes on from it. The client
(``FileLogs``) keeps that object before the job's objects are deleted, and when the file
is finished writes ``<state dir>/logs/<file id>.log``: the worker's part (if there is one:
MediaConvert and older workers store none), then its own lines, each state the file
entered and when.

Logs are not pruned: one small file per file taken, until a user deletes them.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from . import keys
from .errors import AutotranscodeError
from .journal import FileRecord, Journal
from .media.probe import MediaInfo
from .media.runner import FfmpegRun
from .stages import FileState
from .text import shown

log = logging.getLogger(__name__)

#: The folder of the state dir that holds the files' logs.
LOGS_FOLDER = "logs"
#: A job's log is cut to this size (its beginning and its end kept), whatever its jobs did.
MAX_JOB_LOG_BYTES = 1024 * 1024
#: What each ffmpeg run's stderr lines are indented by, under its command line.
_INDENT = "    "

#: How the client tells each state a file entered.
_SAID: dict[FileState, str] = {
    FileState.DISCOVERED: "seen; queued",
    FileState.UPLOADING: "taking it (a snapshot into the store)",
    FileState.UPLOADED: "taken and stored",
    FileState.SUBMITTED: "job submitted; waiting for a worker",
    FileState.TRANSCODING: "a worker is transcoding it",
    FileState.COMPLETED: "transcoded; downloading the outputs",
    FileState.DOWNLOADING: "downloading",
    FileState.DONE: "delivered into the output folder",
    FileState.CLEANED: "done",
    FileState.FAILED: "failed",
    FileState.SKIPPED: "skipped",
}


def log_path(state_dir: Path, fid: str) -> Path:
    """Where the log of the file with id ``fid`` is (or will be, once it is finished)."""
    return state_dir / LOGS_FOLDER / f"{fid}.log"


def stamp(at: float) -> str:
    """A log line's time: UTC, to the millisecond, as ISO 8601."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bounded(text: str, max_bytes: int) -> str:
    """``text`` if it fits in ``max_bytes`` (UTF-8), else its beginning and end around a marker."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    half = max_bytes // 2
    head = data[:half].decode(errors="ignore").rpartition("\n")[0]
    tail = data[-half:].decode(errors="ignore").partition("\n")[2]
    return f"{head}\n[… {len(data) - half * 2} bytes of this log left out …]\n{tail}"


class Store(Protocol):
    """What logs need of an object store (``backends.ObjectStore`` is one)."""

    output_bucket: str

    def put(self, path: Path, bucket: str, key: str) -> None: ...

    def download(self, bucket: str, key: str, dest: Path) -> None: ...


class JobLog:
    """One job's log as its worker tells it: timestamped lines, ffmpeg's words indented."""

    def __init__(
        self, worker: str, clock: Callable[[], float] = time.time, part: str | None = None
    ) -> None:
        """``part``: the name of the part of a chunked job this log tells (kept apart)."""
        self.worker = worker
        self.part = part
        self._clock = clock
        self._lines: list[str] = []
        #: What earlier attempts of the job (other workers, maybe) told, before this one.
        self._earlier = ""

    def say(self, text: str) -> None:
        """One line of the worker's own, made printable."""
        self._lines.append(f"{stamp(self._clock())} {shown(self.worker)}: {shown(text)}")

    def ran(self, run: FfmpegRun) -> None:
        """An ffmpeg run (``transcoder.transcode``'s ``ran``): its command, exit, and stderr."""
        self.say(f"ffmpeg exited with status {run.returncode}: {run.command}")
        if run.stderr:
            self._lines.extend(_INDENT + line for line in run.stderr.splitlines())
        else:
            self._lines.append(f"{_INDENT}(ffmpeg said nothing)")

    def checked(self, key: str, info: MediaInfo) -> None:
        """An output passed its check: what it is."""
        video = f"{info.video_codec} {info.width}x{info.height}" if info.video_codec else "no video"
        audio = info.audio_codec or "no audio"
        length = f"{info.duration:.2f}s" if info.duration is not None else "unknown duration"
        self.say(f"{key}: checked ({video}, {audio}, {length})")

    def text(self) -> str:
        """The whole log, earlier attempts first, cut to MAX_JOB_LOG_BYTES."""
        return bounded(self._earlier + "\n".join(self._lines) + "\n", MAX_JOB_LOG_BYTES)

    def resume(self, store: Store, bucket: str, job_id: str, workdir: Path) -> None:
        """Go on from the log an earlier attempt stored when it failed (none: nothing to say;
        an attempt that crashed stored none)."""
        tmp = workdir / f"{job_id}-{uuid.uuid4().hex[:8]}.earlier.log"
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            store.download(bucket, keys.log_key(job_id, self.part), tmp)
            self._earlier = _read_bounded(tmp)
        except (AutotranscodeError, OSError) as exc:
            log.debug("%s: job %s: no earlier log (%s)", self.worker, job_id, exc)
        finally:
            tmp.unlink(missing_ok=True)
        if self._earlier and not self._earlier.endswith("\n"):
            self._earlier += "\n"

    def include(self, text: str) -> None:
        """Tell ``text`` (the logs of a chunked job's parts) before this log's own lines."""
        if text and not text.endswith("\n"):
            text += "\n"
        self._earlier += text

    def store(
        self,
        store: Store,
        bucket: str,
        job_id: str,
        workdir: Path,
        *,
        part: str | None = None,
        whole: bool = False,
    ) -> str | None:
        """Store the log beside the job's outputs (``keys.log_key``), through a file in
        ``workdir``; its key, or None if it could not be stored: a job does not fail for
        its log's sake. A part's log goes among the parts (``part``, else this log's own),
        unless ``whole``: the file's log, which the client keeps."""
        key = keys.log_key(job_id, None if whole else (part or self.part))
        tmp = workdir / f"{job_id}-{uuid.uuid4().hex[:8]}.log"
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            tmp.write_text(self.text(), encoding="utf-8")
            store.put(tmp, bucket, key)  # takes the file
        except (AutotranscodeError, OSError) as exc:
            log.warning("%s: job %s: its log was not stored (%s)", self.worker, job_id, exc)
            tmp.unlink(missing_ok=True)
            return None
        return key


class FileLogs:
    """The files' logs in a state dir: the client's side (see the module docstring)."""

    def __init__(self, state_dir: Path, journal: Journal) -> None:
        self.folder = state_dir / LOGS_FOLDER
        self.journal = journal

    def _worker_part(self, fid: str) -> Path:
        return self.folder / f".{fid}.worker"

    def keep(self, record: FileRecord, store: Store) -> None:
        """Keep the worker's log of the file's job, before the job's objects are deleted;
        none kept (missing, unreadable) is not an error."""
        if not record.job_id or record.state in (FileState.DISCOVERED, FileState.UPLOADING):
            return  # no job was sent: no worker wrote a log
        part = self._worker_part(record.id)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            part.unlink(missing_ok=True)
            store.download(store.output_bucket, keys.log_key(record.job_id), part)
        except (AutotranscodeError, OSError) as exc:
            part.unlink(missing_ok=True)
            log.debug("%s: no worker log kept: %s", record.name, exc)

    def write(self, fid: str) -> Path | None:
        """Write the finished file's log: the worker's part kept, then the client's lines.

        A log written before (a file retried, or finished and scheduled again) keeps its
        worker's part unless a newer one was kept; the client's lines are the journal's
        whole history of the file. Never raises: a file is not failed by its log.
        """
        path = self.folder / f"{fid}.log"
        part = self._worker_part(fid)
        try:
            record = self.journal.get(fid)
            if record is None:
                return None
            self.folder.mkdir(parents=True, exist_ok=True)
            if part.exists():
                worker = _read_bounded(part)
            elif path.exists():
                worker = _worker_section(_read_bounded(path))
            else:
                worker = ""
            tmp = self.folder / f".{fid}.log.tmp"
            with tmp.open("w", encoding="utf-8") as fh:
                if worker:
                    fh.write(worker if worker.endswith("\n") else worker + "\n")
                fh.writelines(line + "\n" for line in self.own_lines(record))
            os.replace(tmp, path)
            part.unlink(missing_ok=True)
        except (AutotranscodeError, OSError) as exc:
            log.warning("%s: its log could not be written: %s", fid, exc)
            return None
        return path

    def own_lines(self, record: FileRecord) -> list[str]:
        """The client's lines for a file: what it is, then each state it entered and when."""
        events = self.journal.events_of(record.id)
        start = events[0][0] if events else time.time()
        presets = ", ".join(record.presets)
        lines = [
            f"{stamp(start)} client: {shown(str(record.path))} -> {shown(str(record.out_dir))}"
            f" (presets {presets}; file id {record.id}; job {record.job_id or 'none yet'})"
        ]
        previous: tuple[FileState, str | None] | None = None
        for at, state, detail in events:
            if (state, detail) == previous:
                continue  # a step recorded once per output (downloading): told once
            previous = (state, detail)
            said = _SAID.get(state, state.lower())
            if state == FileState.UPLOADED and record.content_hash:
                said += f" ({record.size} bytes, BLAKE3 {record.content_hash[:16]}…)"
            line = f"{stamp(at)} client: [+{at - start:.1f}s] {said}"
            lines.append(f"{line}: {shown(detail)}" if detail else line)
        return lines


#: The first of the client's lines: the worker's part of a log ends before it.
_CLIENT_LINE = re.compile(r"^\S+ client: ", re.MULTILINE)


def _worker_section(log_text: str) -> str:
    found = _CLIENT_LINE.search(log_text)
    return log_text[: found.start()] if found else ""


def _read_bounded(path: Path) -> str:
    """A kept worker's log, its end if it is larger than any log a worker writes."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - MAX_JOB_LOG_BYTES))
        return fh.read().decode(errors="replace")
