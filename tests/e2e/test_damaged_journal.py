"""Case 9 of issue 13: a lost or damaged journal, as a user meets it through the CLI.

A journal truncated to nothing is a new journal, and the outputs' stamps keep what OUT
holds from being made again under ``name (1).mp4``; a damaged one stops every command at
once with one line naming the file and ``autotranscode journal rebuild``; ``journal check``
and ``journal rebuild`` tell and mend.

``journal rebuild`` reads OUT's stamps and writes the journal, both on this machine: it runs
on the local backend only, for time; a lost journal meets the endpoint in
test_a_journal_truncated_to_nothing_does_not_redo_what_out_holds[aws].
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import BACKENDS, Cli, by_stage, names, open_cli, wait_until

from conftest import Clip, check_output

#: Where random bytes go: the files table's first page (page 1 is the header and schema).
PAGE = 4096


@pytest.fixture(params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, request.param)


@pytest.fixture
def local_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


def journal_files(state_dir: Path) -> list[Path]:
    return [state_dir / f"journal.db{s}" for s in ("", "-wal", "-shm")]


def truncate(state_dir: Path) -> None:
    db, *others = journal_files(state_dir)
    db.write_bytes(b"")
    for path in others:
        path.unlink(missing_ok=True)


def random_page(state_dir: Path) -> None:
    with (state_dir / "journal.db").open("r+b") as fh:
        fh.seek(PAGE)
        fh.write(os.urandom(PAGE))


def garbage_header(state_dir: Path) -> None:
    with (state_dir / "journal.db").open("r+b") as fh:
        fh.write(b"this is no sqlite file at all, no!")


def one_line_error(stderr: str, state_dir: Path) -> None:
    """The user's view of a damaged journal: one line, the file, what to do; no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert str(state_dir / "journal.db") in errors[0], stderr
    assert "is damaged" in errors[0] and "autotranscode journal rebuild" in errors[0], stderr
    assert "writable" not in errors[0], stderr


def test_a_journal_truncated_to_nothing_does_not_redo_what_out_holds(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    clip = clips["h264.mp4"]
    out = tmp_path / "out"
    first = cli.run("transcode", clip.path, "--out", out)
    assert first.returncode == 0, first
    before = (out / "h264.mp4").stat()

    truncate(cli.state_dir)
    second = cli.run("transcode", clip.path, "--out", out)

    assert second.returncode == 0, second
    assert "Traceback" not in second.stderr, second.stderr
    assert re.search(r"^ok\s+h264\.mp4 -> h264\.mp4$", second.stdout, re.M), second.stdout
    assert names(out) == ["h264.mp4"]  # no "h264 (1).mp4"
    after = (out / "h264.mp4").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    check_output(out / "h264.mp4", clip)
    assert by_stage(cli.status()) == {"done": 1}
    cli.assert_no_leftovers()


def test_another_content_under_the_same_name_is_still_transcoded(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """The stamp is what counts, not the name: a new clip.mp4 gets clip (1).mp4."""
    out = tmp_path / "out"
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "clip.mp4").write_bytes(clips["h264.mp4"].path.read_bytes())
    assert local_cli.run("transcode", drop / "clip.mp4", "--out", out).returncode == 0
    truncate(local_cli.state_dir)
    (drop / "clip.mp4").write_bytes(clips["no audio.mp4"].path.read_bytes())

    second = local_cli.run("transcode", drop / "clip.mp4", "--out", out)

    assert second.returncode == 0, second
    assert names(out) == ["clip (1).mp4", "clip.mp4"]
    check_output(out / "clip (1).mp4", clips["no audio.mp4"])


@pytest.mark.parametrize("damage", [random_page, garbage_header], ids=["random-page", "header"])
def test_transcode_on_a_damaged_journal_is_one_line_and_exit_3(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip], damage: object
) -> None:
    clip = clips["h264.mp4"]
    out = tmp_path / "out"
    assert cli.run("transcode", clip.path, "--out", out).returncode == 0
    assert callable(damage)
    damage(cli.state_dir)

    result = cli.run("transcode", clips["vp9.mkv"].path, "--out", out, timeout=30)

    assert result.returncode == 3, result
    one_line_error(result.stderr, cli.state_dir)
    assert names(out) == ["h264.mp4"]


@pytest.mark.parametrize("damage", [random_page, garbage_header], ids=["random-page", "header"])
def test_run_on_a_damaged_journal_exits_3_at_once(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip], damage: object
) -> None:
    """Never idle: ``run`` stops at start, rather than watching with a journal it cannot use."""
    out, drop = tmp_path / "out", tmp_path / "drop"
    drop.mkdir()
    assert local_cli.run("transcode", clips["h264.mp4"].path, "--out", out).returncode == 0
    assert callable(damage)
    damage(local_cli.state_dir)
    (drop / "vp9.mkv").write_bytes(clips["vp9.mkv"].path.read_bytes())

    started = time.monotonic()
    result = local_cli.run("run", drop, out, "--settle", "0.2", timeout=30)

    assert result.returncode == 3, result
    assert time.monotonic() - started < 20
    one_line_error(result.stderr, local_cli.state_dir)
    assert names(out) == ["h264.mp4"]


