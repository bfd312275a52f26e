"""``autotranscode transcode`` (and the small commands) as a user runs them: a subprocess.

Real ffmpeg on the generated clips, on both backends (aws: moto's server over HTTP);
outputs are checked by probing them, and the cloud side must be empty afterwards.

Some tests run on the local backend only, for time, where the backend does not change what
they test: which files a folder argument takes (the client expands it before any upload),
a second ``transcode`` of a done file (the journal answers before anything is sent;
test_run_cli's restart and test_damaged_journal's lost journal do it on aws too), and
``status`` (it takes no ``--backend``). A whole batch, a partly done file, a failure's log
and separate workers run on aws too.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import BACKENDS, Cli, by_stage, listed, names, open_cli, wait_until

from autotranscode.journal import Journal

from conftest import Clip, check_output


@pytest.fixture(params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, request.param)


@pytest.fixture
def local_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """For what does not depend on the backend (help, config resolution)."""
    yield from open_cli(request, tmp_path, "local")


@pytest.fixture
def videos(clips: dict[str, Clip]) -> dict[str, Clip]:
    """The good clips web-720p takes: all but the audio-only one."""
    return {name: c for name, c in clips.items() if c.has_video}


def output_name(source: str, ext: str = ".mp4") -> str:
    return Path(source).stem + ext


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def audio_clip(path: Path, like: Clip) -> Clip:
    return Clip(path, like.duration, None, has_audio=True, has_video=False)


# --- transcode ------------------------------------------------------------------------------------


def test_good_clips_are_transcoded_and_a_broken_one_fails_alone(
    cli: Cli, tmp_path: Path, videos: dict[str, Clip], broken: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    inputs = [c.path for c in videos.values()] + [broken["notes.mp4"]]

    result = cli.run("transcode", *inputs, "--out", out)

    assert result.returncode == 1, result
    assert_no_traceback(result.stderr)
    for name in videos:
        pattern = rf"^ok\s+{re.escape(name)} -> {re.escape(output_name(name))}$"
        assert re.search(pattern, result.stdout, re.M), (name, result.stdout)
    assert re.search(r"^FAILED\s+notes\.mp4: .*not a readable media file", result.stdout, re.M), (
        result.stdout
    )
    assert re.search(rf"^{len(videos)} done, 1 failed$", result.stdout, re.M), result.stdout

    assert names(out) == sorted(output_name(n) for n in videos)  # no temp or part files
    for name, clip in videos.items():
        check_output(out / output_name(name), clip)
    check_output(out / "prores 10bit.mp4", videos["prores 10bit.mov"])  # 1080 lines → 720
    cli.assert_no_leftovers()

    status = cli.status()
    assert by_stage(status) == {"done": len(videos), "failed": 1}, status
    [failed] = listed(status, "failed")
    assert Path(failed["path"]).name == "notes.mp4"
    assert "not a readable media file" in failed["reason"]


def test_an_output_that_cannot_be_made_leaves_the_file_partly_done(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """An audio preset on a file without audio: the MP4 is delivered all the same, the
    file is partly done with the audio output's reason, and ``transcode`` exits 1."""
    clip = clips["no audio.mp4"]
    src = tmp_path / "in" / "silent.mp4"
    src.parent.mkdir()
    shutil.copyfile(clip.path, src)
    out = tmp_path / "out"

    result = cli.run(
        "transcode", src, "--out", out, "--preset", "audio-aac", "--preset", "web-720p",
        "--on-success", "delete",
    )  # fmt: skip

    assert result.returncode == 1, result
    assert_no_traceback(result.stderr)
    reason = "preset audio-aac needs an audio stream and the input has none"
    line = rf"^PARTLY DONE silent\.mp4 -> silent\.web-720p\.mp4; not made: audio-aac \({reason}\)"
    assert re.search(line, result.stdout, re.M), result.stdout
    assert re.search(r"^0 done, 1 partly done, 0 failed$", result.stdout, re.M), result.stdout
    assert names(out) == ["silent.web-720p.mp4"]
    check_output(out / "silent.web-720p.mp4", clip)
    assert src.exists(), "the source of a partly done file is still needed"
    cli.assert_no_leftovers()

    journal = Journal(cli.state_dir / "journal.db")
    try:
        [record] = journal.recent()
        audio, video = sorted(journal.story.outputs_of(record.id), key=lambda o: o.preset)
        facts = journal.get(record.id)
    finally:
        journal.close()
    assert (audio.preset, audio.status, audio.reason) == ("audio-aac", "failed", reason)
    assert audio.path is None
    assert (video.preset, video.status) == ("web-720p", "done")
    assert video.path == str((out / "silent.web-720p.mp4").resolve())
    assert video.size == (out / "silent.web-720p.mp4").stat().st_size
    assert (video.width, video.height) == (320, 240) and video.duration
    assert facts is not None and facts.media is not None
    assert facts.media["video_codec"] == "h264" and facts.media["audio_codec"] is None
    assert (facts.media["width"], facts.media["height"]) == (320, 240)


