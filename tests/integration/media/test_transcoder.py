"""Real ffmpeg on real media: outputs are probed, failures and cancels leave nothing behind."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import imageio_ffmpeg
import pytest

from autotranscode.errors import ConfigError, MediaError, ProbeError, TranscodeError
from autotranscode.media import presets, runner, transcoder
from autotranscode.media import probe as media
from autotranscode.media.probe import MediaInfo

#: conftest's clips (a ``Clip`` each: path, duration, height, has_audio, has_video).
Clip = Any
#: conftest's copy of h264.mp4 under a name with spaces and non-ASCII characters.
UNICODE_NAME = "Früh stück — 東京 clip.mp4"
VIDEO_CLIPS = ["prores 10bit.mov", "mjpeg.avi", "vp9.mkv", "h264.mp4", "no audio.mp4", UNICODE_NAME]
LONG_SECONDS = 30
#: Generous: how long a cancelled transcode may take to return (it takes well under 1 s).
WAIT_SECONDS = 30


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return transcoder.find_ffmpeg()


@pytest.fixture(scope="module")
def long_clip(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough to be cancelled mid-way, cheap to make: a still 720p picture, 30 s."""
    path = tmp_path_factory.mktemp("long") / "still.mp4"
    lavfi = f"color=c=gray:size=1280x720:rate=25:duration={LONG_SECONDS}"
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", lavfi]
    subprocess.run(
        [*cmd, "-c:v", "libx264", "-preset", "ultrafast", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def _transcode(
    ffmpeg: str, preset_id: str, src: Path, out_dir: Path, **kwargs: object
) -> tuple[MediaInfo, MediaInfo, Path]:
    preset = presets.CATALOG[preset_id]
    source = media.probe(src)
    dst = out_dir / f"out{preset.extension}"
    result = transcoder.transcode(ffmpeg, preset, source, src, dst, **kwargs)  # type: ignore[arg-type]
    return source, result, dst


# --- good clips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VIDEO_CLIPS)
def test_video_clips_become_web_720p(
    ffmpeg: str, clips: dict[str, Clip], tmp_path: Path, name: str
) -> None:
    clip = clips[name]
    fractions: list[float] = []
    source, result, dst = _transcode(
        ffmpeg, "web-720p", clip.path, tmp_path, progress=lambda f, _speed: fractions.append(f)
    )
    probed = media.probe(dst)
    assert probed == result
    assert probed.video_codec == "h264"
    assert probed.audio_codec == ("aac" if clip.has_audio else None)
    assert clip.height is not None
    assert probed.height == min(720, clip.height)
    assert probed.width is not None and probed.height is not None
    assert probed.width % 2 == 0
    assert probed.width / probed.height == pytest.approx(4 / 3 if clip.height == 240 else 16 / 9)
    assert probed.duration == pytest.approx(clip.duration, abs=0.5)
    assert fractions and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert source.height == clip.height


def test_audio_becomes_aac(ffmpeg: str, clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["tone.m4a"]
    fractions: list[float] = []
    _, result, dst = _transcode(
        ffmpeg, "audio-aac", clip.path, tmp_path, progress=lambda f, _speed: fractions.append(f)
    )
    probed = media.probe(dst)
    assert dst.suffix == ".m4a"
    assert probed.audio_codec == "aac"
    assert not probed.has_video
    assert probed.duration == pytest.approx(clip.duration, abs=0.5)
    assert result == probed
    assert fractions and fractions[-1] == 1.0


def test_audio_preset_strips_the_video(ffmpeg: str, clips: dict[str, Clip], tmp_path: Path) -> None:
    _, result, _ = _transcode(ffmpeg, "audio-aac", clips["h264.mp4"].path, tmp_path)
    assert result.audio_codec == "aac"
    assert not result.has_video


def test_progress_rises_to_one_on_a_longer_clip(
    ffmpeg: str, long_clip: Path, tmp_path: Path
) -> None:
    calls: list[tuple[float, float | None]] = []
    _, result, _ = _transcode(
        ffmpeg, "web-720p", long_clip, tmp_path, progress=lambda f, s: calls.append((f, s))
    )
    fractions = [f for f, _ in calls]
    assert len(fractions) >= 2
    assert calls[0] == (0.0, None), "started is said before ffmpeg reports anything"
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert all(0.0 <= f < 1.0 for f in fractions[:-1])
    assert any(speed is not None and speed > 0 for _, speed in calls)
    assert result.height == 720
    assert result.duration == pytest.approx(LONG_SECONDS, abs=0.5)


# --- failures ------------------------------------------------------------------------------------


def test_ffmpeg_failure_is_a_transcode_error_with_its_message(
    ffmpeg: str, broken: dict[str, Path], tmp_path: Path
) -> None:
    claims_video = MediaInfo(
        duration=2.0,
        format_name="mov,mp4",
        video_codec="h264",
        width=320,
        height=240,
        audio_codec="aac",
    )
    dst = tmp_path / "out.mp4"
    with pytest.raises(TranscodeError) as info:
        transcoder.transcode(
            ffmpeg, presets.CATALOG["web-720p"], claims_video, broken["truncated.mp4"], dst
        )
    message = str(info.value)
    assert "ffmpeg failed (exit" in message
    assert "no error message" not in message  # ffmpeg's own words are carried
    assert "moov atom not found" in message or "Invalid data" in message
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["notes.mp4", "empty.mov"])
def test_non_media_is_a_transcode_error(
    ffmpeg: str, broken: dict[str, Path], tmp_path: Path, name: str
) -> None:
    claims_video = MediaInfo(
        duration=2.0, format_name="mov", video_codec="h264", width=320, height=240
    )
    dst = tmp_path / "out.mp4"
    with pytest.raises(TranscodeError, match="ffmpeg failed"):
        transcoder.transcode(ffmpeg, presets.CATALOG["web-720p"], claims_video, broken[name], dst)
    assert not dst.exists()


def test_started_and_ended_are_told_ffmpegs_pid_command_and_exit_status(
    ffmpeg: str, clips: dict[str, Clip], broken: dict[str, Path], tmp_path: Path
) -> None:
    told: list[tuple[str, object]] = []

    def started(pid: int, command: list[str]) -> None:
        told.append(("started", (pid, command[0], command[-1])))

    def ended(returncode: int) -> None:
        told.append(("ended", returncode))

    _, _, dst = _transcode(
        ffmpeg, "web-720p", clips["h264.mp4"].path, tmp_path, started=started, ended=ended
    )
    [(_, (pid, exe, output)), last] = told
    assert (exe, output, last) == (ffmpeg, str(dst), ("ended", 0))
    assert isinstance(pid, int) and pid > 0
    told.clear()
    claims_video = MediaInfo(2.0, "mov", "h264", 320, 240)
    with pytest.raises(TranscodeError, match="ffmpeg failed"):
        transcoder.transcode(
            ffmpeg,
            presets.CATALOG["web-720p"],
            claims_video,
            broken["notes.mp4"],
            tmp_path / "bad.mp4",
            started=started,
            ended=ended,
        )
    assert [name for name, _ in told] == ["started", "ended"]
    assert told[1][1] != 0


def test_output_failing_the_check_is_removed(
    ffmpeg: str, clips: dict[str, Clip], tmp_path: Path
) -> None:
    """A source that lies about its duration: ffmpeg succeeds, the check does not."""
    truth = media.probe(clips["h264.mp4"].path)
    lie = MediaInfo(
        duration=60.0,
        format_name=truth.format_name,
        video_codec=truth.video_codec,
        width=truth.width,
        height=truth.height,
        audio_codec=truth.audio_codec,
    )
    dst = tmp_path / "out.mp4"
    with pytest.raises(TranscodeError, match="output check failed: duration"):
        transcoder.transcode(ffmpeg, presets.CATALOG["web-720p"], lie, clips["h264.mp4"].path, dst)
    assert not dst.exists()


def test_cancel_from_another_thread_stops_ffmpeg(
    ffmpeg: str, long_clip: Path, tmp_path: Path
) -> None:
    cancel = threading.Event()
    started = threading.Event()
    fractions: list[float] = []

    def progress(fraction: float, _speed: float | None) -> None:
        fractions.append(fraction)
        started.set()

    def cancel_once_started() -> None:
        if started.wait(30):
            cancel.set()

    canceller = threading.Thread(target=cancel_once_started)
    canceller.start()
    dst = tmp_path / "out.mp4"
    try:
        with pytest.raises(TranscodeError, match="cancelled"):
            transcoder.transcode(
                ffmpeg,
                presets.CATALOG["web-720p"],
                media.probe(long_clip),
                long_clip,
                dst,
                progress=progress,
                cancel=cancel,
            )
    finally:
        started.set()
        canceller.join()
    assert cancel.is_set()
    assert fractions and fractions[-1] < 1.0  # it stopped part-way
    assert not dst.exists()


def test_cancel_stops_an_ffmpeg_that_prints_nothing(ffmpeg: str, tmp_path: Path) -> None:
    """Blocked opening a FIFO nobody writes, ffmpeg reports no progress: cancel still ends it."""
    fifo = tmp_path / "input.mov"
    os.mkfifo(fifo)
    cancel = threading.Event()
    raised: list[BaseException] = []

    def run() -> None:
        source = MediaInfo(10.0, "mov", "h264", 640, 360, "aac")
        try:
            transcoder.transcode(
                ffmpeg, presets.CATALOG["web-720p"], source, fifo, tmp_path / "o.mp4", cancel=cancel
            )
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)  # ffmpeg is now blocked in its open
    cancel.set()
    thread.join(WAIT_SECONDS)
    if thread.is_alive():
        with open(fifo, "wb"):  # unblock it, so the test can end
            pass
        thread.join()
        pytest.fail("the cancel did not stop a silent ffmpeg")
    assert len(raised) == 1 and isinstance(raised[0], TranscodeError)
    assert "cancelled" in str(raised[0])
    assert not (tmp_path / "o.mp4").exists()


def test_cancel_set_before_start(ffmpeg: str, clips: dict[str, Clip], tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    dst = tmp_path / "out.mp4"
    with pytest.raises(TranscodeError, match="cancelled"):
        _transcode(ffmpeg, "web-720p", clips["h264.mp4"].path, tmp_path, cancel=cancel)
    assert not dst.exists()


def test_preset_that_does_not_fit_the_source_is_a_media_error(
    ffmpeg: str, clips: dict[str, Clip], tmp_path: Path
) -> None:
    with pytest.raises(MediaError):
        _transcode(ffmpeg, "audio-aac", clips["no audio.mp4"].path, tmp_path)
    with pytest.raises(MediaError):
        _transcode(ffmpeg, "web-720p", clips["tone.m4a"].path, tmp_path)
    assert list(tmp_path.iterdir()) == []


_ORPHAN_SCRIPT = """
import sys
import tempfile
from pathlib import Path
from autotranscode.media import presets, quality, transcoder
from autotranscode.media.probe import MediaInfo
source = MediaInfo(10.0, "mov", "h264", 640, 360, "aac")
preset = presets.CATALOG["web-720p"]
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
if sys.argv[3] == "search":
    quality.search(transcoder.find_ffmpeg(), preset, source, src, dst.parent, 93.0)
else:
    transcoder.transcode(transcoder.find_ffmpeg(), preset, source, src, dst)
"""


def _children(pid: int) -> dict[int, tuple[str, str]]:
    """pid -> (command name, state) of each live process whose parent is ``pid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
            state, ppid = rest.split()[:2]
            if int(ppid) == pid:
                found[int(entry.name)] = (comm, state)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.parametrize("what", ["transcode", "search"])
@pytest.mark.parametrize("how", ["setpriv", "preexec"])
def test_ffmpeg_dies_when_its_worker_is_killed(tmp_path: Path, how: str, what: str) -> None:
    """kill -9 of the worker must not leave ffmpeg running on (here: blocked on a FIFO),
    whether it encodes or decodes a quality search's samples."""
    if how == "setpriv":
        assert runner._death_wrapper(), "util-linux setpriv is part of every Linux CI image"
    fifo = tmp_path / "input.mov"
    os.mkfifo(fifo)
    # Without setpriv on its PATH, the worker falls back to its preexec_fn.
    env = os.environ | ({"PATH": str(tmp_path)} if how == "preexec" else {})
    argv = [sys.executable, "-c", _ORPHAN_SCRIPT, fifo, tmp_path / "o.mp4", what]
    worker = subprocess.Popen(argv, env=env)
    ffmpeg = None
    try:
        deadline = time.monotonic() + 30
        while ffmpeg is None:
            assert time.monotonic() < deadline, "ffmpeg never started"
            assert worker.poll() is None, "the worker exited early"
            ffmpeg = next(
                (pid for pid, (comm, _) in _children(worker.pid).items() if "ffmpeg" in comm), None
            )
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        deadline = time.monotonic() + 10
        while _alive(ffmpeg) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(ffmpeg), "ffmpeg outlived the worker that ran it"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if ffmpeg is not None and _alive(ffmpeg):
            os.kill(ffmpeg, signal.SIGKILL)


# --- finding ffmpeg ------------------------------------------------------------------------------


def test_find_ffmpeg_bundled(ffmpeg: str) -> None:
    assert Path(ffmpeg).is_file()
    out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ffmpeg version")


def test_find_ffmpeg_prefers_the_bundled_binary_and_honours_imageios_variable(
    ffmpeg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = Path(imageio_ffmpeg.__file__).parent / "binaries"
    assert Path(ffmpeg).parent == bundled
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "/opt/elsewhere/ffmpeg")
    assert transcoder.find_ffmpeg() == "/opt/elsewhere/ffmpeg"


def test_find_ffmpeg_override(ffmpeg: str) -> None:
    assert transcoder.find_ffmpeg(ffmpeg) == ffmpeg


def test_find_ffmpeg_missing_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="definitely-not-ffmpeg"):
        transcoder.find_ffmpeg("definitely-not-ffmpeg")


def test_unrunnable_ffmpeg_is_a_config_error(clips: dict[str, Clip], tmp_path: Path) -> None:
    src = clips["h264.mp4"].path
    with pytest.raises(ConfigError, match="cannot run ffmpeg"):
        transcoder.transcode(
            str(tmp_path / "no-such-ffmpeg"),
            presets.CATALOG["web-720p"],
            media.probe(src),
            src,
            tmp_path / "out.mp4",
        )


def test_command_is_what_runs(ffmpeg: str, clips: dict[str, Clip]) -> None:
    src = clips["h264.mp4"].path
    cmd = transcoder.command(
        ffmpeg, presets.CATALOG["web-720p"], media.probe(src), src, Path("o.mp4")
    )
    assert cmd[0] == ffmpeg
    assert cmd[cmd.index("-progress") + 1] == "pipe:1"
    assert cmd[-1] == "o.mp4"


# --- probing -------------------------------------------------------------------------------------


def test_probe_good_clips(clips: dict[str, Clip]) -> None:
    for clip in clips.values():
        info = media.probe(clip.path)
        assert info.has_video == clip.has_video
        assert info.has_audio == clip.has_audio
        assert info.height == clip.height
        assert info.duration == pytest.approx(clip.duration, abs=0.2)
        assert info.format_name


@pytest.mark.parametrize("name", ["notes.mp4", "empty.mov", "truncated.mp4"])
def test_probe_broken_files_is_a_probe_error(broken: dict[str, Path], name: str) -> None:
    with pytest.raises(ProbeError, match="not a readable media file") as info:
        media.probe(broken[name])
    assert info.value.__cause__ is not None  # av's exception is chained, not leaked


def test_probe_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ProbeError):
        media.probe(tmp_path / "missing.mp4")
    with pytest.raises(ProbeError):
        media.probe(tmp_path)


