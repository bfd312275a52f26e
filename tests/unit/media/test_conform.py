"""What a preset takes as a conforming source (derived from its own settings), and the
command that copies one: pure functions of the preset and the source's probe facts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from autotranscode.errors import ConfigError
from autotranscode.media import conform, presets, recipe
from autotranscode.media.probe import MediaInfo, Track

WEB = presets.CATALOG["web-720p"]
#: What our own web-720p output of a 720p clip looks like to ``probe(detail=True)``.
OURS = MediaInfo(
    duration=10.0,
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    video_codec="h264",
    width=1280,
    height=720,
    audio_codec="aac",
    pix_fmt="yuv420p",
    video_profile="High",
    video_bit_rate=2_500_000,
    bit_rate=2_650_000,
    frame_rate=25.0,
    color_primaries="bt709",
    color_transfer="bt709",
    color_space="bt709",
    color_range="tv",
    field_order="progressive",
    tracks=(
        Track(1, "audio", "aac", "eng", default=True, channels=2),
        Track(2, "audio", "aac", "fra", channels=2),
        Track(3, "subtitle", "mov_text", "eng"),
    ),
)


def test_web_720p_conformance_comes_from_its_own_settings() -> None:
    rule = conform.conformance(WEB)
    assert isinstance(rule, conform.Conformance)
    assert rule.video_codec == "h264"
    assert rule.profiles == {"high", "main", "constrained baseline", "baseline"}
    assert rule.pix_fmts == {"yuv420p"}
    assert (rule.max_short_side, rule.max_bitrate) == (720, 4_000_000)
    assert (rule.audio_codec, rule.max_channels, rule.hdr) == ("aac", 2, False)
    assert "matroska,webm" in rule.containers


def test_a_preset_that_keeps_hdr_takes_10_bit_sources() -> None:
    rule = conform.conformance(presets.CATALOG["hevc-1080p"])
    assert isinstance(rule, conform.Conformance)
    assert rule.video_codec == "hevc" and rule.hdr
    assert rule.profiles == {"main", "main 10"}
    assert rule.pix_fmts == {"yuv420p", "yuv420p10le"}


@pytest.mark.parametrize(
    ("preset", "why"),
    [
        (presets.build("always", {"extends": "web-720p", "remux": False}), "remux = false"),
        (presets.CATALOG["webm-vp9"], "bounds no bitrate"),
        (presets.CATALOG["audio-aac"], "not a video preset"),
        (presets.CATALOG["hls"], "not a video preset"),
        (presets.build("pal", {"extends": "web-720p", "extra_args": ["-r", "25"]}), "sets -r"),
    ],
)
def test_presets_that_never_remux_say_why(preset: presets.Preset, why: str) -> None:
    rule = conform.conformance(preset)
    assert isinstance(rule, str) and why in rule
    verdict = conform.judge(preset, OURS)
    assert not verdict.conforms and why in verdict.why


def test_a_10_bit_source_conforms_to_a_preset_that_keeps_hdr_only_when_it_is_hdr() -> None:
    hevc = presets.CATALOG["hevc-1080p"]
    hdr10 = replace(
        OURS,
        video_codec="hevc",
        video_profile="Main 10",
        pix_fmt="yuv420p10le",
        color_primaries="bt2020",
        color_transfer="smpte2084",
        color_space="bt2020nc",
    )
    assert conform.judge(hevc, hdr10).conforms
    sdr10 = replace(hdr10, color_primaries="bt709", color_transfer="bt709", color_space="bt709")
    assert "makes 8-bit" in conform.judge(hevc, sdr10).why


def test_our_own_output_conforms_and_the_note_says_what_it_is() -> None:
    verdict = conform.judge(WEB, OURS)
    assert verdict.conforms
    assert (
        verdict.why == "already h264 high, 1280x720, yuv420p, 2.50 Mbit/s, aac: what web-720p makes"
    )


def test_a_main_profile_preset_refuses_high() -> None:
    main = replace(WEB, id="main", video_args=("-preset", "veryfast", "-profile:v", "main"))
    assert not conform.judge(main, OURS).conforms
    assert conform.judge(main, replace(OURS, video_profile="Main")).conforms


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"format_name": "mpegts"}, "a mpegts container"),
        ({"video_codec": "hevc"}, "video is hevc, not h264"),
        ({"video_profile": "High 10"}, "profile High 10"),
        ({"video_profile": None}, "profile unknown"),
        ({"pix_fmt": "yuv422p"}, "pixel format yuv422p"),
        ({"width": 1920, "height": 1080}, "would be resized"),
        ({"width": 1279}, "would be resized"),
        ({"rotation": 90}, "rotated 90°"),
        ({"field_order": "tt"}, "interlaced (tt)"),
        ({"color_transfer": "smpte2084", "color_primaries": "bt2020"}, "HDR (pq)"),
        ({"color_primaries": None}, "colour untagged (primaries)"),
        ({"color_space": None, "color_transfer": None}, "colour untagged (transfer, matrix)"),
        ({"color_range": "pc"}, "full-range"),
        ({"video_bit_rate": 6_000_000}, "6.00 Mbit/s is above 4.00 Mbit/s"),
        ({"video_bit_rate": None, "bit_rate": None}, "bitrate is unknown"),
        ({"tracks": (Track(1, "audio", "opus", channels=2),)}, "audio is opus, not aac"),
        ({"tracks": (Track(1, "audio", "aac", channels=6),)}, "more than 2 channels"),
    ],
)
def test_what_the_encode_would_change_does_not_conform(change: dict[str, object], why: str) -> None:
    verdict = conform.judge(WEB, replace(OURS, **change))  # type: ignore[arg-type]
    assert not verdict.conforms
    assert verdict.why == f"not copied: {why}" or why in verdict.why, verdict.why


def test_the_bitrate_alone_is_left_out_when_asked() -> None:
    """ "Never bigger" asks whether a copy would play as the encode does."""
    heavy = replace(OURS, video_bit_rate=9_000_000)
    assert not conform.judge(WEB, heavy).conforms
    assert conform.judge(WEB, heavy, bitrate=False).conforms
    assert not conform.judge(WEB, replace(heavy, field_order="bb"), bitrate=False).conforms


def test_a_source_without_audio_conforms_and_the_preset_s_audio_track_choice_counts() -> None:
    silent = replace(OURS, audio_codec=None, tracks=())
    assert conform.judge(WEB, silent).conforms
    # The second track is not carried under "first": its codec does not matter.
    first = presets.build("first", {"extends": "web-720p", "audio": "first"})
    odd = replace(OURS, tracks=(OURS.tracks[0], Track(2, "audio", "mp3", channels=6)))
    assert conform.judge(first, odd).conforms
    assert not conform.judge(WEB, odd).conforms


def test_the_remux_command_copies_the_streams_an_encode_would_carry() -> None:
    tags = {"autotranscode_preset": "0123456789abcdef"}
    args = recipe.ffmpeg_args(WEB, OURS, Path("in.mp4"), Path("out.mp4"), tags, remux=True)
    text = " ".join(args)
    assert "-map 0:v:0 -map 0:1 -map 0:2 -map 0:3" in text
    assert "-c:v copy" in text and "-c:a copy" in text and "-c:s:0 mov_text" in text
    assert "-vf" not in args and "libx264" not in args and "-crf" not in text
    assert "-movflags +faststart+use_metadata_tags" in text
    assert "-metadata autotranscode_preset=0123456789abcdef" in text
    assert "-metadata:s:a:1 language=fra" in text
    assert args[-1] == "out.mp4"
    hevc = recipe.ffmpeg_args(presets.CATALOG["hevc-1080p"], OURS, "in", "out.mp4", remux=True)
    assert "-tag:v hvc1" in " ".join(hevc)


def test_remux_is_a_custom_preset_setting_that_must_be_true_or_false() -> None:
    assert presets.build("a", {"extends": "web-720p", "remux": False}).remux is False
    assert presets.CATALOG["web-720p"].remux is True
    with pytest.raises(ConfigError, match="remux must be true or false"):
        presets.build("b", {"extends": "web-720p", "remux": "no"})
    assert presets.digest(presets.build("c", {"extends": "web-720p", "remux": False})) != (
        presets.digest(presets.build("c", {"extends": "web-720p"}))
    )
