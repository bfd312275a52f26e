"""The stream and HLS parts of the command line: which streams, which codecs, which tags,
which keyframes; and what the file's log is told of streams left out."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from autotranscode.errors import ConfigError
from autotranscode.media import hls, presets, recipe, streams
from autotranscode.media.probe import MediaInfo, Track

ENG = Track(index=1, kind="audio", codec="aac", language="eng", default=True, channels=6)
FRA = Track(index=2, kind="audio", codec="ac3", language="fra", title="Commentaire")
SRT = Track(index=3, kind="subtitle", codec="subrip", language="eng")
PGS = Track(index=4, kind="subtitle", codec="hdmv_pgs_subtitle", language="deu")


def _source(*tracks: Track, **changes: object) -> MediaInfo:
    base = MediaInfo(
        duration=10.0,
        format_name="matroska,webm",
        video_codec="h264",
        width=1920,
        height=1080,
        audio_codec="aac" if any(t.kind == "audio" for t in tracks) else None,
        frame_rate=25.0,
        tracks=tracks,
        creation_time="2020-05-17T10:00:00.000000Z",
        title="A film",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    return list(itertools.pairwise(args))


def _args(preset_id: str, source: MediaInfo, out: str = "out.mp4") -> list[str]:
    return recipe.ffmpeg_args(presets.CATALOG[preset_id], source, "in.mkv", out)


def test_every_audio_track_and_text_subtitle_is_mapped_in_order() -> None:
    args = _args("web-720p", _source(ENG, FRA, SRT, PGS))
    maps = [b for a, b in _pairs(args) if a == "-map"]
    assert maps == ["0:v:0", "0:1", "0:2", "0:3"]  # the PGS track (4) is not
    pairs = _pairs(args)
    assert ("-c:a", "aac") in pairs and ("-ac:a", "2") in pairs  # each audio, per the preset
    assert ("-c:s:0", "mov_text") in pairs


@pytest.mark.parametrize(
    ("extension", "codec"),
    [(".mp4", "mov_text"), (".mov", "mov_text"), (".webm", "webvtt"), (".mkv", "copy")],
)
def test_text_subtitles_take_the_container_s_form(extension: str, codec: str) -> None:
    preset = replace(presets.CATALOG["web-720p"], extension=extension)
    assert streams.subtitle_options(preset, _source(ENG, SRT)) == ["-c:s:0", codec]


def test_matroska_turns_mov_text_into_subrip() -> None:
    preset = replace(presets.CATALOG["web-720p"], extension=".mkv")
    mov_text = replace(SRT, codec="mov_text")
    assert streams.subtitle_options(preset, _source(mov_text)) == ["-c:s:0", "srt"]


def test_languages_titles_default_and_global_tags_are_set_not_copied() -> None:
    pairs = _pairs(_args("web-720p", _source(ENG, FRA, SRT)))
    assert ("-map_metadata:g", "-1") in pairs and ("-map_metadata:s", "-1") in pairs
    assert ("-metadata", "creation_time=2020-05-17T10:00:00.000000Z") in pairs
    assert ("-metadata", "title=A film") in pairs
    assert ("-metadata:s:a:0", "language=eng") in pairs
    assert ("-metadata:s:a:1", "language=fra") in pairs
    assert ("-metadata:s:a:1", "title=Commentaire") in pairs
    assert ("-disposition:a:0", "default") in pairs and ("-disposition:a:1", "0") in pairs
    assert ("-metadata:s:s:0", "language=eng") in pairs and ("-disposition:s:0", "0") in pairs
    assert "-map_chapters" not in _args("web-720p", _source(ENG))  # chapters go along as is


def test_the_first_audio_is_the_default_when_the_source_names_none() -> None:
    pairs = _pairs(_args("web-720p", _source(replace(ENG, default=False), FRA)))
    assert ("-disposition:a:0", "default") in pairs and ("-disposition:a:1", "0") in pairs


def test_a_tag_from_the_source_stays_one_printable_line() -> None:
    evil = replace(FRA, title="two\nlines\x1b[31m")
    pairs = _pairs(_args("web-720p", _source(ENG, evil, title="a\rb")))
    assert ("-metadata:s:a:1", "title=two lines [31m") in pairs
    assert ("-metadata", "title=a b") in pairs


def test_an_untagged_track_says_und_and_a_source_without_dates_sets_none() -> None:
    args = _args("web-720p", _source(replace(ENG, language=None), creation_time=None, title=None))
    assert ("-metadata:s:a:0", "language=und") in _pairs(args)
    assert not any(a.startswith(("creation_time=", "title=")) for a in args)


def test_audio_first_and_no_subtitles() -> None:
    preset = replace(presets.CATALOG["web-720p"], audio="first", subtitles=False)
    args = recipe.ffmpeg_args(preset, _source(ENG, FRA, SRT), "in.mkv", "out.mp4")
    assert [b for a, b in _pairs(args) if a == "-map"] == ["0:v:0", "0:1"]
    assert "-c:s:0" not in args


def test_a_source_whose_tracks_were_not_listed_maps_its_first_audio() -> None:
    source = MediaInfo(2.0, "mov,mp4,m4a,3gp,3g2,mj2", "h264", 320, 240, audio_codec="aac")
    maps = [b for a, b in _pairs(_args("web-720p", source)) if a == "-map"]
    assert maps == ["0:v:0", "0:a:0"]


def test_audio_presets_keep_every_track_but_mp3_which_holds_one() -> None:
    source = _source(ENG, FRA, SRT)
    aac = _args("audio-aac", source, "out.m4a")
    assert [b for a, b in _pairs(aac) if a == "-map"] == ["0:1", "0:2"] and "-vn" in aac
    mp3 = _args("audio-mp3", source, "out.mp3")
    assert [b for a, b in _pairs(mp3) if a == "-map"] == ["0:1"]
    (said,) = recipe.warnings(presets.CATALOG["audio-mp3"], source)
    assert said == '.mp3 holds one audio track: audio tracks 2 (ac3, fra, "Commentaire") left out'


def test_pictures_keep_no_metadata() -> None:
    for preset_id in ("poster", "thumbnails"):
        args = recipe.ffmpeg_args(presets.CATALOG[preset_id], _source(ENG), "in.mkv", "out")
        assert ("-map_metadata", "-1") in _pairs(args)


def test_a_picture_subtitle_is_warned_of_unless_subtitles_are_off() -> None:
    source = _source(ENG, SRT, PGS)
    (said,) = recipe.warnings(presets.CATALOG["web-720p"], source)
    assert said.startswith("subtitle track 4 (hdmv_pgs_subtitle, deu) is made of pictures")
    assert recipe.warnings(presets.CATALOG["hls"], source) == [said]
    assert recipe.warnings(replace(presets.CATALOG["web-720p"], subtitles=False), source) == []
    assert recipe.warnings(presets.CATALOG["poster"], source) == []
    assert recipe.warnings(presets.CATALOG["web-720p"], _source(ENG, FRA, SRT)) == []


# --- custom presets ------------------------------------------------------------------------------


def test_custom_presets_choose_audio_and_subtitles() -> None:
    preset = presets.build("one", {"extends": "web-720p", "audio": "first", "subtitles": False})
    assert (preset.audio, preset.subtitles) == ("first", False)
    assert presets.digest(preset) != presets.digest(presets.build("two", {"extends": "web-720p"}))


@pytest.mark.parametrize(
    "spec",
    [{"audio": "some"}, {"audio": 1}, {"subtitles": "no"}, {"subtitles": 0}],
)
def test_custom_presets_refuse_other_stream_values(spec: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=f"preset bad: {next(iter(spec))} must be"):
        presets.build("bad", {"extends": "web-720p", **spec})


# --- HLS -----------------------------------------------------------------------------------------


def _hls(source: MediaInfo, **changes: object) -> list[str]:
    preset = replace(presets.CATALOG["hls"], **changes)  # type: ignore[arg-type]
    return recipe.ffmpeg_args(preset, source, "in.mkv", Path("out.hls"))


def test_hls_forces_keyframes_at_every_boundary_and_none_at_scene_cuts() -> None:
    pairs = _pairs(_hls(_source(ENG)))
    for n in range(4):
        assert (f"-force_key_frames:v:{n}", "expr:gte(t,n_forced*6)") in pairs
        assert (f"-sc_threshold:v:{n}", "0") in pairs
    assert ("-hls_time", "6") in pairs and ("-hls_flags", "independent_segments") in pairs


def test_hls_keyframes_for_x265() -> None:
    assert hls.keyframes(replace(presets.CATALOG["hls"], video_codec="libx265"), 1) == [
        "-force_key_frames:v:1",
        "expr:gte(t,n_forced*6)",
        "-x265-params:v:1",
        "scenecut=0:log-level=error",
    ]


def test_hls_one_audio_track_goes_in_every_rendition() -> None:
    args = _hls(_source(ENG), ladder=(720, 360))
    pairs = _pairs(args)
    assert ("-var_stream_map", "v:0,a:0,name:0 v:1,a:1,name:1") in pairs
    assert [b for a, b in pairs if a == "-map"] == ["[o0]", "0:1", "[o1]", "0:1"]
    assert ("-metadata:s:a:1", "language=eng") in pairs


def test_hls_text_subtitles_are_webvtt_each_beside_a_carrier_picture_of_its_own() -> None:
    fre = replace(SRT, index=5, language="fre", codec="ass")
    args = _hls(_source(ENG, SRT, PGS, fre), ladder=(720,))
    pairs = _pairs(args)
    assert (
        "-var_stream_map",
        "v:0,a:0,name:0 v:1,s:0,sgroup:subs,name:subtitles-0 v:2,s:1,sgroup:subs,name:subtitles-1",
    ) in pairs
    graph = args[args.index("-filter_complex") + 1]
    assert "split=3[v0][v1][v2]" in graph and "[v2]scale=16:16:flags=fast_bilinear[o2]" in graph
    assert [b for a, b in pairs if a == "-map"] == ["[o0]", "0:1", "[o1]", "0:3", "[o2]", "0:5"]
    assert ("-c:s:0", "webvtt") in pairs and ("-c:s:1", "webvtt") in pairs
    assert ("-force_key_frames:v:2", "expr:gte(t,n_forced*6)") in pairs
    assert ("-sc_threshold:v:2", "0") in pairs
    assert ("-metadata:s:s:1", "language=fre") in pairs
    assert not any(a.startswith("-map") and b == "0:4" for a, b in pairs), "PGS: pictures"


def test_hls_without_subtitles_when_the_preset_says_so() -> None:
    preset = replace(presets.CATALOG["hls"], subtitles=False)
    assert hls.subtitle_tracks(preset, _source(ENG, SRT)) == ()
    assert "sgroup" not in " ".join(_hls(_source(ENG, SRT), subtitles=False))


def test_hls_names_and_languages_from_the_source_cannot_break_the_master_playlist() -> None:
    track = replace(FRA, title='say "hi"\n#EXT-X-ENDLIST', language='fr",X')
    line = hls.media_line(track, 1, True, set(), "audio-1/index.m3u8")
    assert line.count("\n") == 0
    assert 'NAME="say hi#EXT-X-ENDLIST"' in line and "LANGUAGE" not in line  # no BCP 47 tag
    assert "DEFAULT=YES" in line


def test_hls_avc1_names_profile_and_level_from_the_sps() -> None:
    assert hls.avc1(b"\x00\x00\x00\x01\x67\x64\x00\x1f\xac") == "avc1.64001f"
    assert hls.avc1(b"\x00\x00\x01\x65\x88") is None


# --- --audio -------------------------------------------------------------------------------------


def test_audio_option_changes_every_preset_and_travels_with_its_jobs() -> None:
    from autotranscode import settings

    chosen = settings.build({"audio": "first", "preset": ["web-720p", "hls"]}).catalog
    for preset_id in ("web-720p", "hls"):
        preset = chosen.get(preset_id)
        assert preset.audio == "first"
        assert preset.spec == {"extends": preset_id, "audio": "first"}
        # A worker without the option makes the same output from the job's spec.
        assert presets.DEFAULT_CATALOG.resolve(preset_id, preset.spec) == preset
        assert presets.digest(preset) != presets.digest(presets.CATALOG[preset_id])
    assert chosen.all()[0].audio == "first"
    unchanged = settings.build({"audio": "all"}).catalog.get("web-720p")
    assert unchanged is presets.CATALOG["web-720p"]


def test_audio_option_changes_a_custom_preset_too() -> None:
    from autotranscode import settings

    custom = presets.Catalog.define({"small": {"extends": "web-720p", "crf": 30}})
    preset = settings.build({"catalog": custom, "audio": "first"}).catalog.get("small")
    assert preset.audio == "first" and "-crf" in preset.video_args
    assert presets.DEFAULT_CATALOG.resolve("small", preset.spec) == preset


@pytest.mark.parametrize(
    "spec",
    [
        {"extends": "web-720p", "audio": "first", "crf": 12},  # more than --audio changes
        {"extends": "web-1080p", "audio": "first"},  # another preset under this name
        {"extends": "web-720p", "audio": "many"},
    ],
)
def test_a_job_cannot_redefine_a_built_in_preset(spec: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        presets.build("web-720p", spec)


def test_a_config_file_cannot_name_a_custom_preset_after_a_built_in_one() -> None:
    with pytest.raises(ConfigError, match="use a new lowercase name"):
        presets.Catalog.define({"web-720p": {"extends": "web-720p", "audio": "first"}})
