"""The dashboard's overview: the library panel (done files by codec and resolution, before
and after) and a file held outside ``--hours`` shown as queued with what it waits for."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from autotranscode.journal import FileState, Journal
from autotranscode.settings import Settings
from autotranscode.stages import HAPPY_PATH, OutputStatus
from autotranscode.story import OutputRecord
from autotranscode.web.app import create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_the_overview_shows_the_library_and_what_a_held_file_waits_for(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    journal = Journal(state_dir / "journal.db")
    try:
        journal.record("a", Path("/drop/a.avi"), tmp_path, ("web-720p",), 5000, time.time_ns())
        journal.story.describe("a", {"video_codec": "mpeg4", "width": 1920, "height": 1080})
        for state in HAPPY_PATH:
            journal.advance("a", state)
        journal.story.record_output(
            "a",
            OutputRecord(
                "web-720p", OutputStatus.DONE, "/o/a.mp4", size=2000, width=1280, height=720
            ),
        )
        journal.record("b", Path("/drop/b.avi"), tmp_path, ("web-720p",), 10, time.time_ns())
        journal.advance("b", FileState.DISCOVERED, detail="waiting for 01:00")
        app = create_app(state_dir, Settings(state_dir=state_dir))
        with TestClient(app, base_url="http://127.0.0.1:8765") as client:
            page = client.get("/").text
            totals = client.get("/api/status").json()["totals"]
            queue = client.get("/queue").text
    finally:
        journal.close()
    rows = re.findall(r"<tr><td>(\w*)</td><td>(\w+)</td><td>(\w+)</td><td>(\d+)</td>", page)
    assert rows == [("before", "mpeg4", "1080p", "1"), ("after", "h264", "720p", "1")]
    assert totals["library"]["after"] == [
        {"codec": "h264", "resolution": "720p", "files": 1, "bytes": 2000}
    ]
    assert 'queued <span class="note">(waiting for 01:00)</span>' in page
    assert "queued (waiting for 01:00)" in queue
