"""The journal on a real SQLite file: every intent, and what a restart sees."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from autotranscode import db as db_module
from autotranscode.errors import AutotranscodeError
from autotranscode.journal import TRANSITIONS, FileRecord, FileState, Journal, TransitionError
from autotranscode.stages import HAPPY_PATH

PRESETS = ("web-720p", "audio-aac")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.db"


@pytest.fixture
def journal(db: Path) -> Iterator[Journal]:
    j = Journal(db)
    try:
        yield j
    finally:
        j.close()


def _record(journal: Journal, fid: str = "f1", name: str = "clip.mp4") -> FileRecord:
    record, created = journal.record(
        fid, Path("/drop") / name, Path("/done"), PRESETS, 1234, 1_700_000_000_000_000_000
    )
    assert created
    return record


FLOW = HAPPY_PATH


def _walk(journal: Journal, fid: str, state: FileState, **facts: str) -> None:
    """Move a DISCOVERED file to ``state`` the way the flow does (``facts`` on the first
    step); FAILED and SKIPPED by failing, skipping it."""
    if state == FileState.FAILED:
        journal.fail(fid, "bad")
    elif state == FileState.SKIPPED:
        journal.skip(fid, "a FIFO")
    elif state != FileState.DISCOVERED:
        for step in FLOW[: FLOW.index(state) + 1]:
            journal.advance(fid, step, **facts)  # type: ignore[arg-type]
            facts = {}


def _events(db: Path, fid: str) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT state, detail FROM events WHERE file_id = ? ORDER BY seq", (fid,)
        ).fetchall()
    return [(str(s), d) for s, d in rows]


def test_creates_the_state_dir_and_database(db: Path, journal: Journal) -> None:
    assert db.is_file()
    assert journal.path == db


def test_unusable_location_is_an_autotranscode_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(AutotranscodeError, match="state-dir"):
        Journal(blocker / "journal.db")


def test_record_new_then_existing(journal: Journal) -> None:
    before = time.time()
    record = _record(journal)
    assert record.id == "f1"
    assert record.path == Path("/drop/clip.mp4")
    assert record.name == "clip.mp4"
    assert record.out_dir == Path("/done")
    assert record.presets == PRESETS
    assert (record.size, record.mtime_ns) == (1234, 1_700_000_000_000_000_000)
    assert record.state == FileState.DISCOVERED
    assert record.job_id is None and record.input_key is None and record.reason is None
    assert record.outputs == {}
    assert record.updated_at >= before

    journal.advance("f1", FileState.UPLOADING)
    again, created = journal.record(
        "f1", Path("/elsewhere/other.mp4"), Path("/x"), ("web-1080p",), 1, 2
    )
    assert not created
    assert again.path == Path("/drop/clip.mp4")  # the first record stands
    assert again.state == FileState.UPLOADING


def test_advance_records_facts_and_keeps_earlier_ones(db: Path, journal: Journal) -> None:
    _record(journal)
    journal.advance("f1", FileState.UPLOADING, job_id="job-1", input_key="inputs/f1/clip.mp4")
    journal.advance("f1", FileState.UPLOADED)
    journal.advance("f1", FileState.SUBMITTED, detail="sent")
    outputs = {"outputs/job-1/clip.web-720p.mp4": "clip.web-720p.mp4", "outputs/job-1/é.m4a": "é"}
    journal.advance("f1", FileState.COMPLETED, outputs=outputs)
    record = journal.get("f1")
    assert record is not None
    assert record.state == FileState.COMPLETED
    assert record.job_id == "job-1"
    assert record.input_key == "inputs/f1/clip.mp4"
    assert record.outputs == outputs
    assert _events(db, "f1") == [
        ("DISCOVERED", None),
        ("UPLOADING", None),
        ("UPLOADED", None),
        ("SUBMITTED", "sent"),
        ("COMPLETED", None),
    ]


def test_a_failed_file_moves_on_only_by_a_reset_which_clears_the_reason(journal: Journal) -> None:
    _record(journal)
    journal.advance("f1", FileState.UPLOADING, job_id="job-1")
    journal.fail("f1", "ffmpeg failed: moov atom not found")
    record = journal.get("f1")
    assert record is not None
    assert record.state == FileState.FAILED
    assert record.state.finished
    assert record.reason == "ffmpeg failed: moov atom not found"
    assert record.job_id == "job-1"
    with pytest.raises(TransitionError, match="FAILED -> UPLOADING"):
        journal.advance("f1", FileState.UPLOADING)
    journal.reset("f1", Path("/drop/clip.mp4"), 1, 1)
    record = journal.get("f1")
    assert record is not None and record.reason is None
    assert record.state == FileState.DISCOVERED


def test_reset_starts_over_as_a_new_job(db: Path, journal: Journal) -> None:
    _record(journal)
    _walk(journal, "f1", FileState.COMPLETED, job_id="job-1", input_key="inputs/f1/a")
    journal.advance("f1", FileState.DOWNLOADING, outputs={"k": "v"})
    journal.fail("f1", "broken")
    journal.reset("f1", Path("/drop/moved.mp4"), 99, 7)
    record = journal.get("f1")
    assert record is not None
    assert record.state == FileState.DISCOVERED
    assert (record.path, record.size, record.mtime_ns) == (Path("/drop/moved.mp4"), 99, 7)
    assert record.job_id is None
    assert record.input_key is None
    assert record.outputs == {}
    assert record.reason is None
    assert _events(db, "f1")[-1] == ("DISCOVERED", "retry")
    # The old job id is free again for the retry's new job.
    journal.advance("f1", FileState.UPLOADING, job_id="job-2")
    assert journal.by_job("job-1") is None
    found = journal.by_job("job-2")
    assert found is not None and found.id == "f1"


def test_get_and_by_job_unknown(journal: Journal) -> None:
    assert journal.get("nope") is None
    assert journal.by_job("nope") is None


def test_by_job(journal: Journal) -> None:
    _record(journal, "f1", "a.mp4")
    _record(journal, "f2", "b.mp4")
    journal.advance("f1", FileState.UPLOADING, job_id="job-a")
    journal.advance("f2", FileState.UPLOADING, job_id="job-b")
    a, b = journal.by_job("job-a"), journal.by_job("job-b")
    assert a is not None and a.id == "f1"
    assert b is not None and b.id == "f2"


def test_a_job_id_belongs_to_one_file(journal: Journal) -> None:
    _record(journal, "f1", "a.mp4")
    _record(journal, "f2", "b.mp4")
    journal.advance("f1", FileState.UPLOADING, job_id="job-a")
    with pytest.raises((sqlite3.Error, AutotranscodeError)):
        journal.advance("f2", FileState.UPLOADING, job_id="job-a")
    owner = journal.by_job("job-a")
    assert owner is not None and owner.id == "f1"
    other = journal.get("f2")
    assert other is not None and other.job_id is None


def test_unfinished_recent_and_counts(journal: Journal) -> None:
    states = [
        FileState.DISCOVERED,
        FileState.UPLOADED,
        FileState.TRANSCODING,
        FileState.DONE,
        FileState.CLEANED,
        FileState.FAILED,
        FileState.CLEANED,
    ]
    for i, state in enumerate(states):
        _record(journal, f"f{i}", f"clip{i}.mp4")
        _walk(journal, f"f{i}", state)
        time.sleep(0.002)  # distinct timestamps for the ordering checks

    unfinished = journal.unfinished()
    assert [r.id for r in unfinished] == ["f0", "f1", "f2", "f3"]  # in the order they came
    assert all(not r.state.finished for r in unfinished)

    recent = journal.recent()
    assert [r.id for r in recent] == [f"f{i}" for i in reversed(range(len(states)))]
    assert [r.id for r in journal.recent(limit=2)] == ["f6", "f5"]
    assert [r.id for r in journal.recent(state=FileState.CLEANED)] == ["f6", "f4"]
    assert journal.recent(state=FileState.COMPLETED) == []

    assert journal.counts() == {
        FileState.DISCOVERED: 1,
        FileState.UPLOADED: 1,
        FileState.TRANSCODING: 1,
        FileState.DONE: 1,
        FileState.CLEANED: 2,
        FileState.FAILED: 1,
    }


def test_recent_orders_by_last_change(journal: Journal) -> None:
    _record(journal, "old", "old.mp4")
    time.sleep(0.002)
    _record(journal, "new", "new.mp4")
    time.sleep(0.002)
    journal.advance("old", FileState.UPLOADING)
    assert [r.id for r in journal.recent()] == ["old", "new"]


def test_empty_journal(journal: Journal) -> None:
    assert journal.unfinished() == []
    assert journal.recent() == []
    assert journal.counts() == {}


def test_a_second_journal_on_the_same_file_sees_everything(db: Path) -> None:
    """A restart (or another process) reads what the first one committed."""
    first = Journal(db)
    _record(first, "f1", "a.mp4")
    _record(first, "f2", "b.mp4")
    _walk(first, "f1", FileState.SUBMITTED, job_id="job-1", input_key="inputs/f1/a.mp4")
    first.fail("f2", "no video stream")

    second = Journal(db)  # while the first is still open, as a second process would
    try:
        record = second.get("f1")
        assert record is not None
        assert (record.state, record.job_id) == (FileState.SUBMITTED, "job-1")
        failed = second.get("f2")
        assert failed is not None and failed.reason == "no video stream"
        assert [r.id for r in second.unfinished()] == ["f1"]
        # ...and the first sees the second's changes.
        second.advance("f1", FileState.TRANSCODING)
        seen = first.get("f1")
        assert seen is not None and seen.state == FileState.TRANSCODING
    finally:
        first.close()
        second.close()

    restarted = Journal(db)  # after both "processes" are gone
    try:
        record = restarted.get("f1")
        assert record is not None
        assert record.state == FileState.TRANSCODING
        assert record.job_id == "job-1"
        assert record.input_key == "inputs/f1/a.mp4"
        assert restarted.counts() == {FileState.TRANSCODING: 1, FileState.FAILED: 1}
        _, created = restarted.record("f1", Path("/drop/a.mp4"), Path("/done"), PRESETS, 1, 1)
        assert not created
    finally:
        restarted.close()


def _in_threads(journal: Journal, work: Callable[[int], None], n: int = 4) -> list[BaseException]:
    """Run ``work(0..n-1)`` on n threads; their errors."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_a_process_threads_take_turns_at_its_one_connection(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads share one connection, each transaction (with its durable PRAGMAs), statement
    and query whole in turn: never at SQLite's lock, where a writer sleeps 1, 2, 5… ms
    between tries. With SQLite's wait set to nothing, meeting there would fail at once."""
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_SECONDS", 0.0)
    journal = Journal(db)

    def work(n: int) -> None:
        for i in range(50):
            fid = f"t{n}-{i}"
            _record(journal, fid, f"{n}-{i}.mp4")
            journal.advance(fid, FileState.UPLOADING, durable=True)
            journal.db.execute("UPDATE files SET reason = NULL WHERE id = ?", (fid,))
            journal.advance(fid, FileState.UPLOADED)
            assert journal.get(fid).state == FileState.UPLOADED  # type: ignore[union-attr]

    try:
        assert _in_threads(journal, work) == []
        assert journal.counts() == {FileState.UPLOADED: 200}
    finally:
        journal.close()


