"""The in-place swap (``library``) on real files: a child process killed (SIGKILL, by the
module's test hook) right after each step leaves the original or the whole output at the
source's path, never neither, and the start-up recovery finishes the swap once; the trash
is swept after --keep-days; the dry run's estimate.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import shutil
import signal
from pathlib import Path

import pytest

from autotranscode import library as library_mod
from autotranscode.journal import FileRecord, FileState
from autotranscode.library import KILL_AFTER_STEP_ENV, Library, Step
from autotranscode.media import presets
from autotranscode.media.probe import probe
from autotranscode.plan import estimate_size
from autotranscode.settings import Settings

from conftest import Clip

STEPS = range(1, 9)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_for(source: Path, output: Path) -> FileRecord:
    st = source.stat()
    return FileRecord(
        id=f"id-{source.name}",
        path=source,
        out_dir=source.parent,
        presets=("web-720p",),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        state=FileState.DONE,
        job_id="job",
        input_key="key",
        outputs={"out/key": str(output)},
        reason=None,
        updated_at=0.0,
    )


def swap_in_child(state: Path, record: FileRecord, step: int) -> int:
    """``Library.replace`` in a forked child that the hook kills after ``step``; its status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.environ[KILL_AFTER_STEP_ENV] = str(step)
            Library(state, Settings(in_place=True, replace="always")).replace(record)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


@pytest.mark.parametrize("same_extension", [False, True], ids=["avi-to-mp4", "mp4-over-mp4"])
def test_a_kill_after_any_step_loses_nothing(
    tmp_path: Path, clips: dict[str, Clip], same_extension: bool
) -> None:
    made = clips["h264.mp4"].path  # stands for the output: 2 s, as the source
    for step in STEPS:
        folder, state = tmp_path / f"step{step}" / "Show", tmp_path / f"state{step}"
        folder.mkdir(parents=True)
        source = folder / ("ep1.mp4" if same_extension else "ep1.avi")
        shutil.copyfile(clips["mjpeg.avi"].path, source)
        output = folder / ("ep1 (1).mp4" if same_extension else "ep1.mp4")
        shutil.copyfile(made, output)
        original, result = digest(source), digest(made)
        record = record_for(source, output)

        status = swap_in_child(state, record, step)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, step
        final = source if same_extension else output
        here = {p.name: digest(p) for p in folder.iterdir()}
        assert here.get(source.name) == original or here.get(final.name) == result, step
        assert set(here.values()) <= {original, result}, step  # never a part
        trash = sorted(p for p in (state / "trash").rglob("*") if p.is_file())
        kept = [digest(p) for p in trash] + list(here.values())
        assert original in kept and result in kept, step  # neither one lost

        lib = Library(state, Settings(in_place=True, replace="always"))
        try:
            recovered = lib.recover()
            done = lib.replace(record)  # the pipeline's own call, as the file resumes
        finally:
            lib.close()
        assert recovered == ([] if step in (1, 8) else [record.id]), step
        assert done.kept is None and done.path == final
        assert sorted(p.name for p in folder.iterdir()) == [final.name], step
        assert digest(final) == result
        trash = sorted(p for p in (state / "trash").rglob("*") if p.is_file())
        assert [digest(p) for p in trash] == [original], step
        assert trash[0].parts[-3:] == ("Show", source.name) or trash[0].name == source.name


