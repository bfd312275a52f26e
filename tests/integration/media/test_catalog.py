"""Every catalog preset run for real with the bundled ffmpeg, outputs probed."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from autotranscode.errors import ConfigError
from autotranscode.media import presets
from autotranscode.media.probe import probe
from autotranscode.media.transcoder import find_ffmpeg, transcode

from conftest import FFMPEG, Clip


@pytest.fixture(scope="module")
def portrait(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Clip]) -> Path:
    """A phone-style clip: stored 320x240 with a 90° display rotation (shown 240x320)."""
    dest = tmp_path_factory.mktemp("rotated") / "phone.mp4"
    subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-loglevel",
            "error",
            "-display_rotation",
            "90",
            "-i",
            str(clips["h264.mp4"].path),
            "-c",
            "copy",
            str(dest),
        ],
        check=True,
    )
    return dest


CODECS = {
    "web-720p": ("h264", "aac"),
    "web-1080p": ("h264", "aac"),
    "hevc-1080p": ("hevc", "aac"),
    "webm-vp9": ("vp9", "opus"),
    "av1-1080p": ("av1", "opus"),
}


@pytest.mark.parametrize("preset_id", sorted(CODECS))
def test_video_presets(preset_id: str, clips: dict[str, Clip], tmp_path: Path) -> None:
    preset = presets.CATALOG[preset_id]
    clip = clips["h264.mp4"]
    source = probe(clip.path)
    out = transcode(find_ffmpeg(), preset, source, clip.path, tmp_path / f"o{preset.extension}")
    assert (out.video_codec, out.audio_codec) == CODECS[preset_id]
    assert (out.width, out.height) == (320, 240), "never upscaled"
    assert out.duration is not None and abs(out.duration - clip.duration) < 0.5


def test_hevc_is_tagged_hvc1_for_apple_players(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["h264.mp4"]
    dst = tmp_path / "o.mp4"
    transcode(find_ffmpeg(), presets.CATALOG["hevc-1080p"], probe(clip.path), clip.path, dst)
    assert b"hvc1" in dst.read_bytes()[:200_000]
    assert b"hev1" not in dst.read_bytes()[:200_000]


@pytest.mark.parametrize(("preset_id", "codec"), [("audio-aac", "aac"), ("audio-mp3", "mp3")])
def test_audio_presets(preset_id: str, codec: str, clips: dict[str, Clip], tmp_path: Path) -> None:
    preset = presets.CATALOG[preset_id]
    for name in ("tone.m4a", "h264.mp4"):
        clip = clips[name]
        out = transcode(
            find_ffmpeg(),
            preset,
            probe(clip.path),
            clip.path,
            tmp_path / f"{name}{preset.extension}",
        )
        assert out.audio_codec == codec and not out.has_video


def test_ten_bit_422_prores_becomes_8_bit_420_at_720_lines(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    import av

    clip = clips["prores 10bit.mov"]
    dst = tmp_path / "o.mp4"
    out = transcode(find_ffmpeg(), presets.CATALOG["web-720p"], probe(clip.path), clip.path, dst)
    assert (out.width, out.height) == (1280, 720)
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_rotation_is_applied_and_the_short_side_is_bounded(portrait: Path, tmp_path: Path) -> None:
    source = probe(portrait)
    assert source.rotation in (90, 270) and source.display_size == (240, 320)
    out = transcode(
        find_ffmpeg(), presets.CATALOG["web-720p"], source, portrait, tmp_path / "o.mp4"
    )
    assert (out.width, out.height) == (240, 320)
    assert out.rotation == 0, "turned once, by the transcode, not again by players"


def test_poster_is_one_jpeg(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["prores 10bit.mov"]
    dst = tmp_path / "p.jpg"
    out = transcode(find_ffmpeg(), presets.CATALOG["poster"], probe(clip.path), clip.path, dst)
    assert out.video_codec == "mjpeg" and (out.width, out.height) == (1280, 720)
    assert dst.read_bytes()[:3] == b"\xff\xd8\xff"


def test_thumbnails_are_a_folder_of_jpegs(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["h264.mp4"]
    short = presets.build("every-second", {"extends": "web-720p"})  # not a picture preset
    assert not short.folder
    thumbs = presets.CATALOG["thumbnails"]
    folder = tmp_path / "t.thumbnails"
    out = transcode(find_ffmpeg(), thumbs, probe(clip.path), clip.path, folder)
    pictures = sorted(folder.iterdir())
    assert [p.name for p in pictures] == ["thumb-0001.jpg"]  # a 2 s clip, one every 10 s
    assert (out.width, out.height) == (320, 240)


def test_hls_ladder_stops_at_the_source_size(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["prores 10bit.mov"]  # 1080p: every rung of the ladder
    folder = tmp_path / "x.hls"
    transcode(find_ffmpeg(), presets.CATALOG["hls"], probe(clip.path), clip.path, folder)
    master = (folder / "master.m3u8").read_text()
    assert master.count("#EXT-X-STREAM-INF") == 4
    heights = sorted(probe(folder / str(n) / "index.m3u8").height or 0 for n in range(4))
    assert heights == [360, 480, 720, 1080]

    small = clips["h264.mp4"]  # 240 lines: a single rendition, not four copies of it
    folder = tmp_path / "small.hls"
    transcode(find_ffmpeg(), presets.CATALOG["hls"], probe(small.path), small.path, folder)
    assert (folder / "master.m3u8").read_text().count("#EXT-X-STREAM-INF") == 1


def test_custom_presets_are_checked(tmp_path: Path) -> None:
    ok = presets.build(
        "phone", {"extends": "web-720p", "height": 360, "crf": 28, "extra_args": ["-tune", "film"]}
    )
    assert ok.height == 360 and ("-crf", "28") in itertools.pairwise(ok.video_args)
    assert ok.spec == {
        "extends": "web-720p",
        "height": 360,
        "crf": 28,
        "extra_args": ["-tune", "film"],
    }
    for bad in (
        {"extends": "web-720p", "extra_args": ["-i", "/etc/passwd"]},
        {"extends": "web-720p", "extra_args": ["-f", "rtp"]},
        {"extends": "web-720p", "extra_args": ["-tune"]},
        {"extends": "hls"},
        {"extends": "nope"},
        {"extends": "web-720p", "crf": 99},
        {"extends": "web-720p", "color": "red"},
    ):
        with pytest.raises(ConfigError):
            presets.build("bad", bad)
    with pytest.raises(ConfigError):
        presets.build("web-720p", {"extends": "web-1080p"})  # catalog names are taken
