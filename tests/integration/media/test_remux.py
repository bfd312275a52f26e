"""A source that already is what a preset makes is remuxed: its video bitstream unchanged,
its streams, tags and chapters kept, stamped and checked like an encode; an encode that
comes out bigger than a source that could have been copied gives way to the copy. Real
ffmpeg on generated clips, read back with PyAV."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import av
import pytest

from autotranscode.media import presets, remux
from autotranscode.media.probe import MediaInfo, probe, read_stamp
from autotranscode.media.runner import FfmpegRun
from autotranscode.media.stamps import Stamp
from autotranscode.media.transcoder import find_ffmpeg

from conftest import CREATION_TIME

WEB = presets.CATALOG["web-720p"]


def _make(preset: presets.Preset, src: Path, dst: Path, runs: list[FfmpegRun]) -> remux.Made:
    stamp = Stamp("ab" * 16, presets.digest(preset))
    source = probe(src, detail=True)
    return remux.make(find_ffmpeg(), preset, source, src, dst, ran=runs.append, stamp=stamp)


def _video_packets(path: Path) -> list[str]:
    """The hash of each video packet's bytes, in order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [hashlib.sha256(bytes(p)).hexdigest() for p in container.demux(stream) if p.size]


def _streams(path: Path) -> list[tuple[str, str, str | None]]:
    with av.open(str(path)) as container:
        return [
            (s.type, s.codec_context.name if s.codec_context else "", s.metadata.get("language"))
            for s in container.streams
        ]


def _top_level_boxes(path: Path) -> list[str]:
    names, data, at = [], path.read_bytes(), 0
    while at + 8 <= len(data):
        size, name = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        names.append(name.decode("latin-1"))
        at += size or len(data)
    return names


def _chapters(path: Path) -> list[str | None]:
    with av.open(str(path)) as container:
        return [c["metadata"].get("title") for c in container.chapters()]


@pytest.fixture(scope="module")
def web_output(stream_clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our own web-720p output of a clip with two audio languages, an SRT and chapters."""
    out = tmp_path_factory.mktemp("remux") / "languages.mp4"
    made = _make(WEB, stream_clips["languages.mkv"], out, [])
    assert made.action == "encoded", made  # the source's colour is untagged: encoded
    return out


def test_our_own_output_dropped_back_in_is_remuxed_with_its_video_unchanged(
    web_output: Path, tmp_path: Path
) -> None:
    runs: list[FfmpegRun] = []
    again = tmp_path / "again.mp4"
    made = _make(WEB, web_output, again, runs)
    assert made.action == "remuxed"
    assert made.note and made.note.startswith("already h264 high, 320x240, yuv420p"), made.note
    assert "-c:v copy" in runs[0].command and "libx264" not in runs[0].command
    assert _video_packets(again) == _video_packets(web_output)
    assert _streams(again) == _streams(web_output)
    carried = [(s[0], s[1], s[2]) for s in _streams(again) if s[0] in ("audio", "subtitle")]
    assert carried == [
        ("audio", "aac", "eng"),
        ("audio", "aac", "fra"),
        ("subtitle", "mov_text", "eng"),
    ]
    assert _chapters(again) == _chapters(web_output) and len(_chapters(again)) == 2
    info = probe(again)
    assert info.creation_time == CREATION_TIME
    assert (made.info.width, made.info.height, made.info.audio_codec) == (320, 240, "aac")
    # Stamped like an encode, so it is recognised when dropped back in; index at the front.
    assert read_stamp(again) == Stamp("ab" * 16, presets.digest(WEB))
    names = _top_level_boxes(again)
    assert names.index("moov") < names.index("mdat")


def test_a_preset_that_says_remux_false_encodes_a_conforming_source(
    web_output: Path, tmp_path: Path
) -> None:
    always = presets.build("always", {"extends": "web-720p", "remux": False})
    runs: list[FfmpegRun] = []
    made = _make(always, web_output, tmp_path / "encoded.mp4", runs)
    assert made.action == "encoded" and made.note is None
    assert len(runs) == 1 and "libx264" in runs[0].command


def _tagged_clip(dest: Path) -> MediaInfo:
    """A 2 s 320x240 H.264 + AAC clip, colour tagged, its video at about 160 kbit/s and its
    (noise) audio at 16 kbit/s mono: above a 100 kbit/s preset's bitrate, yet its encode
    (stereo audio at up to 320 kbit/s) comes out bigger."""
    picture = "testsrc2=size=320x240:rate=25:duration=2,format=yuv420p,setparams="
    picture += "color_primaries=smpte170m:color_trc=smpte170m:colorspace=smpte170m:range=tv"
    cmd = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]
    cmd += ["-i", picture, "-f", "lavfi", "-i", "anoisesrc=d=2:a=0.3"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-b:v", "200k"]
    cmd += ["-c:a", "aac", "-b:a", "16k", "-ac", "1", "-shortest", str(dest)]
    subprocess.run(cmd, check=True, capture_output=True)
    return probe(dest, detail=True)


def test_an_encode_bigger_than_a_copyable_source_gives_way_to_the_remux(tmp_path: Path) -> None:
    src = tmp_path / "tight.mp4"
    source = _tagged_clip(src)
    tight = presets.build(
        "tight", {"extends": "web-720p", "max_bitrate_k": 100, "audio_bitrate_k": 320}
    )
    assert source.video_bit_rate and source.video_bit_rate > 100_000, source
    runs: list[FfmpegRun] = []
    dst = tmp_path / "out.mp4"
    made = _make(tight, src, dst, runs)
    assert made.action == "remuxed"
    assert made.note and "was bigger than the source" in made.note
    assert ["libx264" in r.command for r in runs] == [True, False]  # encoded, then copied
    # The source's streams, plus a few hundred bytes of tags (the stamp) and index.
    assert dst.stat().st_size < src.stat().st_size + 4096
    assert _video_packets(dst) == _video_packets(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "tight.mp4"]


@pytest.mark.parametrize("remux_on", [True, False])
def test_a_quality_target_does_not_search_a_source_that_is_remuxed(
    web_output: Path, tmp_path: Path, remux_on: bool
) -> None:
    """A copy has no CRF: searching one would encode samples for nothing; ``remux = false``
    asks for an encode, and then the search."""
    from autotranscode.engines.tuning import Tuning

    spec = {"extends": "web-720p", "quality": "vmaf:93", "remux": remux_on}
    targeted = presets.build("web-targeted", spec)
    said: list[str] = []
    source = probe(web_output, detail=True)
    tuning = Tuning(find_ffmpeg(), targeted, source, web_output, tmp_path, _ignore, said.append)
    assert tuning.searches is not remux_on
    if remux_on:
        assert tuning.search() is targeted and said == []
        assert tuning.scores(web_output) == {}  # nothing asked to be measured


def _ignore(fraction: float, speed: float | None) -> None:
    pass