def test_only_durable_transitions_wait_for_the_disk(journal: Journal) -> None:
    """Steps that act outside the journal on a state (upload, write into OUT, delete the
    source) commit it with an fsync (synchronous=FULL); the rest skip it (NORMAL)."""
    _record(journal)
    statements: list[str] = []
    conn = journal.db._connect()
    conn.set_trace_callback(statements.append)
    try:
        journal.advance("f1", FileState.UPLOADING)
        assert not [s for s in statements if "synchronous" in s]
        statements.clear()
        journal.advance("f1", FileState.DONE, durable=True)  # a copy of another's outputs
        assert statements.index("PRAGMA synchronous=FULL") < statements.index("COMMIT")
        assert statements[-1] == "PRAGMA synchronous=NORMAL"
    finally:
        conn.set_trace_callback(None)
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL again
    assert journal.get("f1").state == FileState.DONE  # type: ignore[union-attr]


def _version(journal: Journal, fid: str, size: int) -> FileRecord:
    """Another version (content) of /drop/clip.mp4, bound for the same place."""
    record, created = journal.record(
        fid, Path("/drop/clip.mp4"), Path("/done"), PRESETS, size, 1_700_000_000_000_000_000 + size
    )
    assert created
    return record


def test_a_later_version_of_a_path_supersedes_its_failed_ones(db: Path, journal: Journal) -> None:
    """Pieces of a file taken while still being appended fail; once the whole file is
    recorded they are SKIPPED, so neither status nor ``retry --all-failed`` sees them."""
    _version(journal, "piece1", 100)
    journal.fail("piece1", "not a readable media file")
    _version(journal, "piece2", 200)  # the piece is in flight while a newer one comes...
    _version(journal, "whole", 300)
    assert journal.fail("piece2", "the file changed before upload") == FileState.SKIPPED

    for fid in ("piece1", "piece2"):
        record = journal.get(fid)
        assert record is not None and record.state == FileState.SKIPPED, record
        assert record.reason and record.reason.startswith(
            "superseded by a later version of the file (this version: "
        ), record.reason
    assert journal.recent(10, FileState.FAILED) == []
    assert [r.id for r in journal.unfinished()] == ["whole"]
    assert _events(db, "piece1")[-1] == ("SKIPPED", "superseded by a later version of the file")
    # The latest version failing is a failure: it is what the path holds.
    assert journal.fail("whole", "not a readable media file") == FileState.FAILED
    # Counted once, as the path's current failure; the pieces stay as its history.
    assert journal.counts() == {FileState.FAILED: 1}
    assert [r.id for r in journal.current()] == ["whole"]
    versions = journal.versions_of(Path("/drop/clip.mp4"))
    assert [r.id for r in versions] == ["piece1", "piece2", "whole"]


