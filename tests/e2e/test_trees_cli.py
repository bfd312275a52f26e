"""A library as a tree (``Show/Season 1/ep1.avi``), through the CLI: ``--recursive`` keeps
the tree in OUT, a source's sidecars (subtitles, NFO, artwork) follow its output, a hostile
folder name or a symlink in OUT cannot send an output outside OUT, and a ``kill -9``
mid-tree then a restart delivers each file once, to its place.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.request import pathname2url

import pytest
from cli_harness import BACKENDS, PART_SUFFIX, Cli, Proc, open_cli, wait_until

from conftest import Clip, check_output

SETTLE = "0.3"
SIDECARS = ("ep1.srt", "ep1.en.srt", "ep1.nfo", "ep1-poster.jpg", "ep1.jpg")
#: Beside ep1.avi, but no sidecar of it: another stem, or no pattern of the default list.
NOT_SIDECARS = ("ep10.srt", "ep1.txt", "ep1x.nfo")


@pytest.fixture(params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, request.param)


@pytest.fixture
def local_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


def tree(root: Path, clips: dict[str, Clip], layout: dict[str, str]) -> dict[str, Clip]:
    """``layout``: relative path -> test clip copied there; the clips, by relative path."""
    for rel, clip in layout.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clips[clip].path, root / rel)
    return {rel: clips[clip] for rel, clip in layout.items()}


def files_in(folder: Path) -> list[str]:
    """Every file under ``folder``, by relative path, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def outputs(layout: dict[str, Clip]) -> dict[str, Clip]:
    return {str(Path(rel).with_suffix(".mp4")): clip for rel, clip in layout.items()}


def check_tree(out: Path, wanted: dict[str, Clip], extra: tuple[str, ...] = ()) -> None:
    """OUT holds exactly the outputs wanted (and ``extra``), each where its source was."""
    assert files_in(out) == sorted([*wanted, *extra])
    for rel, clip in wanted.items():
        check_output(out / rel, clip)


SAME_NAMES = {
    "Show/Season 1/ep1.avi": "mjpeg.avi",
    "Show/Season 2/ep1.mkv": "vp9.mkv",
    "Show/ep1.mp4": "h264.mp4",
}