def test_probe_file_with_no_streams(ffmpeg: str, tmp_path: Path) -> None:
    """A valid container holding only data (here a subtitle track) is not media for us."""
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n", encoding="utf-8")
    mkv = tmp_path / "subs.mkv"
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(srt), str(mkv)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(ProbeError, match="no audio or video"):
        media.probe(mkv)


def test_probe_reads_headers_only_unless_they_leave_the_picture_size_unknown(
    ffmpeg: str, clips: dict[str, Clip], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding a first picture is a third of a probe's cost, and reading packets half the
    rest where the container's headers declare every stream; an HLS playlist, though, gives
    no size without decoding, nor does MPEG-4 Part 2 video before its first packet."""
    source = clips["h264.mp4"].path
    playlist = tmp_path / "index.m3u8"
    part2 = tmp_path / "part2.mp4"
    for args in (
        ("-c", "copy", "-f", "hls", "-hls_playlist_type", "vod", str(playlist)),
        ("-c:v", "mpeg4", "-c:a", "copy", str(part2)),
    ):
        subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(source), *args],
            check=True,
            capture_output=True,
        )
    opened: list[object] = []
    real_open = av.open

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(kwargs.get("options"))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", counting)
    headers, no_decoding = media._HEADERS_ALONE, media._NO_DECODING
    for path, attempts, codec in (
        (source, [headers], "h264"),
        (clips["vp9.mkv"].path, [headers], "vp9"),
        (clips["mjpeg.avi"].path, [no_decoding], "mjpeg"),
        (part2, [headers, no_decoding], "mpeg4"),
        (playlist, [no_decoding, None], "h264"),
    ):
        opened.clear()
        info = media.probe(path)
        assert opened == attempts, path.name
        assert (info.video_codec, info.width, info.height) == (codec, 320, 240)
        assert info.has_audio


def test_every_probe_finds_what_ffmpegs_full_probe_finds(clips: dict[str, Clip]) -> None:
    for clip in clips.values():
        full = media._probe(clip.path, True, None)
        assert media.probe(clip.path, detail=True) == full, clip.path.name
        # The facts only a decoded picture gives are left out of a cheap probe, whichever
        # of them answered, so they never depend on the container.
        assert media.probe(clip.path) == replace(full, **dict.fromkeys(media.DETAIL)), clip.path


# --- what ffmpeg said: the telling line, the bounded tail, the command -------------------------


def _said(ffmpeg: str, *args: str, log_args: tuple[str, ...] = runner.LOG_ARGS) -> str:
    """What ffmpeg writes on stderr for ``args``, read as ``transcode`` reads it."""
    with tempfile.TemporaryFile() as errors:
        done = subprocess.run(
            [ffmpeg, "-hide_banner", *log_args, "-nostdin", "-y", *args],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            check=False,
        )
        assert done.returncode != 0
        return runner.read_stderr(errors)


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("an encoder option out of range", "Error parsing option 'level' with value '9.9'."),
        ("an unknown encoder", "Unknown encoder 'nosuch'"),
        ("an unknown option", "Unrecognized option 'bogus'."),
        ("a truncated input", "moov atom not found"),
        ("a missing input", "Error opening input: No such file or directory"),
    ],
)
def test_the_telling_line_is_ffmpeg_s_first_error_not_its_last(
    ffmpeg: str,
    clips: dict[str, Clip],
    broken: dict[str, Path],
    tmp_path: Path,
    case: str,
    cause: str,
) -> None:
    src = str(clips["h264.mp4"].path)
    out = str(tmp_path / "out.mp4")
    args = {
        "an encoder option out of range": ["-i", src, "-c:v", "libx264", "-level", "9.9", out],
        "an unknown encoder": ["-i", src, "-c:v", "nosuch", out],
        "an unknown option": ["-i", src, "-bogus", "3", out],
        "a truncated input": ["-i", str(broken["truncated.mp4"]), out],
        "a missing input": ["-i", str(tmp_path / "gone.mp4"), out],
    }[case]
    said = _said(ffmpeg, *args)
    assert runner.telling_line(said) == cause, said
    if case == "an encoder option out of range":
        errors = [line for line in said.splitlines() if "[error]" in line]
        assert cause in errors[0] and "Nothing was written into output file" in errors[-1]
        # An ffmpeg that does not tag its lines by level: found by its words, context cut.
        untagged = _said(ffmpeg, *args, log_args=("-loglevel", "info"))
        assert "[error]" not in untagged
        assert runner.telling_line(untagged) == cause, untagged


def test_the_telling_line_is_one_printable_line_of_bounded_length() -> None:
    assert runner.telling_line("") == ""
    assert runner.telling_line("[info] all went well\n") == "all went well"
    line = runner.telling_line("[error] bad \x1b[31mred\x1b[0m " + "x" * 1000)
    assert "\x1b" not in line and line.startswith("bad \\x1b[31mred")
    assert len(line) == runner.MAX_REASON_CHARS and line.endswith("…")


def test_ffmpeg_s_stderr_is_kept_bounded_first_lines_and_last() -> None:
    """A flood (a damaged input can make ffmpeg warn for every frame) keeps its first lines,
    where an early error is, and its last ones, within the limits."""
    lines = [f"[warning] frame {n} is damaged" for n in range(20_000)]
    with tempfile.TemporaryFile() as errors:
        errors.write("\n".join(lines).encode())
        kept = runner.read_stderr(errors).splitlines()
    head, tail = runner.STDERR_HEAD_LINES, runner.STDERR_TAIL_LINES
    assert kept[:head] == lines[:head]
    assert kept[-tail:] == lines[-tail:]
    assert len(kept) == head + 1 + tail and "left out" in kept[head]
    assert len("\n".join(kept).encode()) < runner.STDERR_HEAD_BYTES + runner.STDERR_TAIL_BYTES


def test_every_run_is_told_with_its_command_line_and_what_ffmpeg_said(
    ffmpeg: str, clips: dict[str, Clip], broken: dict[str, Path], tmp_path: Path
) -> None:
    runs: list[runner.FfmpegRun] = []
    commands: list[list[str]] = []
    _transcode(
        ffmpeg,
        "web-720p",
        clips["h264.mp4"].path,
        tmp_path,
        started=lambda _pid, cmd: commands.append(cmd),
        ran=runs.append,
    )
    [run] = runs
    assert run.returncode == 0 and run.command == shlex.join(commands[0])
    assert "[info] Stream mapping:" in run.stderr
    claims_video = MediaInfo(2.0, "mov", "h264", 320, 240)
    with pytest.raises(TranscodeError) as failed:
        transcoder.transcode(
            ffmpeg,
            presets.CATALOG["web-720p"],
            claims_video,
            broken["notes.mp4"],
            tmp_path / "bad.mp4",
            ran=runs.append,
        )
    assert failed.value.command == runs[-1].command and runs[-1].returncode != 0
    assert failed.value.stderr == runs[-1].stderr and "[error]" in runs[-1].stderr