def test_replace_keeps_mode_and_mtime_and_an_original_that_changed(
    tmp_path: Path, clips: dict[str, Clip]
) -> None:
    source, output = tmp_path / "a.avi", tmp_path / "a.mp4"
    shutil.copyfile(clips["mjpeg.avi"].path, source)
    shutil.copyfile(clips["h264.mp4"].path, output)
    os.chmod(source, 0o604)
    os.utime(source, ns=(10**18, 10**18))
    record = record_for(source, output)
    lib = Library(tmp_path / "state", Settings(in_place=True))
    try:
        assert lib.replace(record).path == output
        st = output.stat()
        assert (st.st_mode & 0o777, st.st_mtime_ns) == (0o604, 10**18)
        assert not source.exists()

        shutil.copyfile(clips["mjpeg.avi"].path, source)  # a new version after the transcode
        shutil.copyfile(clips["h264.mp4"].path, tmp_path / "b.mp4")
        stale = dataclasses.replace(record_for(source, tmp_path / "b.mp4"), id="id-2")
        with source.open("ab") as fh:
            fh.write(b"more")
        result = lib.replace(stale)
        assert result.kept == "the original changed since it was transcoded"
        assert source.exists() and not (tmp_path / "b.mp4").exists()
    finally:
        lib.close()
    # The original put back, and done "as before" (same content): its output is the one
    # swapped in then, which a swap that keeps the original never removes.
    again = dataclasses.replace(record_for(source, output), id="id-3")
    never = Library(tmp_path / "state", Settings(in_place=True, replace="never"))
    try:
        assert never.replace(again).kept is not None
    finally:
        never.close()
    assert output.exists() and source.exists()


def test_sidecars_follow_only_a_changed_stem(tmp_path: Path, clips: dict[str, Clip]) -> None:
    """ep1.mp4 was another file already: the output is ep1 (1).mp4, and ep1's sidecars
    take its stem; ep2 -> ep2.mp4 keeps its stem, and its sidecar stays as it is."""
    for name in ("ep1.avi", "ep2.avi"):
        shutil.copyfile(clips["mjpeg.avi"].path, tmp_path / name)
    for name in ("ep1.mp4", "ep1 (1).mp4", "ep2.mp4"):
        shutil.copyfile(clips["h264.mp4"].path, tmp_path / name)
    for name in ("ep1.en.srt", "ep1.nfo", "ep2.srt"):
        (tmp_path / name).write_text(name)
    lib = Library(tmp_path / "state", Settings(in_place=True, replace="always"))
    try:
        lib.replace(record_for(tmp_path / "ep1.avi", tmp_path / "ep1 (1).mp4"))
        lib.replace(record_for(tmp_path / "ep2.avi", tmp_path / "ep2.mp4"))
    finally:
        lib.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "ep1 (1).en.srt",
        "ep1 (1).mp4",
        "ep1 (1).nfo",
        "ep1.mp4",
        "ep2.mp4",
        "ep2.srt",
    ]


def test_the_trash_is_swept_after_keep_days(tmp_path: Path) -> None:
    trash = tmp_path / "originals"
    today = datetime.date.today()
    days = {n: trash / (today - datetime.timedelta(days=n)).isoformat() for n in (0, 2, 3, 40)}
    for folder in days.values():
        (folder / "lib").mkdir(parents=True)
        (folder / "lib" / "ep1.avi").write_bytes(b"x")
    (trash / "not-a-day").mkdir()
    lib = Library(tmp_path / "state", Settings(in_place=True, keep_originals=trash, keep_days=2))
    try:
        lib.start(lambda fid: None)  # the sweep at start-up
    finally:
        lib.close()
    assert sorted(p.name for p in trash.iterdir()) == sorted(
        [days[0].name, days[2].name, "not-a-day"]
    )


def test_the_estimate_follows_picture_size_and_codec(clips: dict[str, Clip]) -> None:
    source = probe(clips["h264.mp4"].path)
    x264 = estimate_size(presets.DEFAULT_CATALOG.get("web-720p"), source)
    x265 = estimate_size(presets.DEFAULT_CATALOG.get("hevc-1080p"), source)
    # 320x240, 25 fps, 2 s: 0.10 bit a pixel + 128 kbit/s of audio
    assert x264 == int((0.10 * 320 * 240 * 25 + 128_000) * source.duration / 8)  # type: ignore[operator]
    assert x265 < x264
    assert library_mod.size_text(1_234_567) == "1.2 MB"
    assert Step.DONE == "DONE"