def test_transcode_recursive_keeps_the_tree(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    layout = tree(tmp_path / "in", clips, SAME_NAMES)
    (tmp_path / "in" / ".hidden").mkdir()
    shutil.copyfile(clips["h264.mp4"].path, tmp_path / "in" / ".hidden" / "x.mp4")
    out = tmp_path / "out"
    out.mkdir(mode=0o750)
    out.chmod(0o750)

    result = cli.run("transcode", "--recursive", tmp_path / "in", "-o", out)

    assert result.returncode == 0, result.stderr
    assert "Show/Season 1/ep1.avi -> ep1.mp4" in result.stdout
    assert "3 done, 0 failed" in result.stdout
    check_tree(out, outputs(layout))  # no ep1 (1).mp4: the names clash only in one folder
    for folder in (out / "Show", out / "Show" / "Season 1"):
        assert folder.stat().st_mode & 0o777 == 0o750  # as OUT's, not the umask's

    again = cli.run("transcode", "--recursive", tmp_path / "in", "-o", out)
    assert again.returncode == 0, again.stderr
    check_tree(out, outputs(layout))  # done before: nothing made twice
    cli.assert_no_leftovers()
    if cli.backend == "local":  # the journal lost: rebuilt from the whole tree in OUT
        (cli.state_dir / "journal.db").write_bytes(b"")
        rebuilt = cli.run("journal", "rebuild", "--out", out)
        assert "3 outputs recorded as done" in rebuilt.stdout, rebuilt
        assert cli.status()["totals"]["by_stage"] == {"done": 3}


def test_transcode_without_recursive_names_the_subfolders_it_skips(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    tree(tmp_path / "in", clips, {"Season 1/ep1.avi": "mjpeg.avi", "Season 2/ep1.mkv": "vp9.mkv"})
    (tmp_path / "in" / "Sea\x1b[2Json 3").mkdir()
    (tmp_path / "in" / ".git").mkdir()

    result = local_cli.run("transcode", tmp_path / "in", "-o", tmp_path / "out")

    assert result.returncode == 0, result.stderr
    assert "0 done, 0 failed" in result.stdout
    said = [line for line in result.stderr.splitlines() if "not looked into" in line]
    assert said == [
        f"{tmp_path / 'in'}: 3 subfolders not looked into "
        "(Sea\\x1b[2Json 3, Season 1, Season 2); --recursive takes them"
    ]
    assert "\x1b" not in result.stderr + result.stdout
    assert files_in(tmp_path / "out") == []


def test_run_recursive_keeps_the_tree(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    proc = start_run(local_cli, drop, out, "--recursive")
    layout = tree(drop, clips, SAME_NAMES)
    wanted = outputs(layout)
    wait_until(lambda: files_in(out) == sorted(wanted), "the tree in OUT", procs=(proc,))
    assert proc.stop() == 130, proc
    check_tree(out, wanted)


def test_sidecars_follow_the_output_and_its_renamed_stem(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    layout = tree(src, clips, {"A/ep1.avi": "mjpeg.avi", "B/ep1.avi": "mjpeg.avi"})
    for folder in ("A", "B"):
        for name in (*SIDECARS, *NOT_SIDECARS):
            (src / folder / name).write_text(f"{folder}/{name}\n")
    (src / "B" / "ep1.sup").symlink_to(tmp_path / "secret")  # never followed
    (tmp_path / "secret").write_text("secret\n")
    (out / "B").mkdir(parents=True)
    (out / "B" / "ep1.mp4").write_text("someone else's\n")  # so B's output is ep1 (1).mp4
    (out / "A").mkdir()
    (out / "A" / "ep1.nfo").write_text("someone else's\n")  # never overwritten

    result = cli.run("transcode", "--recursive", src, "-o", out)

    assert result.returncode == 0, result.stderr
    assert files_in(out) == sorted(
        [
            *("A/ep1.mp4", *(f"A/{n}" for n in SIDECARS)),
            *(
                "B/ep1.mp4",
                "B/ep1 (1).mp4",
                *(f"B/{n.replace('ep1', 'ep1 (1)', 1)}" for n in SIDECARS),
            ),
        ]
    )
    check_output(out / "A" / "ep1.mp4", layout["A/ep1.avi"])
    assert (out / "A" / "ep1.en.srt").read_text() == "A/ep1.en.srt\n"
    assert (out / "A" / "ep1.nfo").read_text() == "someone else's\n"
    assert (out / "B" / "ep1 (1)-poster.jpg").read_text() == "B/ep1-poster.jpg\n"
    assert (out / "B" / "ep1 (1).en.srt").read_text() == "B/ep1.en.srt\n"
    assert "ep1.nfo not copied: another ep1.nfo" in str(cli.status())  # said, as a warning
    assert sorted(os.listdir(src / "A")) == sorted(["ep1.avi", *SIDECARS, *NOT_SIDECARS])


def test_sidecars_can_be_chosen_or_turned_off(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    src = tmp_path / "in"
    tree(src, clips, {"ep1.avi": "mjpeg.avi"})
    for name in SIDECARS:
        (src / name).write_text(name)

    chosen = local_cli.run("transcode", src, "-o", tmp_path / "srt", "--sidecars", "*.srt")
    assert chosen.returncode == 0, chosen.stderr
    assert files_in(tmp_path / "srt") == ["ep1.en.srt", "ep1.mp4", "ep1.srt"]

    off = local_cli.run("transcode", src, "-o", tmp_path / "none", "--sidecars", "none")
    assert off.returncode == 0, off.stderr
    assert files_in(tmp_path / "none") == ["ep1.mp4"]

    bad = local_cli.run("transcode", src, "-o", tmp_path / "x", "--sidecars", "../*.srt")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: --sidecars: '../*.srt' is not a pattern of file names")
    assert "Traceback" not in bad.stderr


def test_a_hostile_folder_name_stays_inside_out(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    hostile = " ..\n\x1b[31m-rf"  # not hidden: a leading space
    tree(src, clips, {f"{hostile}/ep1.avi": "mjpeg.avi"})
    (src / hostile / "ep1.\x1b[2J.srt").write_text("sub\n")

    result = local_cli.run("transcode", "--recursive", src, "-o", out)

    assert result.returncode == 0, result.stderr
    assert files_in(out) == ["_[31m-rf/ep1._[2J.srt", "_[31m-rf/ep1.mp4"]
    assert "\x1b" not in result.stdout + result.stderr
    elsewhere = [p for p in files_in(tmp_path) if not p.startswith(("in/", "out/", "state/"))]
    assert elsewhere == []


def test_a_symlink_in_out_is_never_written_through(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    src, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    tree(src, clips, {"Season 1/ep1.avi": "mjpeg.avi"})
    elsewhere.mkdir()
    out.mkdir()
    (out / "Season 1").symlink_to(elsewhere)

    result = local_cli.run("transcode", "--recursive", src, "-o", out)

    assert result.returncode == 1, result.stderr
    assert "is a symlink; outputs are never written through one" in result.stdout
    assert os.listdir(elsewhere) == []


def test_a_folder_in_out_replaced_by_a_symlink_mid_run(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    drop, out, elsewhere = tmp_path / "drop", tmp_path / "out", tmp_path / "elsewhere"
    drop.mkdir()
    elsewhere.mkdir()
    proc = start_run(local_cli, drop, out, "--recursive")
    tree(drop, clips, {"Season 1/ep1.avi": "mjpeg.avi"})
    wait_until((out / "Season 1" / "ep1.mp4").exists, "the first output", procs=(proc,))
    (out / "Season 1").rename(tmp_path / "moved away")
    (out / "Season 1").symlink_to(elsewhere)
    tree(drop, clips, {"Season 1/ep2.avi": "vp9.mkv"})

    reason = wait_until(lambda: failed(local_cli.state_dir), "ep2 refused", procs=(proc,))
    assert proc.stop() == 130, proc
    assert "is a symlink; outputs are never written through one" in reason
    assert os.listdir(elsewhere) == []
    assert (out / "Season 1").is_symlink()  # left as it was found


def failed(state_dir: Path) -> str:
    rows = journal(state_dir, "SELECT reason FROM files WHERE state = 'FAILED'")
    return str(rows[0][0]) if rows else ""


def journal(state_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows from the journal, read-only; none while it does not exist yet or is busy."""
    db = state_dir / "journal.db"
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{pathname2url(str(db))}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return []


def start_run(cli: Cli, drop: Path, out: Path, *extra: str, name: str = "run") -> Proc:
    proc = cli.start(name, "run", drop, out, "--settle", SETTLE, *extra)
    proc.wait_for_log("watching")
    return proc


@pytest.mark.parametrize("state", ["DOWNLOADING", "DONE"])
def test_kill_9_mid_tree_then_restart_delivers_each_once(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip], state: str
) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    layout = tree(
        drop,
        clips,
        {
            "S1/ep1.avi": "mjpeg.avi",
            "S1/ep2.mkv": "vp9.mkv",
            "S2/ep1.mp4": "h264.mp4",
            "S2/ep2.avi": "mjpeg.avi",
            "S3/deep/ep1.mp4": "no audio.mp4",
        },
    )
    for rel in layout:
        (drop / rel).with_suffix(".srt").write_text(rel)
    proc = start_run(local_cli, drop, out, "--recursive")

    def got_there() -> bool:
        sql = f"SELECT 1 FROM events WHERE state = '{state}'"
        return bool(journal(local_cli.state_dir, sql))

    wait_until(got_there, f"a file {state.lower()}", procs=(proc,), interval=0.005)
    os.kill(proc.popen.pid, signal.SIGKILL)
    assert proc.popen.wait(10) == -signal.SIGKILL

    again = start_run(local_cli, drop, out, "--recursive", name="restarted")
    wanted = outputs(layout)
    subs = [str(Path(rel).with_suffix(".srt")) for rel in layout]

    def all_cleaned() -> bool:
        rows = journal(local_cli.state_dir, "SELECT state, reason FROM files")
        assert not [r for r in rows if r[0] == "FAILED"], rows
        return len(rows) == len(layout) and {r[0] for r in rows} == {"CLEANED"}

    wait_until(all_cleaned, "every file cleaned after the restart", procs=(again,))
    assert again.stop() == 130, again
    assert not [p for p in files_in(out) if PART_SUFFIX in p or "/." in f"/{p}"]
    check_tree(out, wanted, extra=tuple(subs))
    for rel in layout:
        assert (out / rel).with_suffix(".srt").read_text() == rel