def test_an_earlier_done_version_still_counts_and_a_later_failure_too(journal: Journal) -> None:
    """A rewritten file's first version delivered its own output: it stays done, beside
    the later version's failure."""
    _version(journal, "first", 100)
    for state in (FileState.UPLOADING, FileState.UPLOADED, FileState.SUBMITTED):
        journal.advance("first", state)
    for state in (FileState.COMPLETED, FileState.DONE, FileState.CLEANED):
        journal.advance("first", state)
    _version(journal, "second", 200)
    journal.fail("second", "not a readable media file")

    assert journal.counts() == {FileState.CLEANED: 1, FileState.FAILED: 1}
    assert [r.id for r in journal.current()] == ["second", "first"]


def test_a_failure_elsewhere_is_not_superseded(journal: Journal) -> None:
    """Only the same path to the same folder and presets: another file, or the same file for
    other presets, keeps its failure."""
    _record(journal, "other", "other.mp4")
    journal.fail("other", "broken")
    journal.record("presets", Path("/drop/clip.mp4"), Path("/done"), ("web-1080p",), 1, 1)
    journal.fail("presets", "broken")
    _version(journal, "clip", 300)
    assert sorted(r.id for r in journal.recent(10, FileState.FAILED)) == ["other", "presets"]


def test_skip_and_warn(journal: Journal) -> None:
    _record(journal, "fifo", "live.mp4")
    journal.skip("fifo", "a FIFO; only regular files are taken")
    _record(journal, "done", "clip.mp4")
    journal.advance("done", FileState.CLEANED)
    journal.warn("done", "the source could not be moved")

    fifo, done = journal.get("fifo"), journal.get("done")
    assert fifo is not None and fifo.state == FileState.SKIPPED and fifo.state.finished
    assert fifo.reason == "a FIFO; only regular files are taken"
    assert done is not None and done.state == FileState.CLEANED
    assert done.warning == "the source could not be moved"
    assert journal.unfinished() == []


