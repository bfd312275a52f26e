"""The flow of one file, start to finish; read this module to know what happens to a drop.

    DISCOVERED → UPLOADING → UPLOADED → SUBMITTED → TRANSCODING → COMPLETED
      → DOWNLOADING → DONE → CLEANED      (any step → FAILED with a reason, or SKIPPED)

Every step is recorded in the journal before the next one starts (``journal.TRANSITIONS``
lists every move it accepts); ``_step`` reads a file's state and does the one thing that
state calls for, so a restart simply calls ``_step`` again for every unfinished file.
Steps run on a small thread pool, retries after a backoff (``scheduler``); the
``listener`` thread hears the jobs' notices (SUBMITTED → TRANSCODING → COMPLETED, or
FAILED) and submits lost jobs again. What this module asks and leaves to others:
whether a file's work is done already (``identity``), the job it sends (``jobs``), how
outputs are written into OUT (``outbox``), what becomes of the source (``sources``). The
backend is only used through its interface, so this code is the same for local and aws.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from . import delivery, filelog, identity, jobs, keys, library, outbox, outcomes, sources
from .backends import Backend
from .engines import Engine, open_engine
from .errors import (
    AutotranscodeError,
    JournalError,
    MediaError,
    ObjectMissing,
    OutputError,
)
from .hours import Gate, Hours
from .journal import STAGES, FileRecord, FileState, Journal
from .listener import Listener
from .media import presets
from .media.probe import MediaInfo, NotRegularFile, not_regular, probe
from .outcomes import Outcome
from .procs import yield_cpu_to_ffmpeg
from .progress import ByteProgress, Subscriber
from .scheduler import Scheduler
from .settings import Settings
from .stages import Stage
from .story import OutputRecord

log = logging.getLogger(__name__)

#: Retryable failures are retried with exponential backoff up to this delay, until stopped.
MAX_BACKOFF_SECONDS = 30.0
#: A file that changes while it is taken is taken again, at most this many times in all.
TAKE_ATTEMPTS = 5
#: Pause before taking again a file that changed meanwhile (times the attempt number).
TAKE_PAUSE_SECONDS = 0.5


class Pipeline:
    """Takes files from ``add`` (and what a previous run left) through the steps to OUT.

    What it makes and how comes from ``settings`` (its presets, name, transfers,
    --on-success, resubmit-after), whose defaults are the only ones; ``engine`` defaults
    to the one the settings name, ``hooks`` to none.
    """

    def __init__(
        self,
        backend: Backend,
        journal: Journal,
        out_dir: Path,
        settings: Settings,
        *,
        engine: Engine | None = None,
        hooks: Subscriber | None = None,
    ) -> None:
        self.backend = backend
        self.engine = engine or open_engine(settings, backend)
        self.journal = journal
        self._logs = filelog.FileLogs(journal.path.parent, journal)  # the state dir's
        self.out_dir = out_dir
        #: The presets the ids (the settings' and the journal's records) are looked up in.
        self.catalog = settings.catalog
        self.presets = [self.catalog.get(p) for p in settings.preset]
        self._preset_ids = tuple(p.id for p in self.presets)
        #: What each preset makes: part of a file's identity, so changed settings redo it.
        self._digests = tuple(presets.digest(p) for p in self.presets)
        self.pipeline_id = settings.name
        #: ``--chunk-seconds`` and ``--chunk-scenes``, as ``jobs.job_for`` takes them.
        self.chunking = (settings.chunk_seconds, settings.chunk_scenes)
        self.on_success = settings.on_success
        self.sidecars = () if settings.in_place else settings.sidecars  # in place: the stem stays
        self._gate = Gate(Hours.parse(settings.hours) if settings.hours else None)
        self.library = library.Library(journal.path.parent, settings) if settings.in_place else None
        self.hooks = hooks or Subscriber()
        self._resume = True
        self._executor = ThreadPoolExecutor(
            settings.transfers,
            thread_name_prefix="autotranscode-transfer",
            initializer=yield_cpu_to_ffmpeg,
        )
        self._stop = threading.Event()
        self._scheduler = Scheduler(self._run_step, self._executor, self._stop)
        self._listener = Listener(
            self, backend, self.engine, journal, self.hooks, self._stop, settings.resubmit_after
        )
        #: add() and the end of a take, one at a time: a file that changes just as its take
        #: ends is then either taken again by it or recorded anew by add(), never neither.
        self._intake = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, resume: bool = True) -> None:
        """Resume what a previous run left unfinished, then start listening for notifications."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {self.out_dir}: {exc}") from exc
        self._resume = resume
        if self.library is not None:
            self.library.start(self.schedule, sweep_daily=resume)
        self.pick_up()
        self._listener.start(resume)

    def stop(self) -> None:
        """Stop taking work; a transfer under way finishes, the rest resumes on the next start."""
        self._stop.set()
        self._scheduler.stop()
        self._listener.join()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self.library is not None:
            self.library.close()

    def add(
        self, path: Path, retry_failed: bool = False, force: bool = False, under: Path | None = None
    ) -> str:
        """Take a (complete) file into the pipeline and return its id.

        A record is one version of one file (its path, and the stat of what was taken)
        bound for one destination (OUT and what each preset makes, its digest). Seen again
        unchanged, a file done before is not done again; a changed file is a new version,
        and once its snapshot is taken its content decides (``_reuse``): the same content
        done before under another name gets a copy of that output, without a transcode.
        A failed one is tried again only when ``retry_failed`` (the user asked); ``force``
        does a finished one again whatever was done before. ``under`` (DROP, or a folder given
        to ``transcode``): a tree kept, its outputs go where it is under ``under``, in OUT.
        """
        path = Path(os.path.abspath(path))
        out_dir = self.out_dir.resolve() / keys.subfolder(under or path.parent, path)
        if self.library is not None:  # in place: beside it, and never what it made itself
            out_dir = path.parent
            if done := self.library.done(self.journal, path, self._digests, self._preset_ids):
                return done
        try:
            st = path.stat()
            kind = not_regular(path)
            if kind is not None:  # never opened: a FIFO would block this thread for good
                raise NotRegularFile(path, kind)
        except OSError as exc:
            return self._unreadable(path, out_dir, exc, retry_failed)
        with self._intake:
            latest = self.journal.latest(path, out_dir, self._preset_ids, self._digests)
            known = latest and self._known(latest, st, retry_failed, force)
            if known:
                return known
            if not (latest or force):
                old = identity.done_by_an_older_release(
                    self.journal, path, out_dir, self._preset_ids, st
                )
                if old:
                    log.info("%s: done before; skipped", old.name)
                    return old.id
            fid = identity.version_id(path, st, self._destination(out_dir), force)
            record, created = self.journal.record(
                fid,
                path,
                out_dir,
                self._preset_ids,
                st.st_size,
                st.st_mtime_ns,
                ctime_ns=st.st_ctime_ns,
                dev=st.st_dev,
                ino=st.st_ino,
                digests=self._digests,
                forced=force,
            )
            if not created:  # a version recorded before, though not the latest: as it is
                return self._known(record, st, retry_failed, force=False) or fid
        self._schedule_new(fid, path)
        return fid

    def _known(
        self, record: FileRecord, st: os.stat_result, retry_failed: bool, force: bool
    ) -> str | None:
        """What ``add`` does with a file it has a record of; None: record a new version."""
        if not record.state.finished:
            # Not taken yet: its take takes the file as it is now. Taken: this very version
            # is on its way, or the file changed since and the new version is new.
            if record.content_hash is not None and not record.same_version(st):
                return None
            if self._scheduler.active(record.id):
                return record.id
            self._schedule_new(record.id, record.path)  # left by an earlier process
            return record.id
        if force or not record.same_version(st):
            return None
        if record.state == FileState.FAILED:
            if retry_failed:
                self.journal.reset(record.id, record.path, st.st_size, st.st_mtime_ns)
                self._schedule_new(record.id, record.path)
            return record.id
        log.info("%s: done before; skipped", record.name)
        return record.id

    def _schedule_new(self, fid: str, path: Path) -> None:
        self.hooks.on_state(path=path, state=FileState.DISCOVERED)
        self.schedule(fid)

    def _destination(self, out_dir: Path) -> str:
        return identity.destination(out_dir, self._preset_ids, self._digests)

    def _delivered_before(self, record: FileRecord, source_hash: str) -> bool:
        """Whether OUT already holds this file's outputs, made by these presets from this
        content (a journal lost or damaged since): then the file is done, not redone into
        ``name (1).mp4``. Asked once the snapshot is taken, when its content hash is known.
        """
        outputs = identity.in_out(self.catalog, record, source_hash)
        if outputs is None:
            return False
        try:  # delivered: the source goes where --on-success says, as after a transcode
            outputs = self._handle_source(replace(record, outputs=outputs)).outputs
        except OSError as exc:
            log.warning("%s: --on-success %s failed: %s", record.name, self.on_success, exc)
        shown = ", ".join(Path(p).name for p in outputs.values())
        log.info(
            "%s: already in OUT as %s (same content and preset); not redone", record.name, shown
        )
        self._delete_objects(record)  # the snapshot just taken
        outcomes.delivered(self.journal, record, list(outputs.items()))
        self.advance(record, FileState.CLEANED, outputs=outputs, detail=f"already in OUT: {shown}")
        self._finished(record.id)
        return True

    def retry(self, record: FileRecord) -> str:
        """Start a failed file over, to the destination it had; a stuck one (in flight, no
        ``run`` working on it) from its upload, under the job id it has, so a job that was
        not lost after all is only done twice, never delivered twice; a partly done one
        anew for the outputs it lacks (``outcomes.redo``). The id of the file retried."""
        record, state = outcomes.restart(self.journal, self.catalog, record)
        self.hooks.on_state(path=record.path, state=state)
        self.schedule(record.id)
        return record.id

    def _unreadable(self, path: Path, out_dir: Path, exc: OSError, retry_failed: bool) -> str:
        """Record a file we cannot read as FAILED, so ``status`` and ``retry`` know of it."""
        dest = (self._destination(out_dir), self._preset_ids, self._digests)
        record, reason = outcomes.unreadable(self.journal, path, out_dir, dest, exc, retry_failed)
        if reason:
            self.fail(record, reason)
        return record.id

    def skip(self, path: Path, reason: str) -> str:
        """Record a path in DROP that is not taken as SKIPPED (``sources.skip``)."""
        return sources.skip(self.journal, self.out_dir, self._preset_ids, path, reason)

    def in_flight(self) -> set[str]:
        """The files this pipeline is working on (scheduled, waiting or in a step)."""
        return self._scheduler.in_flight()

    def pick_up(self) -> None:
        """Schedule unfinished files nobody is working on: left by a crash, or reset by retry."""
        for done in filter(None, map(self.journal.get, self._scheduler.in_flight())):
            if done.state.finished:  # by another process: cancelled from the dashboard
                self.hooks.on_state(path=done.path, state=done.state, detail=done.reason)
                self._finished(done.id)
        if not self._resume:
            return
        for record in self.journal.unfinished():
            if self._scheduler.active(record.id):
                continue
            log.info("resuming %s at %s", record.name, record.state.lower())
            self.schedule(record.id)

    def wait(self, fids: Iterable[str], timeout: float | None = None) -> bool:
        """Block until the given files are finished (CLEANED or FAILED), or ``wake()``."""
        return self._scheduler.wait(fids, timeout)

    def wake(self) -> None:
        """End every ``wait()`` now (a stop was asked), finished or not; safe from a signal
        handler."""
        self._scheduler.wake()

    def outcome(self, fid: str) -> Outcome:
        return outcomes.outcome(self.journal, fid)

    # -- the steps -------------------------------------------------------------------------------

    def schedule(self, fid: str, delay: float = 0.0) -> None:
        """Run the file's next step now, or (a retry) once ``delay`` has passed."""
        self._scheduler.schedule(fid, delay)

    def _run_step(self, fid: str, delay: float) -> None:
        """``delay``: the backoff that preceded this try (the next one doubles it)."""
        if self._stop.is_set():
            return
        try:
            record = self.journal.get(fid)
        except JournalError as exc:
            log.error("journal unavailable (%s); retrying in %.0fs", exc, MAX_BACKOFF_SECONDS)
            self.schedule(fid, MAX_BACKOFF_SECONDS)
            return
        if record is None:
            return
        try:
            self._step(record)
        except ObjectMissing as exc:
            if record.state in (FileState.COMPLETED, FileState.DOWNLOADING):
                # Its output expired or was deleted: only the job can make it again.
                self._listener.resubmit(record, f"its output is gone ({exc})")
            else:
                self.fail(record, str(exc))
        except AutotranscodeError as exc:
            if not exc.retryable:
                self.fail(record, str(exc))
                return
            # Not the file's fault, and it passes (endpoint back, disk freed): keep its state.
            backoff = min(max(delay * 2, 1.0), MAX_BACKOFF_SECONDS)
            level = logging.ERROR if isinstance(exc, OutputError) else logging.WARNING
            log.log(level, "%s: %s; retrying in %.0fs", record.name, exc, backoff)
            self.schedule(fid, backoff)
        except Exception as exc:
            log.exception("%s: unexpected error", record.name)
            self.fail(record, f"internal error: {exc!r}")

    def _step(self, record: FileRecord) -> None:
        state = record.state
        if held := self._gate.hold(record.id, state):  # outside --hours: neither taken nor sent
            if held[1]:
                self.advance(record, state, detail=held[1], expect=state)
            return self.schedule(record.id, held[0])
        if state in (FileState.DISCOVERED, FileState.UPLOADING):
            self._upload(record)
        elif state == FileState.UPLOADED:
            self._submit(record)
        elif state in (FileState.COMPLETED, FileState.DOWNLOADING):
            self._download(record)
        elif state == FileState.DONE:
            self._clean(record)
        elif state.finished:
            self._finished(record.id)
        # SUBMITTED and TRANSCODING wait for the listener.

    def _upload(self, record: FileRecord) -> None:
        """Take the snapshot (once), then transcode it, unless its content was done before."""
        source = None
        if record.content_hash is None:
            taken = self._take(record)
            if taken is None:
                return  # stopping (the take starts over at the next start), or cancelled
            record, source = taken
        if not record.forced and (
            self._reuse(record)
            or (record.content_hash and self._delivered_before(record, record.content_hash))
        ):
            return
        self.advance(record, FileState.UPLOADED)
        self._submit(replace(record, state=FileState.UPLOADED), source)

    def _take(self, record: FileRecord) -> tuple[FileRecord, MediaInfo] | None:
        """Store a snapshot of the file and hash it; if the file moved meanwhile, again.

        What is transcoded is the content at this moment: a copy (local) or an upload
        (aws), never a link to a file that can still change. The stat before and after
        (size, mtime, ctime, inode) tells whether the file held still while it was read;
        the probe before it is then a probe of the snapshot too.
        """
        path = record.path
        key = record.input_key or keys.input_key(record.id, path)
        job_id = record.job_id or uuid.uuid4().hex
        # The output names are known now: recorded with the key, before anything is stored.
        names = outbox.output_names(self.catalog, job_id, path, record.presets)
        taking = {"input_key": key, "job_id": job_id, "outputs": names, "durable": True}
        if not self.advance(record, FileState.UPLOADING, expect=record.state, **taking):  # type: ignore[arg-type]
            current = self.journal.get(record.id)
            if current is None or current.state.finished:
                return None  # cancelled meanwhile
            self.advance(record, FileState.UPLOADING, **taking)  # type: ignore[arg-type]
        store = self.backend.store
        for attempt in range(1, TAKE_ATTEMPTS + 1):
            before = identity.source_stat(path)
            source = probe(path)
            jobs.check_presets(self.catalog, record, source)
            progress = ByteProgress(self.hooks, path, "uploading", before.st_size)
            digest = store.take(path, store.input_bucket, key, progress)
            with self._intake:
                if identity.held_still(path, before):
                    self.journal.taken(record.id, before, digest)
                    self.journal.story.describe(record.id, outcomes.source_facts(source))
                    taken = replace(
                        record,
                        state=FileState.UPLOADING,
                        input_key=key,
                        job_id=job_id,
                        outputs=names,
                        content_hash=digest,
                        size=before.st_size,
                        mtime_ns=before.st_mtime_ns,
                        ctime_ns=before.st_ctime_ns,
                        dev=before.st_dev,
                        ino=before.st_ino,
                    )
                    return taken, source
            log.info("%s changed while it was taken; taking it again", record.name)
            if self._stop.wait(TAKE_PAUSE_SECONDS * attempt):
                return None
        raise MediaError(
            f"the file kept changing while it was taken ({TAKE_ATTEMPTS} tries); "
            "it is taken again once it is written in full"
        )

    def _reuse(self, record: FileRecord) -> bool:
        """Done without a transcode of its own if its content was done (or is being done)
        before for this destination: True when finished so, or waiting for that file.

        The same file renamed (same device and inode), or the same name written again
        with what it held, already has its output: nothing is made. Another file with the
        same content (a copy under another name) gets its own output, a copy of that one.
        A file waits only for one that does not wait itself, the oldest first.
        """
        others, same = identity.same_content(self.journal, record)
        for other in reversed(others):
            if identity.reusable(other):
                if same:
                    self._known_content(record, other)
                    return True
                if self._copy_outputs(record, other):
                    return True
        first = self._scheduler.park(record.id, [o.id for o in others])
        if first is not None:
            name = next(o.name for o in others if o.id == first)
            log.info("%s: same content as %s; waiting for it", record.name, name)
            return True
        return False

    def _known_content(self, record: FileRecord, other: FileRecord) -> None:
        """A rename (or rewrite with the same bytes) of a file done before: its output is it."""
        if other.path != record.path:
            log.warning(
                "%s: renamed from %s, which was done before (%s); not transcoded again",
                record.name,
                other.name,
                ", ".join(Path(p).name for p in other.outputs.values()),
            )
        else:
            log.info("%s: content unchanged since it was done; skipped", record.name)
        done = replace(record, state=FileState.DONE, outputs=other.outputs, same_as=other.name)
        self.advance(record, FileState.DONE, outputs=other.outputs, same_as=other.name)
        self._clean(done)

    def _copy_outputs(self, record: FileRecord, other: FileRecord) -> bool:
        """Done as a copy of ``other``'s outputs (same content, same presets); False (nothing
        placed) if one of them cannot be read: then it is transcoded."""
        delivery.make_folder(self.out_dir.resolve(), record)
        placed = identity.copy_outputs(self.journal, record, other)
        if placed is None:
            return False
        log.warning(
            "%s: same content as %s; its output copied to %s (not transcoded again)",
            record.name,
            other.name,
            ", ".join(Path(p).name for p in placed.values()),
        )
        done = replace(record, state=FileState.DONE, outputs=placed, same_as=other.name)
        self.advance(record, FileState.DONE, outputs=placed, same_as=other.name, durable=True)
        self._clean(done)
        return True

    def _submit(self, record: FileRecord, source: MediaInfo | None = None) -> None:
        """``source``: the upload step's probe of the same file (None on a resume; see
        ``jobs.job_for``)."""
        assert record.job_id
        # The keys the journal holds for the outputs, in preset order: the job asks for them.
        names = outbox.output_names(self.catalog, record.job_id, record.path, record.presets)
        job = jobs.job_for(
            record, names, self.pipeline_id, self.backend, source, self.catalog, *self.chunking
        )
        if record.outputs != names:
            # Known before the job exists: its notifications can come before submit() returns.
            self.journal.advance(
                record.id, FileState.UPLOADED, outputs=names, expect=FileState.UPLOADED
            )
        self.engine.submit(job, source or probe(record.path))
        # The listener may have moved it on meanwhile (TRANSCODING, COMPLETED…): never back.
        self.advance(record, FileState.SUBMITTED, expect=FileState.UPLOADED)

    def _download(self, record: FileRecord) -> None:
        """Outputs go to a hidden temp name, then are moved into place: never half, never over."""
        delivery.make_folder(self.out_dir.resolve(), record)
        if record.state == FileState.DOWNLOADING:  # an earlier attempt may have left parts
            outbox.remove_parts(record.out_dir, record.job_id)
        placed: dict[str, str] = {}
        store = self.backend.store
        for key, target in record.outputs.items():
            final = Path(target)
            if final.is_absolute() and delivery.already_placed(store, key, final):
                placed[key] = target  # a crash came between the move and the journal
                continue
            final = outbox.free_name(record.out_dir / final.name)
            placed[key] = str(final)
            outputs = {**record.outputs, **placed}
            self.advance(record, FileState.DOWNLOADING, outputs=outputs, durable=True)
            tmp = outbox.temp_path(record.out_dir, final.name, record.job_id)
            try:
                placed[key] = str(delivery.fetch(store, self.hooks, record, key, tmp, final))
            except OSError as exc:
                outbox.remove(tmp)
                reason = exc.strerror or exc
                raise OutputError(f"cannot write into {record.out_dir}: {reason}") from exc
            except BaseException:
                outbox.remove(tmp)  # whatever went wrong, nothing partial stays in OUT
                raise
        self.advance(record, FileState.DONE, outputs=placed, durable=True)
        self._clean(replace(record, state=FileState.DONE, outputs=placed))

    def _clean(self, record: FileRecord) -> None:
        self._delete_objects(record)
        failed = outcomes.failed(self.journal, record)
        warning = delivery.sidecar_warning(record, self.sidecars)  # before the source goes
        if warning:
            self._warn(record, warning)
        if not failed:
            record = self._handle_source(record)
        elif self.on_success != "keep":  # its source is needed to make them
            self._warn(record, f"{len(failed)} output(s) not made; the source is kept")
        outcomes.delivered(self.journal, record, outcomes.placed(self.catalog, record))
        detail, outputs = outcomes.done_detail(record), record.outputs  # in place: swapped
        self.advance(record, FileState.CLEANED, detail=detail, outputs=outputs, failed=failed)
        self._finished(record.id)

    def _handle_source(self, record: FileRecord) -> FileRecord:
        if self.library is not None:
            return self.library.in_place(record, self.journal)
        warning = sources.after_delivery(record, self.on_success)
        if warning:
            self._warn(record, warning)
        return record

    def _warn(self, record: FileRecord, warning: str) -> None:
        log.warning("%s: delivered, but %s", record.name, warning)
        self.journal.warn(record.id, warning)

    def _delete_objects(self, record: FileRecord) -> None:
        store = self.backend.store
        self._logs.keep(record, store)  # the worker's log goes with the objects
        store.delete_prefix(store.input_bucket, f"{keys.INPUT_PREFIX}{record.id}/")
        if record.job_id:
            store.delete_prefix(store.output_bucket, f"{keys.OUTPUT_PREFIX}{record.job_id}/")

    def fail(self, record: FileRecord, reason: str, expect: FileState | None = None) -> bool:
        """FAILED (or SKIPPED, superseded) with ``reason``; its objects in the store go.
        ``expect``: unless it left that state meanwhile (a user cancelled it first); whether
        this failed it."""
        try:
            self._delete_objects(record)
        except Exception as exc:  # failing must not fail: the file would never finish
            log.warning("%s: objects left behind: %s", record.name, exc)
        ended = self.journal.fail(record.id, reason, expect)
        if ended == FileState.FAILED:
            outcomes.failed_all(self.journal, record, reason)
        if ended is not None:
            self.hooks.on_state(path=record.path, state=FileState.FAILED, detail=reason)
        self._finished(record.id)
        return ended is not None

    # -- helpers ---------------------------------------------------------------------------------

    def advance(
        self,
        record: FileRecord,
        state: FileState,
        *,
        detail: str | None = None,
        job_id: str | None = None,
        input_key: str | None = None,
        outputs: dict[str, str] | None = None,
        expect: FileState | None = None,
        durable: bool = False,
        same_as: str | None = None,
        failed: list[OutputRecord] | None = None,
    ) -> bool:
        """Record the move in the journal and tell the hooks, unless ``expect`` says another
        thread (or a user's cancel) moved the file on meanwhile; whether it moved.
        ``failed``: outputs of a delivered file that could not be made (it is partly done)."""
        if not self.journal.advance(
            record.id,
            state,
            job_id=job_id,
            input_key=input_key,
            outputs=outputs,
            detail=detail,
            expect=expect,
            durable=durable,
            same_as=same_as,
        ):
            return False
        self.hooks.on_state(
            path=record.path,
            state=state,
            detail=detail,
            size=record.size,
            outputs=tuple((outputs or record.outputs).values()),
            stage=Stage.PARTLY_DONE if failed else STAGES[state],
            failed_outputs=tuple((o.preset, o.reason or "failed") for o in failed or ()),
            job_id=job_id or record.job_id,
        )
        return True

    def _finished(self, fid: str) -> None:
        self._logs.write(fid)
        # The files of the same content parked behind it: their output is a copy of this one.
        for other in self._scheduler.finished(fid):
            self.schedule(other)
