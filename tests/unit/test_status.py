"""The status model: what ``status``, ``status --json`` and the dashboard are built from.

A journal is driven through its real transitions (no rows written by hand), then read
back as a ``status.Report`` and decoded again from its JSON against the model's types.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from autotranscode import status
from autotranscode.journal import FileState, Journal
from autotranscode.media.presets import Catalog
from autotranscode.progress import JournalProgress
from autotranscode.stages import HAPPY_PATH, OutputStatus, Stage
from autotranscode.story import OutputRecord

OUT = Path("/out")
TO_CLEANED = HAPPY_PATH


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


def add(
    journal: Journal,
    fid: str,
    name: str,
    size: int = 1000,
    presets: tuple[str, ...] = ("web-720p",),
) -> None:
    journal.record(fid, Path("/drop") / name, OUT, presets, size, time.time_ns())


def walk(journal: Journal, fid: str, until: FileState) -> None:
    for state in TO_CLEANED:
        journal.advance(fid, state)
        if state is until:
            return


def decoded(report: status.Report) -> status.Report:
    """Through JSON and back, typed: what a program reading ``--json`` gets."""
    return msgspec.json.decode(status.to_json(report), type=status.Report)


def test_an_empty_journal_has_a_versioned_empty_report(journal: Journal, tmp_path: Path) -> None:
    report = decoded(status.report(journal, tmp_path))

    assert report.schema_version == status.SCHEMA_VERSION == 1
    assert report.totals.files == 0 and report.totals.by_stage == {}
    assert report.in_flight == [] and report.recent == []
    assert report.state_dir == str(tmp_path.absolute())


def test_done_partly_done_and_failed_files_in_one_vocabulary(
    journal: Journal, tmp_path: Path
) -> None:
    add(journal, "a", "a.mov", size=1000)
    walk(journal, "a", FileState.CLEANED)
    journal.story.record_output(
        "a",
        OutputRecord(
            "web-720p", OutputStatus.DONE, "/out/a.mp4", size=400, duration=2.0, vmaf=93.4, crf=25.5
        ),
    )
    add(journal, "b", "b.mov", size=3000, presets=("audio-aac", "web-720p"))
    walk(journal, "b", FileState.CLEANED)
    journal.story.record_output(
        "b", OutputRecord("audio-aac", OutputStatus.FAILED, reason="the file has no audio")
    )
    journal.story.record_output(
        "b", OutputRecord("web-720p", OutputStatus.DONE, "/out/b.mp4", size=1000, width=320)
    )
    add(journal, "c", "c.mov")
    journal.fail("c", "not a readable media file")
    add(journal, "d", "d.mov")
    walk(journal, "d", FileState.SUBMITTED)

    report = decoded(status.report(journal, tmp_path))

    assert report.totals.by_stage == {
        "waiting for a worker": 1,
        "done": 1,
        "partly done": 1,
        "failed": 1,
    }
    assert (report.totals.in_flight, report.totals.queued) == (1, 0)
    assert (report.totals.bytes_in, report.totals.bytes_out) == (4000, 1400)
    assert report.totals.bytes_saved == 2600
    by_name = {f.name: f for f in report.recent}
    assert [by_name[n].outcome for n in ("a.mov", "b.mov", "c.mov")] == [
        Stage.DONE,
        Stage.PARTLY_DONE,
        Stage.FAILED,
    ]
    partly = by_name["b.mov"]
    assert [(o.preset, o.status, o.reason) for o in partly.outputs] == [
        ("audio-aac", "failed", "the file has no audio"),
        ("web-720p", "done", None),
    ]
    assert (by_name["a.mov"].outputs[0].vmaf, by_name["a.mov"].outputs[0].crf) == (93.4, 25.5)
    assert partly.outputs[1].vmaf is None and partly.outputs[1].crf is None
    assert by_name["c.mov"].reason == "not a readable media file"
    assert by_name["c.mov"].outputs[0].status == "failed"
    [waiting] = report.in_flight
    assert waiting.name == "d.mov" and waiting.stage is Stage.WAITING and waiting.outcome is None
    assert [t.stage for t in by_name["a.mov"].transitions] == [
        Stage.QUEUED,
        Stage.UPLOADING,
        Stage.WAITING,
        Stage.WAITING,
        Stage.TRANSCODING,
        Stage.DOWNLOADING,
        Stage.DOWNLOADING,
        Stage.DOWNLOADING,
        Stage.DONE,
    ]
    for f in report.recent:  # RFC 3339, UTC
        assert f.first_seen.endswith("Z") and f.updated >= f.first_seen


def test_only_the_finished_stages_asked_for_are_listed(journal: Journal, tmp_path: Path) -> None:
    add(journal, "a", "a.mov")
    walk(journal, "a", FileState.CLEANED)
    add(journal, "c", "c.mov")
    journal.fail("c", "not a readable media file")

    report = status.report(journal, tmp_path, stages=[Stage.FAILED])

    assert [f.name for f in report.recent] == ["c.mov"]
    assert report.totals.by_stage == {"done": 1, "failed": 1}  # totals stay whole


def test_a_fixed_file_is_done_and_its_failed_version_is_history(
    journal: Journal, tmp_path: Path
) -> None:
    """The stale status of the issue: empty.avi failed, was fixed, delivered: not a failure."""
    add(journal, "broken", "empty.avi", size=0)
    journal.fail("broken", "the file is empty")
    add(journal, "fixed", "empty.avi", size=1000)
    walk(journal, "fixed", FileState.CLEANED)

    report = status.report(journal, tmp_path)

    assert report.totals.by_stage == {"done": 1}
    assert [f.id for f in report.recent] == ["fixed"]
    [record] = status.find(journal, "/drop/empty.avi")
    story = status.file_status(journal, tmp_path, record)
    assert story.outcome is Stage.DONE
    [earlier] = story.earlier_versions
    assert earlier.id == "broken" and earlier.stage is Stage.SKIPPED
    assert earlier.reason is not None and "the file is empty" in earlier.reason


def test_a_file_is_found_by_path_name_or_id(journal: Journal, tmp_path: Path) -> None:
    add(journal, "0123abcd", "clip one.mov")

    assert [r.id for r in status.find(journal, "/drop/clip one.mov")] == ["0123abcd"]
    assert [r.id for r in status.find(journal, "clip one.mov")] == ["0123abcd"]
    assert [r.id for r in status.find(journal, "0123")] == ["0123abcd"]
    assert status.find(journal, "other.mov") == []


def test_progress_written_by_the_running_process_is_shown_while_fresh(
    journal: Journal, tmp_path: Path
) -> None:
    add(journal, "a", "a.mov")
    walk(journal, "a", FileState.TRANSCODING)
    recorder = JournalProgress(journal)

    recorder.on_progress(
        path=Path("/drop/a.mov"),
        stage="transcoding",
        fraction=0.42,
        speed="3.5",
        eta="12",
        worker="w-1",
    )
    [f] = decoded(status.report(journal, tmp_path)).in_flight

    assert f.progress == status.Progress(
        stage=Stage.TRANSCODING,
        percent=42.0,
        speed=3.5,
        eta_seconds=12.0,
        worker="w-1",
        at=f.progress.at if f.progress else None,
    )
    # A snapshot of another stage (the upload's, before the file moved on) is not shown.
    journal.story.note_progress("a", Stage.UPLOADING, 1.0)
    [f] = status.report(journal, tmp_path).in_flight
    assert f.progress == status.Progress(stage=Stage.TRANSCODING)


def test_progress_is_written_at_most_once_a_second_per_stage(
    journal: Journal, tmp_path: Path
) -> None:
    add(journal, "a", "a.mov")
    walk(journal, "a", FileState.UPLOADING)
    recorder = JournalProgress(journal, interval=3600)
    path = Path("/drop/a.mov")

    recorder.on_progress(path=path, stage="uploading", fraction=0.1)
    recorder.on_progress(path=path, stage="uploading", fraction=0.9)
    first = journal.story.progress_of("a")
    recorder.on_progress(path=path, stage="transcoding", fraction=0.05)  # a new stage: at once
    second = journal.story.progress_of("a")

    assert first is not None and first["fraction"] == 0.1
    assert second is not None and (second["stage"], second["fraction"]) == ("transcoding", 0.05)


def test_the_json_schema_is_published_from_the_model() -> None:
    schema = status.json_schema()

    report = schema["$defs"]["Report"]  # type: ignore[index]
    assert set(report["required"]) >= {"schema_version", "totals", "in_flight", "recent"}
    file = schema["$defs"]["FileStatus"]  # type: ignore[index]
    assert {"stage", "outcome", "transitions", "outputs", "progress", "input"} <= set(
        file["properties"]
    )


def test_a_partly_done_file_retried_for_what_it_lacked_is_history(
    journal: Journal, tmp_path: Path
) -> None:
    """``retry`` of a partly done file records the path again for the missing outputs:
    once it is there, the partly done record is history (its MP4 stays delivered)."""
    add(journal, "first", "talk.mov", presets=("audio-aac", "web-720p"))
    walk(journal, "first", FileState.CLEANED)
    journal.story.record_output("first", OutputRecord("audio-aac", OutputStatus.FAILED, reason="x"))
    journal.story.record_output(
        "first", OutputRecord("web-720p", OutputStatus.DONE, "/out/talk.mp4", size=10)
    )
    assert status.report(journal, tmp_path).totals.by_stage == {"partly done": 1}

    add(journal, "again", "talk.mov", presets=("audio-aac",))
    walk(journal, "again", FileState.CLEANED)

    report = status.report(journal, tmp_path)
    assert report.totals.by_stage == {"done": 1}
    assert [f.id for f in report.recent] == ["again"]
    [record] = status.find(journal, "talk.mov")
    assert [v.id for v in status.file_status(journal, tmp_path, record).earlier_versions] == [
        "first"
    ]


def test_an_output_made_but_not_yet_in_out_is_pending(journal: Journal, tmp_path: Path) -> None:
    add(journal, "a", "a.mov")
    walk(journal, "a", FileState.COMPLETED)
    journal.story.record_output("a", OutputRecord("web-720p", OutputStatus.DONE, size=10))

    [f] = status.report(journal, tmp_path).in_flight

    assert [o.status for o in f.outputs] == ["pending"]


def test_a_report_is_one_moment_even_while_another_process_finishes_a_file(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard polls ``done`` counts and then reads the list: both must come from the
    same moment, or a file finishing in between is counted but not listed."""
    add(journal, "a", "a.mov")
    walk(journal, "a", FileState.CLEANED)
    add(journal, "b", "b.mov")
    walk(journal, "b", FileState.DONE)
    other = Journal(journal.path)  # the pipeline's own connection, as in ``run --web``
    real_totals = status.totals

    def finish_b_then_count(j: Journal, catalog: Catalog) -> status.Totals:
        other.advance("b", FileState.CLEANED)
        return real_totals(j, catalog)

    monkeypatch.setattr(status, "totals", finish_b_then_count)
    try:
        report = status.report(journal, tmp_path)
    finally:
        other.close()

    assert report.totals.by_stage.get("done") == 1 and report.totals.files == 2
    assert [f.name for f in report.recent] == ["a.mov"]
    assert [f.name for f in report.in_flight] == ["b.mov"]
    monkeypatch.setattr(status, "totals", real_totals)
    after = status.report(journal, tmp_path)
    assert after.totals.by_stage.get("done") == 2 and len(after.recent) == 2


