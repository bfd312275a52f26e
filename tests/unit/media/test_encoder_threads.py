"""``--threads N``: each ffmpeg a worker runs holds its encoder to N threads, whole files and
chunks alike (a worker pinned to one core, one worker per core: N = 1)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from autotranscode import settings
from autotranscode.cli import main
from autotranscode.errors import ConfigError
from autotranscode.media import chunks, presets, video
from autotranscode.media.chunks import Chunk
from autotranscode.media.probe import MediaInfo, probe
from autotranscode.media.transcoder import command

from conftest import FFMPEG

SOURCE = MediaInfo(10.0, "mov,mp4,m4a,3gp,3g2,mj2", "h264", 640, 360, audio_codec="aac")


def _value(cmd: list[str], option: str) -> str:
    return cmd[cmd.index(option) + 1]


def test_a_whole_encode_and_a_chunk_hold_the_encoder_to_the_threads_given() -> None:
    preset = presets.CATALOG["web-720p"]
    whole = command("ffmpeg", video.threaded(preset, 1), SOURCE, Path("in.mp4"), Path("o.mp4"))
    assert _value(whole, "-threads:v") == "1"
    chunk = chunks.chunk_command(
        "ffmpeg", preset, SOURCE, "in.mp4", "c.mkv", Chunk(1, 2.0, 4.0, 50), threads=1
    )
    assert _value(chunk, "-threads:v") == "1"
    assert _value(chunk, "-threads") == "1"  # before -i: the decoder's too
    assert chunk.index("-threads") < chunk.index("-i")


def test_x265_gets_its_pools_bounded_and_keeps_its_own_params() -> None:
    preset = presets.CATALOG["hevc-1080p"]
    held = video.threaded(preset, 2)
    params = held.video_args[held.video_args.index("-x265-params") + 1]
    assert params == "log-level=error:pools=2:frame-threads=2"


def test_no_threads_or_no_video_leaves_the_preset_as_it_is() -> None:
    preset = presets.CATALOG["web-720p"]
    assert video.threaded(preset, None) is preset
    audio = presets.CATALOG["audio-aac"]
    assert video.threaded(audio, 1) is audio


def test_the_setting_is_bounded_and_the_worker_takes_the_option() -> None:
    assert settings.build({"threads": 1}).threads == 1
    with pytest.raises(ConfigError, match=r"^--threads:"):
        settings.build({"threads": 0})
    help_text = CliRunner().invoke(main, ["worker", "--help"]).output
    assert "--threads" in help_text


def test_ffmpeg_encodes_with_one_encoder_thread(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    subprocess.run(
        [
            *(FFMPEG, "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1"),
            *("-c:v", "libx264", "-preset", "ultrafast", str(src)),
        ],
        check=True,
    )
    dst = tmp_path / "out.mp4"
    preset = video.threaded(presets.CATALOG["web-720p"], 1)
    subprocess.run(command(FFMPEG, preset, probe(src), src, dst), check=True, capture_output=True)
    assert probe(dst).has_video
