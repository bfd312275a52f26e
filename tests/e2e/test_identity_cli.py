"""What a file *is* (issue 13, cases 1-4), as a user meets it through the CLI.

A job transcodes a snapshot of the file taken when it was queued, not a link to a file
that can still change; a file is known by its whole content (BLAKE3), its name, and
what each preset makes (its digest). Every test here failed on b4b9859.

Content is told apart by the client, before anything is uploaded: the copies and the rename
run on the local backend only, for time. The snapshot (case 1) runs on both, as each
backend's store takes it its own way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_harness import BACKENDS, Cli, Proc, by_stage, names, open_cli, wait_until

from conftest import FFMPEG, Clip, check_output

SETTLE = "0.3"
#: Where an edit lands in the WAV: past the old fingerprint's first 1 MiB sample and
#: before its middle one (which starts near 5 MiB in an 11.5 MB file).
EDIT_OFFSET = 2 * 1024 * 1024
EDIT_BYTES = 200_000


@pytest.fixture(params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, request.param)


@pytest.fixture
def local_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


@pytest.fixture(scope="module")
def five_seconds(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """A 5 s clip, told apart from the 2 s ones by its duration."""
    path = tmp_path_factory.mktemp("five") / "five.mp4"
    subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=5",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return Clip(path, 5.0, 240, True)


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 s of mono 48 kHz PCM (11.5 MB): room for an edit between the old samples."""
    path = tmp_path_factory.mktemp("wav") / "take.wav"
    subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=120",
            "-ac",
            "1",
            "-c:a",
            "pcm_s16le",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return path


def start_run(cli: Cli, drop: Path, out: Path, *extra: str, name: str = "run") -> Proc:
    proc = cli.start(name, "run", drop, out, "--settle", SETTLE, *extra)
    proc.wait_for_log("watching")
    return proc


def stop(proc: Proc) -> None:
    assert proc.stop() == (130 if proc.argv[3] == "run" else 0), proc  # after Ctrl+C
    assert "Traceback" not in proc.stderr, proc


def rewrite_in_place(path: Path, data: bytes) -> None:
    """What ``cp other path`` does to an existing file: same inode, new content."""
    with path.open("r+b") as fh:
        fh.truncate(0)
        fh.write(data)


def by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    recent = status["recent"]
    assert isinstance(recent, list)
    return {Path(r["path"]).name: r for r in recent}


def completed_jobs(*procs: Proc) -> int:
    return sum(len(re.findall(r"job \w+ completed", p.stderr)) for p in procs)


# --- case 1: a snapshot, not a link ---------------------------------------------------------------


def test_a_source_rewritten_after_it_was_taken_still_gets_its_own_output(
    cli: Cli, tmp_path: Path, five_seconds: Clip, clips: dict[str, Clip]
) -> None:
    """The 5 s clip is taken (its job waits for a worker), then rewritten in place with a
    2 s clip: the 5 s version is what its job transcodes, and the 2 s one is a new version
    with an output of its own. On b4b9859 the store hard-linked the source, so both
    outputs held the 2 s clip."""
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    run = start_run(cli, drop, out, "--workers", "0")
    shutil.copyfile(five_seconds.path, drop / "second.mp4")
    wait_until(
        lambda: [f["stage"] for f in cli.status()["in_flight"]] == ["waiting for a worker"],
        "second.mp4 to be taken and its job queued",
        procs=(run,),
        interval=0.2,
    )
    rewrite_in_place(drop / "second.mp4", clips["h264.mp4"].path.read_bytes())

    worker = cli.start("worker", "worker")
    wait_until(
        lambda: {"second.mp4", "second (1).mp4"} <= set(names(out)),
        "the outputs of both versions",
        procs=(run, worker),
        interval=0.2,
    )
    stop(run)
    stop(worker)

    check_output(out / "second.mp4", five_seconds)
    check_output(out / "second (1).mp4", clips["h264.mp4"])
    assert names(out) == ["second (1).mp4", "second.mp4"]
    assert by_stage(cli.status()) == {"done": 2}
    cli.assert_no_leftovers()


# --- case 2: the whole content --------------------------------------------------------------------