def test_an_older_journal_gets_the_added_columns(db: Path) -> None:
    """A state dir made before a column was added keeps working: it is added on open."""
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE files (id TEXT PRIMARY KEY, path TEXT NOT NULL, out_dir TEXT NOT NULL,"
            " presets TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
            " state TEXT NOT NULL, job_id TEXT UNIQUE, input_key TEXT,"
            " outputs TEXT NOT NULL DEFAULT '{}', reason TEXT, created_at REAL NOT NULL,"
            " updated_at REAL NOT NULL)"
        )
        conn.execute(
            "INSERT INTO files (id, path, out_dir, presets, size, mtime_ns, state, created_at,"
            " updated_at) VALUES ('old', '/drop/a.mp4', '/done', 'web-720p', 1, 1, 'CLEANED',"
            " 1, 1)"
        )
    journal = Journal(db)
    try:
        old = journal.get("old")
        assert old is not None and old.state == FileState.CLEANED and old.warning is None
        journal.warn("old", "noted")
        assert (journal.get("old") or old).warning == "noted"
    finally:
        journal.close()


def test_an_older_journal_s_outputs_get_the_quality_columns(db: Path) -> None:
    """Outputs recorded before VMAF and CRF were stay, with neither; new ones carry both."""
    Journal(db).close()
    with sqlite3.connect(db) as conn:
        conn.executescript(
            """
            DROP TABLE outputs;
            CREATE TABLE outputs (file_id TEXT NOT NULL, preset TEXT NOT NULL,
                status TEXT NOT NULL, path TEXT, reason TEXT, size INTEGER, duration REAL,
                width INTEGER, height INTEGER, at REAL NOT NULL, PRIMARY KEY (file_id, preset));
            INSERT INTO outputs VALUES ('old', 'web-720p', 'done', '/o/a.mp4', NULL, 5, 2.0,
                320, 240, 1.0);
            """
        )
    conn.close()
    journal = Journal(db)
    try:
        [old] = journal.story.outputs_of("old")
        assert old.size == 5 and old.vmaf is None and old.crf is None
        journal.story.record_output("new", replace(old, vmaf=93.2, crf=24.75))
        [new] = journal.story.outputs_of("new")
        assert (new.vmaf, new.crf) == (93.2, 24.75)
    finally:
        journal.close()


