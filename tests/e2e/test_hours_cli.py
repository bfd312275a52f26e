"""``run --hours``: a file found outside the hours waits, queued and saying for what, and is
transcoded once they begin (a window computed from the current time, opening seconds
after the start)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_harness import Cli, open_cli, wait_until

from conftest import Clip, check_output

#: The window opens this long after ``run`` is started: time enough for it to find the file.
OPENS_IN = timedelta(seconds=5)


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


def test_a_file_found_outside_the_hours_waits_then_is_done(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    drop, out = tmp_path / "in", tmp_path / "out"
    drop.mkdir()
    shutil.copyfile(clips["h264.mp4"].path, drop / "ep1.mp4")
    opens = (datetime.now() + OPENS_IN).replace(microsecond=0)
    hours = f"{opens:%H:%M:%S}-{opens + timedelta(hours=1):%H:%M:%S}"
    run = cli.start("run", "run", drop, out, "--settle", "0.2", "--hours", hours)
    note = f"waiting for {opens:%H:%M:%S}"
    run.wait_for_log(f"ep1.mp4: queued ({note})")

    wait_until(lambda: (out / "ep1.mp4").exists(), "ep1.mp4 in OUT", procs=(run,))
    assert run.stop() == 130
    check_output(out / "ep1.mp4", clips["h264.mp4"])
    [done] = cli.status()["recent"]
    assert done["stage"] == "done" and done["note"] is None
    steps = [(t["stage"], t["detail"]) for t in done["transitions"]]
    assert steps[:3] == [("queued", None), ("queued", note), ("uploading", None)]
    # Taken no sooner than the hours began (the journal's clock, in UTC).
    taken = datetime.fromisoformat(done["transitions"][2]["at"].replace("Z", "+00:00"))
    assert taken >= opens.astimezone(UTC)


def test_status_shows_a_held_file_as_queued_with_what_it_waits_for(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    drop, out = tmp_path / "in", tmp_path / "out"
    drop.mkdir()
    shutil.copyfile(clips["h264.mp4"].path, drop / "ep1.mp4")
    opens = datetime.now() + timedelta(hours=12)  # not during this test
    hours = f"{opens:%H:%M}-{opens + timedelta(hours=1):%H:%M}"
    run = cli.start("run", "run", drop, out, "--settle", "0.2", "--hours", hours)
    run.wait_for_log("ep1.mp4: queued (waiting for")
    assert f"transcoding starts only in the hours {hours} (local time)" in run.stderr
    report = cli.status()
    [held] = report["in_flight"]
    assert (held["stage"], held["note"]) == ("queued", f"waiting for {opens:%H:%M}")
    assert report["totals"]["queued"] == 1
    text = cli.run("status").stdout
    assert f"queued (waiting for {opens:%H:%M})" in text
    assert run.stop() == 130
    assert not out.exists() or not list(out.iterdir())