def test_a_same_size_edit_between_the_old_samples_is_a_new_version(
    local_cli: Cli, tmp_path: Path, long_wav: Path
) -> None:
    """An edit the sampled fingerprint never read: a copy with 200 kB zeroed at 2 MiB is
    its own file, and the original edited so in place is a new version of it."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    take, edit = folder / "take.wav", folder / "edit.wav"
    shutil.copyfile(long_wav, take)
    shutil.copyfile(long_wav, edit)
    with edit.open("r+b") as fh:
        fh.seek(EDIT_OFFSET)
        fh.write(bytes(EDIT_BYTES))
    assert take.stat().st_size == edit.stat().st_size

    both = local_cli.run("transcode", take, edit, "-o", out, "--preset", "audio-aac")
    assert both.returncode == 0, both
    assert "same content" not in both.stdout + both.stderr, both
    assert names(out) == ["edit.m4a", "take.m4a"]

    with take.open("r+b") as fh:  # the same edit, now in place
        fh.seek(EDIT_OFFSET)
        fh.write(bytes(EDIT_BYTES))
    again = local_cli.run("transcode", take, "-o", out, "--preset", "audio-aac")
    assert again.returncode == 0, again
    assert re.search(r"^ok\s+take\.wav -> take \(1\)\.m4a", again.stdout, re.M), again.stdout
    assert names(out) == ["edit.m4a", "take (1).m4a", "take.m4a"]
    local_cli.assert_no_leftovers()


# --- case 3: the same content under another name --------------------------------------------------


def test_a_copy_dropped_with_its_original_gets_a_copy_of_the_output(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """Two byte-identical files dropped together while ``run`` runs: both get an output,
    one transcode. On b4b9859 the second vanished (in neither the log nor ``status``)."""
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    run = start_run(local_cli, drop, out)
    shutil.copyfile(clips["mjpeg.avi"].path, drop / "one.avi")
    shutil.copyfile(clips["mjpeg.avi"].path, drop / "two.avi")

    wait_until(
        lambda: {"one.mp4", "two.mp4"} <= set(names(out)),
        "an output for each of the two copies",
        procs=(run,),
        interval=0.2,
    )
    stop(run)

    check_output(out / "one.mp4", clips["mjpeg.avi"])
    check_output(out / "two.mp4", clips["mjpeg.avi"])
    assert (out / "one.mp4").read_bytes() == (out / "two.mp4").read_bytes()
    assert names(out) == ["one.mp4", "two.mp4"]
    assert completed_jobs(run) == 1, run
    warned = [ln for ln in run.stderr.splitlines() if "WARNING" in ln and "same content" in ln]
    assert len(warned) == 1 and "not transcoded again" in warned[0], run
    status = local_cli.status()
    assert by_stage(status) == {"done": 2}, status
    details = {name: r.get("same_as") for name, r in by_name(status).items()}
    copy = "two.avi" if details["two.avi"] else "one.avi"
    original = "one.avi" if copy == "two.avi" else "two.avi"
    assert details == {copy: original, original: None}, details
    local_cli.assert_no_leftovers()


def test_at_start_up_a_copy_of_a_done_file_is_copied_and_a_renamed_one_is_not_redone(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """A copy found at start-up gets its output, said at the default log level (on
    b4b9859: skipped, said only at INFO); a rename of a done file is not done again."""
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    shutil.copyfile(clips["mjpeg.avi"].path, drop / "a1.avi")
    first = start_run(local_cli, drop, out)
    wait_until(lambda: "a1.mp4" in names(out), "a1.mp4", procs=(first,), interval=0.2)
    stop(first)

    shutil.copyfile(drop / "a1.avi", drop / "a2.avi")
    os.rename(drop / "a1.avi", drop / "b1.avi")
    again = start_run(local_cli, drop, out, name="again")
    wait_until(lambda: "a2.mp4" in names(out), "a2.mp4, a copy", procs=(again,), interval=0.2)
    wait_until(
        lambda: "b1.avi" in again.stderr, "the rename to be logged", procs=(again,), timeout=15
    )
    stop(again)

    assert names(out) == ["a1.mp4", "a2.mp4"]
    assert (out / "a2.mp4").read_bytes() == (out / "a1.mp4").read_bytes()
    assert completed_jobs(again) == 0, again
    [copied] = [ln for ln in again.stderr.splitlines() if "WARNING" in ln and "a2.avi" in ln]
    assert "same content as a1.avi" in copied, copied
    [renamed] = [ln for ln in again.stderr.splitlines() if "WARNING" in ln and "b1.avi" in ln]
    assert "a1.avi" in renamed and "not transcoded again" in renamed, renamed

    status = local_cli.status()
    assert by_stage(status) == {"done": 3}, status
    records = by_name(status)
    assert records["a2.avi"]["same_as"] == "a1.avi"
    assert records["b1.avi"]["same_as"] == "a1.avi"
    assert [o["path"] for o in records["b1.avi"]["outputs"]] == [str(out.resolve() / "a1.mp4")]
    text = local_cli.run("status", env={"COLUMNS": "500"})
    assert re.search(r"a2\.avi → a2\.mp4 .*· same content as a1\.avi", text.stdout), text.stdout
    local_cli.assert_no_leftovers()


def test_transcode_of_a_copy_says_where_its_output_came_from(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    shutil.copyfile(clips["h264.mp4"].path, folder / "one.mp4")
    first = local_cli.run("transcode", folder / "one.mp4", "-o", out)
    assert first.returncode == 0, first
    shutil.copyfile(clips["h264.mp4"].path, folder / "two.mp4")

    second = local_cli.run("transcode", folder / "two.mp4", "-o", out)

    assert second.returncode == 0, second
    assert re.search(
        r"^ok\s+two\.mp4 -> two\.mp4 \(same content as one\.mp4\)$", second.stdout, re.M
    ), second.stdout
    assert names(out) == ["one.mp4", "two.mp4"]
    assert "completed" not in second.stderr, second.stderr


# --- case 4: what the output is -------------------------------------------------------------------


def test_a_changed_preset_makes_a_new_output_and_force_redoes_a_file(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """crf 26 -> 30 in a custom preset is a new output (on b4b9859: ``ok``, nothing new);
    ``--force`` makes one even when nothing changed."""
    clip = clips["h264.mp4"]
    out = tmp_path / "out"
    config = tmp_path / "config.toml"

    def transcode(crf: int, *extra: str) -> subprocess.CompletedProcess[str]:
        config.write_text(f'[presets.mine]\nextends = "web-720p"\ncrf = {crf}\n')
        return local_cli.run(
            "transcode", clip.path, "-o", out, "--preset", "mine", "--config", config, *extra
        )

    for crf, expected in ((26, ["h264.mp4"]), (30, ["h264 (1).mp4", "h264.mp4"])):
        result = transcode(crf)
        assert result.returncode == 0, result
        assert names(out) == expected, (crf, result.stdout)

    unchanged = transcode(30)
    assert unchanged.returncode == 0, unchanged
    assert names(out) == ["h264 (1).mp4", "h264.mp4"]

    forced = transcode(30, "--force")
    assert forced.returncode == 0, forced
    assert re.search(r"^ok\s+h264\.mp4 -> h264 \(2\)\.mp4$", forced.stdout, re.M), forced.stdout
    for name in names(out):
        check_output(out / name, clip)
    status = json.loads(local_cli.run("status", "--json").stdout)
    assert by_stage(status) == {"done": 3}, status
    local_cli.assert_no_leftovers()


def test_run_force_redoes_the_files_it_finds_done(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    shutil.copyfile(clips["h264.mp4"].path, drop / "clip.mp4")
    first = start_run(local_cli, drop, out)
    wait_until(lambda: "clip.mp4" in names(out), "clip.mp4", procs=(first,), interval=0.2)
    stop(first)

    forced = start_run(local_cli, drop, out, "--force", name="forced")
    wait_until(lambda: "clip (1).mp4" in names(out), "clip (1).mp4", procs=(forced,), interval=0.2)
    stop(forced)

    assert names(out) == ["clip (1).mp4", "clip.mp4"]
    check_output(out / "clip (1).mp4", clips["h264.mp4"])
    local_cli.assert_no_leftovers()