def test_status_file_shows_an_output_s_vmaf_and_the_crf_chosen() -> None:
    from autotranscode.cli.status import _output_text

    made = status.Output("web-720p", "done", "/out/a.mp4", size=400, vmaf=93.4, crf=24.5)
    assert _output_text(made).endswith("VMAF 93.4 at crf 24.5")
    measured = status.Output("web-720p", "done", "/out/a.mp4", vmaf=96.0)
    assert _output_text(measured).endswith("VMAF 96")


def test_a_remuxed_output_says_so_in_the_report_its_json_and_status_file(
    journal: Journal, tmp_path: Path
) -> None:
    from autotranscode.cli.status import _output_text

    add(journal, "r", "ours.mp4", size=5_090_000)
    walk(journal, "r", FileState.CLEANED)
    note = "already h264 high, 1280x720, yuv420p, 2.50 Mbit/s, aac: what web-720p makes"
    journal.story.record_output(
        "r",
        OutputRecord(
            "web-720p",
            OutputStatus.DONE,
            "/out/ours.mp4",
            size=5_090_400,
            action="remuxed",
            note=note,
        ),
    )
    report = decoded(status.report(journal, tmp_path))
    [f] = report.recent
    [o] = f.outputs
    assert (o.action, o.note) == ("remuxed", note)
    # A copy is the source's size plus its stamp: nothing saved (a little more out than in).
    assert (report.totals.bytes_in, report.totals.bytes_out) == (5_090_000, 5_090_400)
    assert report.totals.bytes_saved == -400
    assert _output_text(o).endswith(f"remuxed: {note}")
    raw = msgspec.json.decode(status.to_json(report))
    assert raw["recent"][0]["outputs"][0]["action"] == "remuxed"


def test_an_older_journal_s_outputs_get_the_action_and_note_columns(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "journal.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE outputs (file_id TEXT NOT NULL, preset TEXT NOT NULL, status TEXT NOT"
            " NULL, path TEXT, reason TEXT, size INTEGER, duration REAL, width INTEGER, height"
            " INTEGER, at REAL NOT NULL, PRIMARY KEY (file_id, preset))"
        )
        conn.execute(
            "INSERT INTO outputs VALUES ('old', 'web-720p', 'done', '/o', NULL, 9, 1.0, 2, 2, 1.0)"
        )
    conn.close()
    for _ in range(2):  # a second open finds them there
        j = Journal(db)
        try:
            [old] = j.story.outputs_of("old")
            assert old.size == 9 and old.action is None and old.note is None
            j.story.record_output(
                "new", OutputRecord("web-720p", OutputStatus.DONE, action="encoded")
            )
            assert j.story.outputs_of("new")[0].action == "encoded"
        finally:
            j.close()