def test_retry_of_a_partly_done_file_makes_only_the_outputs_it_lacks(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """A custom preset ffmpeg refuses fails alone; once the config is mended, ``retry``
    makes that output and leaves the one delivered before as it is (no second copy)."""
    clip = clips["h264.mp4"]
    config = tmp_path / "config.toml"
    config.write_text('[presets.mine]\nextends = "web-720p"\nextra_args = ["-level", "9.9"]\n')
    out = tmp_path / "out"
    presets = ("--preset", "mine", "--preset", "audio-aac", "--config", config)

    first = local_cli.run("transcode", clip.path, "-o", out, *presets)

    assert first.returncode == 1, first
    line = r"^PARTLY DONE h264\.mp4 -> h264\.audio-aac\.m4a; not made: mine \(.+\)$"
    assert re.search(line, first.stdout, re.M), first.stdout
    assert names(out) == ["h264.audio-aac.m4a"]
    before = (out / "h264.audio-aac.m4a").stat()

    config.write_text('[presets.mine]\nextends = "web-720p"\n')
    again = local_cli.run("retry", clip.path, "--config", config)

    assert again.returncode == 0, again
    assert_no_traceback(again.stderr)
    assert re.search(r"^ok\s+h264\.mp4 -> h264\.mp4$", again.stdout, re.M), again.stdout
    assert names(out) == ["h264.audio-aac.m4a", "h264.mp4"]
    assert (out / "h264.audio-aac.m4a").stat().st_mtime_ns == before.st_mtime_ns
    check_output(out / "h264.mp4", clip)
    done = local_cli.run("retry", clip.path, "--config", config)
    assert done.returncode == 2, done
    assert "h264.mp4: done already, nothing to retry" in done.stderr, done
    local_cli.assert_no_leftovers()


def test_a_folder_of_good_clips_exits_0(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip], videos: dict[str, Clip]
) -> None:
    """A folder argument: its media files are taken; hidden and non-media files are not."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, clip in videos.items():
        shutil.copyfile(clip.path, folder / name)
    (folder / "notes.txt").write_text("not media\n")
    # Were it taken, this one would fail (audio only, for a video preset): it must not be.
    shutil.copyfile(clips["tone.m4a"].path, folder / ".hidden.mp4")
    out = tmp_path / "out"

    result = local_cli.run("transcode", folder, "-o", out)

    assert result.returncode == 0, result
    assert_no_traceback(result.stderr)
    assert re.search(rf"^{len(videos)} done, 0 failed$", result.stdout, re.M), result.stdout
    assert "FAILED" not in result.stdout
    assert names(out) == sorted(output_name(n) for n in videos)
    for name, clip in videos.items():
        check_output(out / output_name(name), clip)
    local_cli.assert_no_leftovers()


def test_transcoding_the_same_file_again_does_not_make_a_second_output(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    clip = clips["vp9.mkv"]
    out = tmp_path / "out"

    first = local_cli.run("transcode", clip.path, "--out", out)
    assert first.returncode == 0, first
    assert names(out) == ["vp9.mp4"]
    before = (out / "vp9.mp4").stat()

    second = local_cli.run("transcode", clip.path, "--out", out)
    assert second.returncode == 0, second
    assert_no_traceback(second.stderr)
    assert re.search(r"^1 done, 0 failed$", second.stdout, re.M), second.stdout
    assert names(out) == ["vp9.mp4"]
    after = (out / "vp9.mp4").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    check_output(out / "vp9.mp4", clip)
    assert by_stage(local_cli.status()) == {"done": 1}
    local_cli.assert_no_leftovers()


# --- separate worker processes --------------------------------------------------------------------


def test_jobs_are_served_by_separate_worker_processes(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """``transcode --workers 0`` relies on ``worker`` processes (two, as on two machines)."""
    # aws: each worker as if on its own machine; local: workers share the client's state dir.
    worker_state = [tmp_path / f"worker{i}" for i in (1, 2)] if cli.backend == "aws" else []
    workers = [
        cli.start(f"worker{i}", "worker", state_dir=worker_state[i - 1] if worker_state else None)
        for i in (1, 2)
    ]
    for w in workers:
        w.wait_for_log("waiting for jobs")
    chosen = {n: clips[n] for n in ("h264.mp4", "mjpeg.avi", "vp9.mkv")}
    out = tmp_path / "out"

    result = cli.run("transcode", *(c.path for c in chosen.values()), "-o", out, "--workers", "0")

    assert result.returncode == 0, (result, *map(str, workers))
    assert re.search(r"^3 done, 0 failed$", result.stdout, re.M), result.stdout
    assert names(out) == sorted(output_name(n) for n in chosen)
    for name, clip in chosen.items():
        check_output(out / output_name(name), clip)
    # Each job was done exactly once, by one of the workers.
    wait_until(
        lambda: sum(w.stderr.count("completed") for w in workers) >= 3,
        "the workers to log their jobs",
        procs=tuple(workers),
    )
    assert sum(w.stderr.count("completed") for w in workers) == 3, "\n".join(map(str, workers))

    for w in workers:
        w.interrupt()  # both first: they stop in parallel
    for w in workers:
        assert w.wait_exit() == 0, w
        assert_no_traceback(w.stderr)
    cli.assert_no_leftovers()


# --- presets and help -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        pytest.param(
            ["run"],
            ["DROP", "OUT", "--settle", "--poll", "--recursive", "--on-success", "--state-dir"],
            id="run",
        ),
        pytest.param(
            ["transcode"],
            ["FILES", "--out", "--preset", "--workers", "--on-success", "--backend", "--config"],
            id="transcode",
        ),
        pytest.param(
            ["worker"],
            ["--workers", "--backend", "--endpoint-url", "--name", "--region"],
            id="worker",
        ),
        pytest.param(["presets"], ["show"], id="presets"),
        pytest.param(["presets", "show"], ["NAME"], id="presets-show"),
        pytest.param(["status"], ["--json", "--limit", "--state-dir"], id="status"),
        pytest.param(["retry"], ["FILES", "--all-failed", "--state-dir"], id="retry"),
    ],
)
def test_help(local_cli: Cli, command: list[str], mentions: list[str]) -> None:
    result = local_cli.run(*command, "--help", common=False)
    assert result.returncode == 0, result
    assert result.stdout.startswith("Usage:"), result.stdout
    for word in mentions:
        assert word in result.stdout, (word, result.stdout)
    assert result.stderr == ""


def test_top_level_help_lists_the_commands(local_cli: Cli) -> None:
    result = local_cli.run("--help", common=False)
    assert result.returncode == 0, result
    for command in ("run", "transcode", "worker", "presets", "status", "retry"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), (command, result.stdout)


def test_presets_are_listed_and_shown(local_cli: Cli) -> None:
    listed = local_cli.run("presets", common=False)
    assert listed.returncode == 0, listed
    for preset in (
        "web-720p",
        "web-1080p",
        "hevc-1080p",
        "webm-vp9",
        "av1-1080p",
        "audio-aac",
        "audio-mp3",
        "hls",
        "poster",
        "thumbnails",
    ):
        assert preset in listed.stdout, listed.stdout

    shown = local_cli.run("presets", "show", "web-720p", common=False)
    assert shown.returncode == 0, shown
    [line] = shown.stdout.splitlines()
    assert line.split()[0] == "ffmpeg", line
    assert "+faststart" in line and "libx264" in line and "scale=1280:720:" in line, line

    unknown = local_cli.run("presets", "show", "web-4k", common=False)
    assert unknown.returncode == 2, unknown
    assert "web-720p" in unknown.stderr and "audio-aac" in unknown.stderr, unknown.stderr
    assert_no_traceback(unknown.stderr)


# --- configuration --------------------------------------------------------------------------------


def test_flag_beats_environment_beats_config_file(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    clip = clips["h264.mp4"]
    config = tmp_path / "config.toml"
    config.write_text('preset = "audio-aac"\n')

    from_file = local_cli.run("transcode", clip.path, "-o", tmp_path / "a", "--config", config)
    assert from_file.returncode == 0, from_file
    assert names(tmp_path / "a") == ["h264.m4a"]
    check_output(tmp_path / "a" / "h264.m4a", audio_clip(tmp_path / "a" / "h264.m4a", clip))

    env = {"AUTOTRANSCODE_PRESET": "web-720p"}
    from_env = local_cli.run(
        "transcode", clip.path, "-o", tmp_path / "b", "--config", config, env=env
    )
    assert from_env.returncode == 0, from_env
    assert names(tmp_path / "b") == ["h264.mp4"]
    check_output(tmp_path / "b" / "h264.mp4", clip)

    from_flag = local_cli.run(
        "transcode",
        clip.path,
        "-o",
        tmp_path / "c",
        "--config",
        config,
        "--preset",
        "audio-aac",
        env=env,
    )
    assert from_flag.returncode == 0, from_flag
    assert names(tmp_path / "c") == ["h264.m4a"]
    check_output(tmp_path / "c" / "h264.m4a", audio_clip(tmp_path / "c" / "h264.m4a", clip))


def test_the_config_file_can_come_from_the_environment(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    clip = clips["tone.m4a"]
    config = tmp_path / "config.toml"
    config.write_text('preset = ["audio-aac"]\nworkers = 1\n')
    out = tmp_path / "out"

    result = local_cli.run(
        "transcode", clip.path, "-o", out, env={"AUTOTRANSCODE_CONFIG": str(config)}
    )

    assert result.returncode == 0, result
    assert names(out) == ["tone.m4a"]
    check_output(out / "tone.m4a", clip)


def test_an_unknown_config_key_is_a_usage_error(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('preset = "web-720p"\ncolour = "blue"\n')
    out = tmp_path / "out"

    result = local_cli.run("transcode", clips["h264.mp4"].path, "-o", out, "--config", config)

    assert result.returncode == 2, result
    assert_no_traceback(result.stderr)
    [line] = [ln for ln in result.stderr.splitlines() if "colour" in ln]
    assert line.lower().startswith("error"), result.stderr
    assert str(config) in line, line
    assert not out.exists()


def test_an_unknown_preset_is_a_usage_error_listing_the_known_ones(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    out = tmp_path / "out"
    result = local_cli.run("transcode", clips["h264.mp4"].path, "-o", out, "--preset", "web-4k")

    assert result.returncode == 2, result
    assert_no_traceback(result.stderr)
    [line] = [ln for ln in result.stderr.splitlines() if "web-4k" in ln]
    assert line.lower().startswith("error"), result.stderr
    for known in ("web-720p", "web-1080p", "audio-aac"):
        assert known in line, line
    assert not out.exists()


# --- status ---------------------------------------------------------------------------------------


def test_status_on_an_empty_state_dir(local_cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "fresh"
    state.mkdir()

    text = local_cli.run("status", state_dir=state)
    assert text.returncode == 0, text
    assert "no files yet" in text.stdout
    assert_no_traceback(text.stderr)

    status = local_cli.status(state_dir=state)
    assert status["schema_version"] == 1, status
    assert status["totals"]["files"] == 0 and by_stage(status) == {}, status
    assert status["in_flight"] == [] and status["recent"] == [], status


def test_status_watch_follows_until_ctrl_c(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    done = local_cli.run("transcode", clips["h264.mp4"].path, "-o", tmp_path / "out")
    assert done.returncode == 0, done
    watcher = local_cli.start("watch", "status", "--watch")
    wait_until(
        lambda: "1 done" in watcher.stdout, "status --watch to show the journal", procs=(watcher,)
    )
    assert watcher.stop() == 0, watcher
    assert_no_traceback(watcher.stderr)


def test_ctrl_c_stops_a_waiting_transcode_at_once_and_a_rerun_finishes_it(
    local_cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """With no worker to take its job, transcode sleeps until Ctrl+C, which must wake it."""
    clip = clips["h264.mp4"]
    out = tmp_path / "out"
    waiting = local_cli.start(
        "transcode", "transcode", clip.path, "-o", out, "--workers", "0", "-v"
    )
    waiting.wait_for_log("queued")

    assert waiting.stop() == 130, waiting
    assert "interrupted" in waiting.stdout + waiting.stderr, waiting
    assert_no_traceback(waiting.stderr)
    assert names(out) == []

    again = local_cli.run("transcode", clip.path, "-o", out)
    assert again.returncode == 0, again
    check_output(out / "h264.mp4", clip)
    local_cli.assert_no_leftovers()


# --- the cause of a failure, and each file's log ------------------------------------------------


def test_a_rejected_option_fails_with_ffmpeg_s_cause_and_every_file_has_a_log(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """``-level 9.9`` passes the preset's checks and fails when ffmpeg opens the encoder:
    the reason is that, not ffmpeg's last words; the file's log in the state dir tells the
    command line, what ffmpeg said and each step, for it and for a file done after it."""
    config = tmp_path / "config.toml"
    config.write_text('[presets.bad-level]\nextends = "web-720p"\nextra_args = ["-level", "9.9"]\n')
    logs = cli.state_dir / "logs"

    failed = cli.run(
        "transcode", clips["h264.mp4"].path, "-o", tmp_path / "a", "--config", config,
        "--preset", "bad-level",
    )  # fmt: skip

    assert failed.returncode == 1, failed
    assert_no_traceback(failed.stderr)
    cause = "Error parsing option 'level' with value '9.9'"
    assert re.search(rf"^FAILED\s+h264\.mp4: ffmpeg failed .*{cause}", failed.stdout, re.M), (
        failed.stdout
    )
    assert "Nothing was written" not in failed.stdout
    [failed_log] = list(logs.glob("*.log"))
    text = failed_log.read_text(encoding="utf-8")
    assert "-level 9.9" in text and f"[error] {cause}" in text
    assert re.search(rf"client: \[\+[\d.]+s\] failed: ffmpeg failed .*{cause}", text), text

    done = cli.run("transcode", clips["no audio.mp4"].path, "-o", tmp_path / "b")

    assert done.returncode == 0, done
    [done_log] = [p for p in logs.glob("*.log") if p != failed_log]
    text = done_log.read_text(encoding="utf-8")
    assert "ffmpeg exited with status 0: " in text and "    [info] Stream mapping:" in text
    assert re.search(r"client: \[\+[\d.]+s\] done: no audio\.mp4$", text, re.M), text
    assert sorted(p.name for p in logs.iterdir()) == sorted([failed_log.name, done_log.name])
    cli.assert_no_leftovers()  # the jobs' logs went from the store with their outputs
