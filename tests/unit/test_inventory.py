"""Library statistics: the done files by codec and resolution before and after, in
``status``'s totals (and so its JSON and the dashboard), from a journal driven through its
real transitions; and a journal of 10,000 done files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from autotranscode import inventory, status
from autotranscode.inventory import Library, Shelf
from autotranscode.journal import FileState, Journal
from autotranscode.stages import HAPPY_PATH, OutputStatus
from autotranscode.story import OutputRecord


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


def done(
    journal: Journal,
    fid: str,
    source: dict[str, object],
    size: int,
    outputs: list[OutputRecord],
    until: FileState = FileState.CLEANED,
) -> None:
    presets = tuple(o.preset for o in outputs) or ("web-720p",)
    journal.record(fid, Path("/drop") / f"{fid}.mkv", Path("/out"), presets, size, time.time_ns())
    journal.story.describe(fid, source)
    for state in HAPPY_PATH:
        journal.advance(fid, state)
        if state is until:
            break
    for o in outputs:
        journal.story.record_output(fid, o)


HD = {"video_codec": "mpeg4", "audio_codec": "mp3", "width": 1920, "height": 800}
SD = {"video_codec": "mpeg2video", "width": 720, "height": 576}


def web(size: int, height: int = 720) -> OutputRecord:
    return OutputRecord(
        "web-720p",
        OutputStatus.DONE,
        "/out/x.mp4",
        size=size,
        width=height * 16 // 9,
        height=height,
    )


def test_resolutions_are_named_as_a_player_would() -> None:
    assert inventory.resolution(3840, 2160) == "2160p"
    assert inventory.resolution(1920, 800) == "1080p"  # a scope film is still 1080p
    assert inventory.resolution(1280, 720) == "720p"
    assert inventory.resolution(720, 576) == "480p"
    assert inventory.resolution(320, 240) == "SD"
    assert inventory.resolution(None, None) == "no picture"


def test_done_files_by_codec_and_resolution_before_and_after(
    journal: Journal, tmp_path: Path
) -> None:
    done(journal, "a", HD, 9000, [web(3000)])
    done(journal, "b", HD, 7000, [web(2000)])
    done(journal, "c", SD, 4000, [web(1000, 576)])
    done(
        journal,
        "d",
        {"audio_codec": "flac"},
        500,
        [OutputRecord("audio-aac", OutputStatus.DONE, "/out/d.m4a", size=100)],
    )
    # Partly done: what was made counts, what failed does not.
    done(
        journal,
        "e",
        SD,
        4000,
        [web(900, 576), OutputRecord("hevc-1080p", OutputStatus.FAILED, reason="x")],
    )
    # Not done (still transcoding) or failed: not in the library yet.
    done(journal, "f", HD, 9999, [], until=FileState.TRANSCODING)
    done(journal, "g", HD, 9999, [], until=FileState.UPLOADING)
    journal.fail("g", "unreadable")

    report = msgspec.json.decode(
        status.to_json(status.report(journal, tmp_path)), type=status.Report
    )

    assert report.totals.library == Library(
        before=[
            Shelf("mpeg4", "1080p", 2, 16000),
            Shelf("mpeg2video", "480p", 2, 8000),
            Shelf("flac", "no picture", 1, 500),
        ],
        after=[
            Shelf("h264", "720p", 2, 5000),
            Shelf("h264", "480p", 2, 1900),
            Shelf("aac", "no picture", 1, 100),
        ],
    )
    assert report.totals.bytes_saved == 24500 - 7000


def test_an_output_of_a_preset_no_longer_defined_is_named_by_its_id(journal: Journal) -> None:
    done(journal, "a", HD, 10, [OutputRecord("gone-preset", OutputStatus.DONE, "/out/a", size=5)])
    assert inventory.library(journal.db).after == [Shelf("preset gone-preset", "no picture", 1, 5)]


def test_ten_thousand_done_files_add_up_in_sql(journal: Journal) -> None:
    """Rows written in bulk (what 10,000 files through their transitions would leave): each
    side is one grouped query, its groups added up here, never a record per file."""
    with journal.db.transaction(False) as conn:
        for i in range(10_000):
            fid = f"f{i}"
            media = '{"video_codec": "h264", "width": 1920, "height": 1080}'
            conn.execute(
                "INSERT INTO files (id, path, out_dir, presets, size, mtime_ns, state,"
                " created_at, updated_at, media) VALUES (?, ?, '/out', 'web-720p', 100, 0,"
                " 'CLEANED', 0, 0, ?)",
                (fid, f"/drop/{fid}.mkv", media),
            )
            conn.execute(
                "INSERT INTO outputs (file_id, preset, status, size, width, height, at)"
                " VALUES (?, 'web-720p', 'done', 40, 1280, 720, 0)",
                (fid,),
            )
    lib = inventory.library(journal.db)
    assert lib.before == [Shelf("h264", "1080p", 10_000, 1_000_000)]
    assert lib.after == [Shelf("h264", "720p", 10_000, 400_000)]
