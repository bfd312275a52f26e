"""The colour and deinterlacing parts of the command, as argument lists."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autotranscode.errors import ConfigError
from autotranscode.media import colour, interlace, presets, recipe
from autotranscode.media.probe import MediaInfo

WEB = presets.CATALOG["web-720p"]
HEVC = presets.CATALOG["hevc-1080p"]
AV1 = presets.CATALOG["av1-1080p"]


def _source(width: int = 1920, height: int = 1080, **facts: object) -> MediaInfo:
    info = MediaInfo(
        duration=10.0,
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        video_codec="h264",
        width=width,
        height=height,
        audio_codec="aac",
        pix_fmt="yuv420p",
        frame_rate=25.0,
    )
    return replace(info, **facts)  # type: ignore[arg-type]


HDR10 = _source(
    pix_fmt="yuv420p10le",
    video_codec="hevc",
    color_primaries="bt2020",
    color_transfer="smpte2084",
    color_space="bt2020nc",
    color_range="tv",
)


def _vf(preset: presets.Preset, source: MediaInfo) -> list[str]:
    args = recipe.ffmpeg_args(preset, source, "in.mp4", "out.mp4")
    return args[args.index("-vf") + 1].split(",")


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# --- colour --------------------------------------------------------------------------------------


def test_hdr10_under_h264_is_tone_mapped_and_tagged_bt709() -> None:
    chain = _vf(WEB, HDR10)
    assert chain[0] == "scale=1280:720:flags=bicubic", "scaled first: fewer pixels to map"
    assert chain[1] == ("zscale=tin=smpte2084:min=bt2020nc:pin=bt2020:rin=tv:t=linear:npl=100")
    assert chain[2:7] == [
        "format=gbrpf32le",
        "zscale=p=bt709",
        "tonemap=hable:desat=0",
        "zscale=t=bt709:m=bt709:r=tv",
        "format=yuv420p",
    ]
    assert chain[7] == ("setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv")
    args = recipe.ffmpeg_args(WEB, HDR10, "in.mp4", "out.mp4")
    for name in ("-color_primaries", "-color_trc", "-colorspace"):
        assert _option(args, name) == "bt709"
    assert _option(args, "-color_range") == "tv"


def test_hlg_is_read_as_hlg() -> None:
    hlg = replace(HDR10, color_transfer="arib-std-b67")
    assert _vf(WEB, hlg)[1].startswith("zscale=tin=arib-std-b67:")


def test_hdr_tagged_by_its_transfer_alone_is_taken_as_bt2020() -> None:
    bare = replace(HDR10, color_primaries=None, color_space=None)
    assert _vf(WEB, bare)[1].startswith("zscale=tin=smpte2084:min=bt2020nc:pin=bt2020:")


@pytest.mark.parametrize("preset", [HEVC, AV1])
def test_hdr10_under_hevc_and_av1_stays_10_bit_with_its_tags(preset: presets.Preset) -> None:
    chain = _vf(preset, HDR10)
    assert not any(f.startswith(("zscale", "tonemap")) for f in chain)
    assert "format=yuv420p10le" in chain
    assert chain[-1] == (
        "setparams=color_primaries=bt2020:color_trc=smpte2084:colorspace=bt2020nc:range=tv"
    )
    args = recipe.ffmpeg_args(preset, HDR10, "in.mp4", "out.mp4")
    assert _option(args, "-color_trc") == "smpte2084"
    assert _option(args, "-color_primaries") == "bt2020"


def test_keep_on_a_codec_that_cannot_carry_hdr_tone_maps_anyway() -> None:
    keep = replace(WEB, hdr="keep")
    assert colour.tonemaps(keep, HDR10)
    assert "tonemap=hable:desat=0" in _vf(keep, HDR10)


def test_sdr_source_under_hevc_stays_8_bit() -> None:
    sdr = _source(color_primaries="bt709", color_transfer="bt709", color_space="bt709")
    assert "format=yuv420p" in _vf(HEVC, sdr)


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1920, 1080, ("bt709", "bt709", "bt709")),
        (1280, 720, ("bt709", "bt709", "bt709")),
        (1280, 540, ("bt709", "bt709", "bt709")),  # HD width, letterboxed
        (720, 576, ("bt470bg", "smpte170m", "bt470bg")),  # PAL
        (720, 480, ("smpte170m", "smpte170m", "smpte170m")),  # NTSC
        (640, 360, ("smpte170m", "smpte170m", "smpte170m")),
        (320, 240, ("smpte170m", "smpte170m", "smpte170m")),
    ],
)
def test_untagged_sources_are_tagged_by_the_players_rule(
    width: int, height: int, expected: tuple[str, str, str]
) -> None:
    source = _source(width, height)
    assumed = colour.assumed(source)
    assert (assumed.primaries, assumed.transfer, assumed.matrix) == expected
    chain = _vf(WEB, source)
    matrix = expected[2]
    assert chain[0].endswith(f"in_color_matrix={matrix}:out_color_matrix={matrix}:out_range=tv")
    assert chain[-1] == (
        f"setparams=color_primaries={expected[0]}:color_trc={expected[1]}"
        f":colorspace={matrix}:range=tv"
    )


def test_tags_a_source_has_are_kept_and_the_missing_ones_follow_its_matrix() -> None:
    sd_in_709 = _source(720, 576, color_space="bt709")
    assumed = colour.assumed(sd_in_709)
    assert (assumed.primaries, assumed.transfer, assumed.matrix) == ("bt709",) * 3
    odd = _source(1920, 1080, color_primaries="smpte170m", color_space="smpte170m")
    assumed = colour.assumed(odd)
    assert (assumed.primaries, assumed.transfer, assumed.matrix) == (
        "smpte170m",
        "smpte170m",
        "smpte170m",
    )


def test_an_rgb_source_is_converted_with_the_matrix_it_is_tagged_with() -> None:
    rgb = _source(1920, 1080, pix_fmt="gbrp10le", color_space="gbr")
    chain = _vf(WEB, rgb)
    assert "in_color_matrix" not in chain[0]
    assert "out_color_matrix=bt709" in chain[0]
    assert chain[-1].endswith(":colorspace=bt709:range=tv")


def test_a_matrix_swscale_does_not_know_is_tagged_but_not_converted() -> None:
    cl = _source(color_primaries="bt2020", color_transfer="bt2020-10", color_space="bt2020c")
    chain = _vf(WEB, cl)
    assert "color_matrix" not in chain[0]
    assert chain[-1].endswith(":colorspace=bt2020c:range=tv")


def test_colour_notes_say_what_was_done() -> None:
    assert recipe.notes(WEB, HDR10) == ["HDR10 (PQ) source tone-mapped to BT.709 SDR"]
    assert recipe.notes(HEVC, HDR10) == ["HDR kept: 10-bit, bt2020/smpte2084/bt2020nc"]
    assert recipe.notes(WEB, _source(720, 480)) == [
        "source colour untagged (primaries, transfer, matrix): tagged smpte170m/smpte170m/smpte170m"
    ]
    tagged = _source(color_primaries="bt709", color_transfer="bt709", color_space="bt709")
    assert recipe.notes(WEB, tagged) == []
    assert recipe.notes(presets.CATALOG["audio-aac"], HDR10) == []


# --- interlace -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "parity"), [("tt", "tff"), ("bt", "tff"), ("bb", "bff"), ("tb", "bff")]
)
def test_interlaced_sources_are_deinterlaced_before_scaling(order: str, parity: str) -> None:
    chain = _vf(WEB, _source(720, 576, field_order=order))
    assert chain[:2] == [f"bwdif=mode=send_frame:parity={parity}:deint=all", "setfield=prog"]
    assert chain[2].startswith("scale=")


def test_double_rate_sends_a_frame_per_field() -> None:
    sports = replace(WEB, deinterlace="double-rate")
    assert _vf(sports, _source(720, 576, field_order="tt"))[0].startswith("bwdif=mode=send_field:")
    assert recipe.notes(sports, _source(720, 576, field_order="tt"))[0] == (
        "interlaced source (tt): deinterlaced, a frame per field"
    )


@pytest.mark.parametrize("order", ["progressive", None])
def test_progressive_sources_are_not_deinterlaced(order: str | None) -> None:
    assert not any("bwdif" in f for f in _vf(WEB, _source(720, 576, field_order=order)))


def test_idet_summary_is_the_last_one_ffmpeg_printed() -> None:
    stderr = (
        "[Parsed_idet_0 @ 0x1] Multi frame detection: TFF:     0 BFF:     0 "
        "Progressive:     0 Undetermined:     0\n"
        "[Parsed_idet_0 @ 0x2] Repeated Fields: Neither:    50 Top:     0 Bottom:     0\n"
        "[Parsed_idet_0 @ 0x2] Single frame detection: TFF:    48 BFF:     0 "
        "Progressive:     2 Undetermined:     0\n"
        "[Parsed_idet_0 @ 0x2] Multi frame detection: TFF:    50 BFF:     1 "
        "Progressive:     3 Undetermined:     4\n"
    )
    assert interlace.parse_idet(stderr) == interlace.Counts(50, 1, 3, 4)
    assert interlace.parse_idet("no idet here\n") is None


@pytest.mark.parametrize(
    ("counts", "order"),
    [
        (interlace.Counts(50, 0, 0, 0), "tt"),
        (interlace.Counts(2, 40, 1, 0), "bb"),
        (interlace.Counts(20, 0, 21, 9), None),  # more progressive than interlaced
        (interlace.Counts(4, 0, 0, 146), None),  # a still picture: too little to go on
        (interlace.Counts(5, 0, 0, 145), "tt"),
        (interlace.Counts(0, 0, 0, 0), None),
    ],
)
def test_what_idet_counts_mean(counts: interlace.Counts, order: str | None) -> None:
    assert counts.field_order == order


@pytest.mark.parametrize(
    ("facts", "asked"),
    [
        ({"video_codec": "mpeg2video", "height": 576, "field_order": None}, True),
        ({"video_codec": "mpeg2video", "height": 576, "field_order": "progressive"}, True),
        ({"video_codec": "h264", "height": 1080, "field_order": "progressive"}, True),
        ({"video_codec": "h264", "height": 480, "width": 720}, True),
        ({"video_codec": "mpeg2video", "height": 576, "field_order": "tt"}, False),
        # Interlaced at 29.97: film telecined, or video? Only the sample tells.
        (
            {"video_codec": "mpeg2video", "height": 480, "field_order": "tt", "frame_rate": 29.97},
            True,
        ),
        ({"video_codec": "h264", "height": 1080, "field_order": "bb", "frame_rate": 30.0}, True),
        ({"video_codec": "h264", "height": 720}, False),  # 720p is never interlaced
        ({"video_codec": "h264", "height": 240, "width": 320}, False),
        ({"video_codec": "hevc", "height": 1080}, False),
        ({"video_codec": "h264", "height": 1080, "frame_rate": 50.0}, False),
        ({"video_codec": None, "width": None, "height": None}, False),
    ],
)
def test_idet_is_asked_only_where_interlacing_can_be(facts: dict[str, object], asked: bool) -> None:
    assert interlace.needs_idet(_source(**facts)) is asked  # type: ignore[arg-type]


def test_idet_repeated_fields_tell_telecined_film() -> None:
    stderr = (
        "[Parsed_idet_0 @ 0x2] Repeated Fields: Neither:    54 Top:    18 Bottom:    18\n"
        "[Parsed_idet_0 @ 0x2] Multi frame detection: TFF:    86 BFF:     0 "
        "Progressive:     4 Undetermined:     0\n"
    )
    counts = interlace.parse_idet(stderr)
    assert counts == interlace.Counts(86, 0, 4, 0, repeated_top=18, repeated_bottom=18)
    assert counts.telecined and "36 repeated fields" in str(counts)
    assert not interlace.Counts(90, 0, 0, 0).telecined  # video: no field repeats
    assert not interlace.Counts(0, 0, 2, 0, repeated_top=1, repeated_bottom=1).telecined
    assert not interlace.Counts(140, 0, 0, 10, repeated_top=10, repeated_bottom=10).telecined


@pytest.mark.parametrize("deinterlace", ["frame-rate", "double-rate"])
def test_telecined_film_is_inverse_telecined_not_deinterlaced(deinterlace: str) -> None:
    film = _source(720, 480, field_order="bb", frame_rate=29.97, telecined=True)
    preset = replace(WEB, deinterlace=deinterlace)
    assert _vf(preset, film)[:4] == [
        "fieldmatch=order=bff:combmatch=full",
        "yadif=deint=interlaced",
        "decimate",
        "setfield=prog",
    ]
    assert recipe.notes(preset, film)[0] == (
        "telecined film (3:2 pulldown): inverse-telecined to its own frames"
    )


def test_idet_looks_at_a_bounded_sample_past_the_start() -> None:
    args = interlace.idet_args(_source(720, 576, duration=3600.0), "in.ts")
    assert _option(args, "-ss") == "60.000"
    assert _option(args, "-frames:v") == str(interlace.SAMPLE_FRAMES)
    assert _option(args, "-vf") == "idet"
    assert args[args.index("-ss") + 2 : args.index("-ss") + 4] == ["-i", "in.ts"]
    assert _option(interlace.idet_args(_source(720, 576, duration=20.0), "x"), "-ss") == "2.000"


# --- presets -------------------------------------------------------------------------------------


def test_catalog_keeps_hdr_only_where_the_codec_carries_it() -> None:
    keeping = {p.id for p in presets.CATALOG.values() if p.hdr == "keep"}
    assert keeping == {"hevc-1080p", "av1-1080p"}
    assert all(presets.CATALOG[p].video_codec in colour.HDR_CODECS for p in keeping)


def test_custom_presets_set_hdr_and_deinterlace() -> None:
    made = presets.build(
        "sports-hevc", {"extends": "hevc-1080p", "hdr": "tonemap", "deinterlace": "double-rate"}
    )
    assert (made.hdr, made.deinterlace) == ("tonemap", "double-rate")
    assert presets.digest(made) != presets.digest(presets.CATALOG["hevc-1080p"])


@pytest.mark.parametrize(
    ("name", "value"),
    [("hdr", "sdr"), ("hdr", True), ("deinterlace", "yes"), ("deinterlace", 2)],
)
def test_custom_presets_refuse_other_values(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be"):
        presets.build("bad", {"extends": "web-720p", name: value})


def test_recipe_version_moved_with_this_change() -> None:
    assert presets.RECIPE_VERSION >= 2


# --- the other outputs ---------------------------------------------------------------------------


def test_hls_renditions_share_one_deinterlaced_tone_mapped_picture() -> None:
    args = recipe.ffmpeg_args(
        presets.CATALOG["hls"], replace(HDR10, field_order="tt"), "in.mp4", "out.hls"
    )
    graph = _option(args, "-filter_complex")
    head = graph.split(",split=")[0]
    assert head.startswith("[0:v:0]bwdif=mode=send_frame:parity=tff:deint=all,setfield=prog,")
    assert "tonemap=hable:desat=0" in head
    assert head.endswith(
        "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
    )


@pytest.mark.parametrize("preset_id", ["poster", "thumbnails"])
def test_pictures_of_hdr_and_interlaced_sources_are_sdr_and_whole(preset_id: str) -> None:
    preset = presets.CATALOG[preset_id]
    chain = _vf(preset, replace(HDR10, field_order="bb"))
    assert chain[:2] == ["estdif=mode=frame:parity=bff:deint=all", "setfield=prog"]
    assert "tonemap=hable:desat=0" in chain
    assert chain[-1] == "format=yuvj420p"
    sdr = _vf(preset, _source(720, 576))
    assert not any(f.startswith(("estdif", "zscale", "tonemap")) for f in sdr)