def test_supersede_failed_cleans_up_a_journal_from_before(db: Path, journal: Journal) -> None:
    """Failed pieces recorded before superseding existed (made FAILED again here by hand,
    as b4b9859 left them) are moved to SKIPPED; the latest failure of a path stays."""
    for fid, size in (("piece1", 100), ("piece2", 200), ("whole", 300)):
        _version(journal, fid, size)
    _record(journal, "alone", "alone.mp4")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE files SET state = 'FAILED', reason = 'broken'")

    assert journal.supersede_failed() == 2
    assert sorted(r.id for r in journal.recent(10, FileState.FAILED)) == ["alone", "whole"]
    assert journal.supersede_failed() == 0


def test_an_older_journal_gets_the_new_columns_and_keeps_its_files(db: Path) -> None:
    """A journal made before content hashes existed opens, migrated, with its history."""
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.executescript(
            """
            CREATE TABLE files (
                id TEXT PRIMARY KEY, path TEXT NOT NULL, out_dir TEXT NOT NULL,
                presets TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                state TEXT NOT NULL, job_id TEXT UNIQUE, input_key TEXT,
                outputs TEXT NOT NULL DEFAULT '{}', reason TEXT,
                created_at REAL NOT NULL, updated_at REAL NOT NULL
            );
            INSERT INTO files VALUES ('old', '/drop/a.mp4', '/done', 'web-720p', 5, 6,
                'CLEANED', 'j1', 'inputs/old/a.mp4', '{}', NULL, 1.0, 1.0);
            """
        )
    conn.close()
    for _ in range(2):  # a second open finds them there
        journal = Journal(db)
        try:
            old = journal.get("old")
            assert old is not None and old.state == FileState.CLEANED
            assert (old.content_hash, old.dev, old.ino, old.ctime_ns) == (None, 0, 0, 0)
            assert old.digests == () and old.same_as is None and not old.forced
        finally:
            journal.close()


def test_a_take_records_the_version_and_content_that_identify_a_file(
    journal: Journal, tmp_path: Path
) -> None:
    source = tmp_path / "a.mp4"
    source.write_bytes(b"content")
    st = source.stat()
    first, _ = journal.record(
        "f1", source, Path("/done"), PRESETS, 1, 1, digests=("d1", "d2"), dev=st.st_dev
    )
    assert not first.same_version(st)
    journal.taken("f1", st, "h" * 64)
    taken = journal.get("f1")
    assert taken is not None and taken.same_version(st) and taken.content_hash == "h" * 64
    assert journal.latest(source, Path("/done"), PRESETS, ("d1", "d2")) == taken
    assert journal.latest(source, Path("/done"), PRESETS, ("d1", "changed")) is None

    journal.record("f2", tmp_path / "b.mp4", Path("/done"), PRESETS, 1, 1, digests=("d1", "d2"))
    journal.taken("f2", st, "h" * 64)
    taken_copy = journal.get("f2")
    assert taken_copy is not None
    taken_first = journal.get("f1")
    assert taken_first is not None
    assert [[r.id for r in rs] for rs in journal.same_content(taken_copy)] == [["f1"], []]
    assert [[r.id for r in rs] for rs in journal.same_content(taken_first)] == [[], ["f2"]]
    journal.fail("f1", "broken")
    assert journal.same_content(taken_copy) == ([], [])
    journal.advance("f2", FileState.DONE, same_as="a.mp4")
    done = journal.get("f2")
    assert done is not None and done.same_as == "a.mp4"


