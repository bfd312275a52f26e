"""``status`` as a user reads it: the totals, what is in flight, the finished files, one
file's story (``status FILE``), and the versioned JSON, through the CLI on real runs.

Names are hostile on purpose: rich markup, ESC sequences, a newline. ``status`` must
show them as the characters they hold, never obey them.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cli_harness import Cli, by_stage, listed, open_cli, wait_until

from autotranscode import status as model

from conftest import Clip

#: Distinct content for each (identity is content: a copy of one clip would be a copy).
HOSTILE = {
    "[bold red]x.mp4": "h264.mp4",
    "[@click=quit]y.mov": "mjpeg.avi",
    "e\x1b[31mvil.mp4": "vp9.mkv",
    "new\nline.mp4": "no audio.mp4",
}
#: Empty, so it fails: its name and reason must show literally too.
HOSTILE_FAILING = "[red]bad\x1b]0;pwned\x07.mp4"
WIDE = {"COLUMNS": "500"}


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """``status`` reads the journal, which both backends write alike: local only."""
    yield from open_cli(request, tmp_path, "local")


def literal(name: str) -> str:
    """How a name must appear: its control characters as Python escapes, nothing else changed."""
    return name.encode("unicode_escape").decode("ascii")


@pytest.fixture
def hostile_run(cli: Cli, tmp_path: Path, clips: dict[str, Clip]) -> Path:
    """The hostile files, transcoded: four done, one failed."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, source in HOSTILE.items():
        shutil.copyfile(clips[source].path, folder / name)
    (folder / HOSTILE_FAILING).write_bytes(b"")
    result = cli.run("transcode", *sorted(folder.iterdir()), "-o", tmp_path / "out")
    assert result.returncode == 1, result
    return folder


def test_status_shows_hostile_names_and_reasons_literally(cli: Cli, hostile_run: Path) -> None:
    shown = cli.run("status", env=WIDE)

    assert shown.returncode == 0, shown
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout, repr(shown.stdout)
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("5 files: 4 done · 1 failed · in "), shown.stdout
    for name in HOSTILE:
        assert any(ln.startswith(f"  ✓ {literal(name)} → ") for ln in lines), (name, lines)
    failed = f"  ✗ {literal(HOSTILE_FAILING)} failed: the file is empty"
    assert failed in lines, lines


def test_status_json_is_versioned_typed_and_exact(cli: Cli, hostile_run: Path) -> None:
    raw = cli.run("status", "--json")
    assert raw.returncode == 0, raw

    report = msgspec.json.decode(raw.stdout, type=model.Report)  # every field, every type
    data: dict[str, Any] = json.loads(raw.stdout)

    assert report.schema_version == 1
    assert by_stage(data) == {"done": 4, "failed": 1}
    assert report.totals.bytes_in > 0 and report.totals.bytes_out > 0
    assert report.totals.bytes_saved == report.totals.bytes_in - report.totals.bytes_out
    # JSON carries names exactly (its own escapes), not the terminal's rendering.
    assert {f.name for f in report.recent} == {*HOSTILE, HOSTILE_FAILING}
    for f in report.recent:
        assert Path(f.path).is_absolute() and Path(f.path).parent == hostile_run
        assert f.input.size == (hostile_run / f.name).stat().st_size
        assert f.elapsed_seconds >= 0 and f.first_seen <= f.updated
        assert f.transitions[0].stage == "queued" and f.transitions[-1].stage == f.stage
        if f.outcome == "done":
            [output] = f.outputs
            assert output.status == "done" and output.path and Path(output.path).is_file()
            assert output.size == Path(output.path).stat().st_size
            assert f.input.content_hash and len(f.input.content_hash) == 64
    [failed] = listed(data, "failed")
    assert failed["name"] == HOSTILE_FAILING and failed["reason"] == "the file is empty"


def test_status_file_tells_one_files_story(cli: Cli, hostile_run: Path) -> None:
    name = "[bold red]x.mp4"
    shown = cli.run("status", hostile_run / name, env=WIDE)

    assert shown.returncode == 0, shown
    lines = shown.stdout.splitlines()
    assert lines[0] == literal(str(hostile_run / name)), lines
    assert re.search(r"^  stage +done \(took \d+:\d\d:\d\d\) *$", shown.stdout, re.M), lines
    assert re.search(r"^  web-720p +done +/\S.*x\.mp4 · [\d.]+ kB", shown.stdout, re.M), lines
    stages = [ln.split()[4] for ln in lines if re.match(r"^  \d{4}-\d\d-\d\d ", ln)]
    assert stages[0] == "queued" and stages[-1] == "done", lines

    by_id = json.loads(
        cli.run(
            "status",
            "--json",
            json.loads(cli.run("status", "--json").stdout)["recent"][0]["id"][:8],
        ).stdout
    )
    assert len(by_id["files"]) == 1 and by_id["schema_version"] == 1


def test_status_of_an_unknown_file_says_so_and_fails(cli: Cli, hostile_run: Path) -> None:
    shown = cli.run("status", "nothing-like-it.mov")

    assert shown.returncode == 1, shown
    assert "no file 'nothing-like-it.mov' in the journal of" in shown.stderr, shown
    assert "Traceback" not in shown.stderr


def test_status_lists_only_the_stages_asked_for(cli: Cli, hostile_run: Path) -> None:
    data = json.loads(cli.run("status", "--json", "--stage", "failed").stdout)

    assert [f["name"] for f in data["recent"]] == [HOSTILE_FAILING]
    assert by_stage(data) == {"done": 4, "failed": 1}


def test_a_fixed_file_is_no_longer_a_failure(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """empty.avi failed, was fixed and delivered: status must not count it as failed."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "empty.avi").write_bytes(b"")
    assert cli.run("transcode", folder / "empty.avi", "-o", out).returncode == 1
    shutil.copyfile(clips["mjpeg.avi"].path, folder / "empty.avi")
    assert cli.run("transcode", folder / "empty.avi", "-o", out).returncode == 0

    data = cli.status()
    assert by_stage(data) == {"done": 1}, data
    assert listed(data, "failed") == []
    view = cli.run("status", env=WIDE).stdout
    assert "failed" not in view and "  ✓ empty.avi → empty.mp4" in view, view
    story = cli.run("status", folder / "empty.avi", env=WIDE).stdout
    assert "earlier versions of this path" in story and "the file is empty" in story, story


def test_status_shows_a_file_in_flight_with_its_stage_and_clock(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """No worker: the file waits for one, and says so, in both views."""
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    run = cli.start("run", "run", drop, out, "--settle", "0.3", "--workers", "0")
    run.wait_for_log("watching")
    shutil.copyfile(clips["h264.mp4"].path, drop / "clip.mp4")

    flying = wait_until(
        lambda: cli.status()["in_flight"], "the file to be in flight", procs=(run,), interval=0.2
    )
    wait_until(
        lambda: cli.status()["in_flight"][0]["stage"] == "waiting for a worker",
        "the file to wait for a worker",
        procs=(run,),
        interval=0.2,
    )
    [f] = cli.status()["in_flight"]
    assert f["outcome"] is None and f["progress"]["stage"] == "waiting for a worker", f
    assert [o["status"] for o in f["outputs"]] == ["pending"], f
    assert f["outputs"][0]["path"] == str(out / "clip.mp4"), f  # absolute, where it goes
    assert len(flying) == 1
    view = cli.run("status", env=WIDE).stdout
    assert re.search(r"^clip\.mp4 +waiting for a worker +\d+:\d\d:\d\d$", view, re.M), view
    assert view.splitlines()[0] == "1 file: 1 waiting for a worker", view
    run.stop()