def test_journal_check_says_ok_or_what_is_wrong(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    assert (
        local_cli.run("transcode", clips["h264.mp4"].path, "--out", tmp_path / "out").returncode
        == 0
    )

    sound = local_cli.run("journal", "check")
    assert sound.returncode == 0, sound
    assert sound.stdout.startswith("ok"), sound.stdout

    random_page(local_cli.state_dir)
    bad = local_cli.run("journal", "check")
    assert bad.returncode == 3, bad
    assert "Traceback" not in bad.stderr, bad.stderr
    assert "damaged" in bad.stdout and "journal rebuild" in bad.stdout, bad.stdout


@pytest.mark.parametrize("damage", [random_page, garbage_header], ids=["random-page", "header"])
def test_journal_rebuild_sets_the_damaged_one_aside_and_out_is_not_redone(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip], damage: object
) -> None:
    clip = clips["h264.mp4"]
    out = tmp_path / "out"
    assert (
        local_cli.run(
            "transcode", clip.path, "--preset", "web-720p", "--preset", "poster", "--out", out
        ).returncode
        == 0
    )
    made = names(out)
    assert made == ["h264.poster.jpg", "h264.web-720p.mp4"]
    assert callable(damage)
    damage(local_cli.state_dir)

    rebuilt = local_cli.run("journal", "rebuild", "--out", out)

    assert rebuilt.returncode == 0, rebuilt
    assert "Traceback" not in rebuilt.stderr, rebuilt.stderr
    assert "2 outputs recorded as done" in rebuilt.stdout, rebuilt.stdout
    aside = [p.name for p in local_cli.state_dir.glob("journal.db.damaged-*")]
    assert any(re.fullmatch(r"journal\.db\.damaged-\d{8}T\d{6}Z", n) for n in aside), aside
    assert local_cli.run("journal", "check").returncode == 0
    assert by_stage(local_cli.status()) == {"done": 2}

    again = local_cli.run(
        "transcode", clip.path, "--preset", "web-720p", "--preset", "poster", "--out", out
    )
    assert again.returncode == 0, again
    assert names(out) == made  # nothing made again under "(1)" names
    local_cli.assert_no_leftovers()


def test_journal_rebuild_refuses_a_sound_journal_without_force(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    out = tmp_path / "out"
    assert local_cli.run("transcode", clips["h264.mp4"].path, "--out", out).returncode == 0

    refused = local_cli.run("journal", "rebuild", "--out", out)
    assert refused.returncode == 2, refused
    assert "sound" in refused.stderr and "--force" in refused.stderr, refused.stderr

    forced = local_cli.run("journal", "rebuild", "--out", out, "--force")
    assert forced.returncode == 0, forced
    assert "1 outputs recorded as done" in forced.stdout, forced.stdout


def test_a_folder_output_is_known_by_its_sidecar_after_the_journal_is_lost(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    clip = clips["h264.mp4"]
    out = tmp_path / "out"
    assert (
        local_cli.run("transcode", clip.path, "--preset", "thumbnails", "-o", out).returncode == 0
    )
    truncate(local_cli.state_dir)

    again = local_cli.run("transcode", clip.path, "--preset", "thumbnails", "-o", out)

    assert again.returncode == 0, again
    assert names(out) == ["h264.thumbnails"]
    assert names(out / "h264.thumbnails") == [".autotranscode.json", "thumb-0001.jpg"]


def test_run_with_a_journal_truncated_to_nothing_does_not_redo_the_drop(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """The issue's own repro: ``run`` takes every file in DROP at start, and a lost journal
    made it transcode them all again into ``clip1 (1).mp4``."""
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    for name in ("h264.mp4", "vp9.mkv"):
        (drop / name).write_bytes(clips[name].path.read_bytes())
    made = ["h264.mp4", "vp9.mp4"]

    first = local_cli.start("run", "run", drop, out, "--settle", "0.2", "-v")
    wait_until(lambda: names(out) == made, "both outputs", procs=(first,))
    assert first.stop() == 130  # run's exit status after Ctrl+C
    truncate(local_cli.state_dir)

    second = local_cli.start("run", "run", drop, out, "--settle", "0.2", "-v")
    wait_until(
        lambda: by_stage(local_cli.status()) == {"done": 2}, "both files done", procs=(second,)
    )
    assert second.stop() == 130
    assert names(out) == made
    assert second.stderr.count("already in OUT") >= 2, second.stderr
    assert "Traceback" not in second.stderr, second.stderr


def test_a_file_found_in_out_is_moved_as_on_success_says(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    source = drop / "h264.mp4"
    source.write_bytes(clips["h264.mp4"].path.read_bytes())
    assert local_cli.run("transcode", source, "-o", out).returncode == 0
    truncate(local_cli.state_dir)

    again = local_cli.run("transcode", source, "-o", out, "--on-success", "move")

    assert again.returncode == 0, again
    assert names(out) == ["h264.mp4"]
    assert names(drop) == ["done"] and names(drop / "done") == ["h264.mp4"]