@pytest.mark.parametrize(
    ("start", "to"), [(a, b) for a, targets in TRANSITIONS.items() for b in sorted(targets)]
)
def test_every_transition_the_table_allows_is_made(
    db: Path, journal: Journal, start: FileState, to: FileState
) -> None:
    """Each allowed move, by the method that makes it: fail (FAILED, or SKIPPED when a later
    version exists), skip (SKIPPED), reset (back to DISCOVERED), advance (the rest)."""
    _record(journal)
    _walk(journal, "f1", start, job_id="job-1", input_key="inputs/f1/clip.mp4")
    if to == FileState.FAILED:
        assert journal.fail("f1", "broken") == FileState.FAILED
    elif to == FileState.SKIPPED and start == FileState.FAILED:
        journal.record("f2", Path("/drop/clip.mp4"), Path("/done"), PRESETS, 1, 1)
        assert journal.get("f1").state == FileState.SKIPPED  # type: ignore[union-attr]
    elif to == FileState.SKIPPED:
        journal.skip("f1", "a FIFO")
    elif to == FileState.DISCOVERED:
        journal.reset("f1", Path("/drop/clip.mp4"), 1, 1)
    else:
        assert journal.advance("f1", to)
    assert journal.get("f1").state == to  # type: ignore[union-attr]
    assert _events(db, "f1")[-1][0] == to


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (FileState.DISCOVERED, FileState.SUBMITTED),
        (FileState.DISCOVERED, FileState.COMPLETED),
        (FileState.UPLOADED, FileState.DONE),
        (FileState.SUBMITTED, FileState.DOWNLOADING),
        (FileState.TRANSCODING, FileState.TRANSCODING),
        (FileState.DONE, FileState.COMPLETED),
        (FileState.CLEANED, FileState.UPLOADING),
        (FileState.CLEANED, FileState.DISCOVERED),
        (FileState.FAILED, FileState.CLEANED),
        (FileState.SKIPPED, FileState.UPLOADING),
    ],
)
def test_a_move_the_table_does_not_allow_raises_and_changes_nothing(
    db: Path, journal: Journal, start: FileState, to: FileState
) -> None:
    _record(journal)
    _walk(journal, "f1", start)
    before = _events(db, "f1")
    with pytest.raises(TransitionError, match=f"{start} -> {to}"):
        if to == FileState.DISCOVERED:
            journal.reset("f1", Path("/drop/clip.mp4"), 1, 1)
        else:
            journal.advance("f1", to)
    assert journal.get("f1").state == start  # type: ignore[union-attr]
    assert _events(db, "f1") == before


def test_finished_files_stay_finished(journal: Journal) -> None:
    """CLEANED and SKIPPED go nowhere: failing or skipping one again is a bug too."""
    _record(journal, "done", "a.mp4")
    _walk(journal, "done", FileState.CLEANED)
    _record(journal, "fifo", "b.mp4")
    journal.skip("fifo", "a FIFO")
    for fid in ("done", "fifo"):
        with pytest.raises(TransitionError):
            journal.fail(fid, "broken")
        with pytest.raises(TransitionError):
            journal.skip(fid, "a FIFO")


def test_expect_is_a_race_not_an_error(journal: Journal) -> None:
    """A file another thread moved on meanwhile is left alone (False), even where the move
    from its state now would be illegal: ``expect`` guards first."""
    _record(journal)
    _walk(journal, "f1", FileState.COMPLETED)
    assert not journal.advance("f1", FileState.SUBMITTED, expect=FileState.UPLOADED)
    assert journal.get("f1").state == FileState.COMPLETED  # type: ignore[union-attr]
    assert not journal.advance("nope", FileState.UPLOADING)


def test_every_state_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(FileState)
    assert all(not TRANSITIONS[s] for s in (FileState.CLEANED, FileState.SKIPPED))
