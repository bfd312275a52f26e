"""Converting a library in place, through the CLI: ``library`` replaces each file with its
output (after a ``--dry-run`` that writes nothing), keeps the original in the trash, keeps
a source whose output would be bigger, never converts a replaced file again, and a
``kill -9`` at every step of the swap leaves the original or the output at the path, and a
restart finishes it, once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli, open_cli

from autotranscode.library import KILL_AFTER_STEP_ENV, LIBRARY_DB
from autotranscode.media.probe import probe, read_stamp

from conftest import FFMPEG, Clip, check_output

#: Quick to encode; tests that need a size comparison say which way.
PRESET = ("--preset", "web-720p")
#: 2020-01-01: an mtime a replacement must keep.
OLD_MTIME_NS = 1_577_836_800 * 10**9


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """H.264 at the worst quality: any web-720p output of it is bigger."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.mp4"
    lavfi = "testsrc2=size=320x240:rate=25:duration=2"
    cmd = [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", lavfi]
    subprocess.run([*cmd, "-c:v", "libx264", "-crf", "51", str(path)], check=True)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def library_of(tmp: Path, clip: Clip, rel: str) -> Path:
    """A library holding ``clip`` at ``rel``, with an old mtime and mode 640."""
    lib = tmp / "lib"
    (lib / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip.path, lib / rel)
    os.chmod(lib / rel, 0o640)
    os.utime(lib / rel, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    return lib


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def trashed(cli: Cli) -> list[Path]:
    return sorted(p for p in (cli.state_dir / "trash").rglob("*") if p.is_file())


def whole_output(path: Path, clip: Clip) -> bool:
    """An output of ours, whole (its duration the source's)."""
    duration = probe(path).duration
    return read_stamp(path) is not None and duration is not None and abs(duration - 2.0) < 0.5


@pytest.mark.parametrize(("clip_name", "step"), [("mjpeg.avi", 4), ("h264.mp4", 5)])
def test_kill_at_every_step_of_the_swap(
    cli: Cli, clips: dict[str, Clip], clip_name: str, step: int
) -> None:
    """ep1.avi -> ep1.mp4 (both names matter) killed with the original in the trash, and
    ep1.mp4 -> ep1.mp4 killed once the output was renamed over the source: the path holds
    the original or a whole output, never neither; a restart finishes the swap without
    transcoding again. (Every step, on the swap alone: tests/integration/test_library_swap.)"""
    clip = clips[clip_name]
    suffix = Path(clip_name).suffix
    lib = library_of(cli.tmp, clip, f"Show/ep1{suffix}")
    folder, original = lib / "Show", digest(clip.path)
    args = ("library", lib, *PRESET, "--replace", "always")

    killed = cli.run(*args, env={KILL_AFTER_STEP_ENV: str(step)})
    assert killed.returncode == -9, killed.stderr
    names = visible(folder)
    assert names in (["ep1.avi"], ["ep1.avi", "ep1.mp4"], ["ep1.mp4"], ["ep1 (1).mp4", "ep1.mp4"])
    if "ep1.avi" in names:
        assert digest(folder / "ep1.avi") == original
    else:  # the source's path holds the original or the output, whole
        at_path = folder / "ep1.mp4"
        assert digest(at_path) == original or whole_output(at_path, clip)
        assert digest(at_path) == original or [digest(p) for p in trashed(cli)] == [original]

    again = cli.run(*args)
    assert again.returncode == 0, again.stderr
    assert "transcoding" not in again.stderr  # finished, not done again
    assert visible(folder) == ["ep1.mp4"]
    check_output(folder / "ep1.mp4", clip)
    assert [digest(p) for p in trashed(cli)] == [original]
    assert trashed(cli)[0].relative_to(cli.state_dir / "trash").parts[1:] == (
        *folder.resolve().relative_to("/").parts,
        f"ep1{suffix}",
    )


def test_library_replaces_keeps_attributes_and_never_converts_again(
    cli: Cli, clips: dict[str, Clip]
) -> None:
    """A safe first run writes nothing; then the output takes the source's place with its
    mode and mtime; a rescan, with this state dir or a new one, converts nothing again."""
    clip = clips["mjpeg.avi"]
    lib = library_of(cli.tmp, clip, "Show/Season 1/ep1.avi")
    before = sorted(str(p) for p in cli.tmp.rglob("*"))

    dry = cli.run("library", lib, *PRESET, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "encode  Season 1/ep1.avi" in dry.stdout.replace("Show/", ""), dry.stdout
    assert "would save about" in dry.stdout
    assert sorted(str(p) for p in cli.tmp.rglob("*")) == before  # not even a state dir

    done = cli.run("library", lib, *PRESET)
    assert done.returncode == 0, done.stderr
    output = lib / "Show" / "Season 1" / "ep1.mp4"
    assert visible(output.parent) == ["ep1.mp4"]
    check_output(output, clip)
    st = output.stat()
    assert (st.st_mode & 0o777, st.st_mtime_ns) == (0o640, OLD_MTIME_NS)
    assert (cli.state_dir / LIBRARY_DB).is_file()

    for state_dir in (cli.state_dir, cli.tmp / "new-state"):  # a lost state dir, too
        rescan = cli.run("library", lib, *PRESET, state_dir=state_dir)
        assert rescan.returncode == 0, rescan.stderr
        assert "converted in place before" in rescan.stdout, rescan.stdout
        assert "transcoding" not in rescan.stderr
    assert visible(output.parent) == ["ep1.mp4"]


def test_replace_smaller_keeps_a_source_whose_output_is_bigger(cli: Cli, tiny: Path) -> None:
    lib = cli.tmp / "lib"
    lib.mkdir()
    shutil.copyfile(tiny, lib / "tiny.mp4")
    result = cli.run("library", lib, *PRESET)  # --replace smaller by default
    assert result.returncode == 0, result.stderr
    assert "not smaller than the original" in result.stderr
    assert visible(lib) == ["tiny.mp4"]
    assert digest(lib / "tiny.mp4") == digest(tiny)
    assert trashed(cli) == []
    again = cli.run("library", lib, *PRESET)
    assert "done before; skipped" in again.stderr and "transcoding" not in again.stderr
    dry = cli.run("library", lib, *PRESET, "--dry-run")
    assert "skip    tiny.mp4" in dry.stdout and "kept before" in dry.stdout, dry.stdout


def test_in_place_options_refused(cli: Cli, clips: dict[str, Clip]) -> None:
    src = clips["h264.mp4"].path
    with_out = cli.run("transcode", src, "--in-place", "-o", cli.tmp / "out")
    assert with_out.returncode == 2 and "--out: not with --in-place" in with_out.stderr
    dry = cli.run("transcode", src, "--dry-run")
    assert dry.returncode == 2 and "--dry-run: only in place" in dry.stderr


def test_run_in_place_replaces_a_dropped_file_and_leaves_its_output_alone(
    cli: Cli, clips: dict[str, Clip]
) -> None:
    """The watcher sees the output appear beside the source: known by its stamp, never
    taken (no loop)."""
    lib = cli.tmp / "lib"
    (lib / "Show").mkdir(parents=True)
    proc = cli.start("run", "run", lib, "--in-place", "--recursive", *PRESET, "--settle", "0.3")
    proc.wait_for_log("watching")
    shutil.copyfile(clips["mjpeg.avi"].path, lib / "Show" / ".ep1.avi.tmp")
    os.rename(lib / "Show" / ".ep1.avi.tmp", lib / "Show" / "ep1.avi")
    proc.wait_for_log("ep1.mp4: converted in place before (its stamp says so); not taken")
    assert proc.stop() == 130, proc
    assert visible(lib / "Show") == ["ep1.mp4"]
    assert proc.stderr.count("transcoding") == 1
    assert len(trashed(cli)) == 1
