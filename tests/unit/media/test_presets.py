"""The preset catalog and the ffmpeg command lines it produces."""

from __future__ import annotations

import itertools

import pytest

from autotranscode.errors import ConfigError, MediaError
from autotranscode.media import presets, recipe
from autotranscode.media.presets import Preset
from autotranscode.media.probe import MediaInfo


def _video(
    height: int | None = 240, audio: bool = True, width: int | None = None, rotation: int = 0
) -> MediaInfo:
    """A landscape source (16:9 unless ``width`` says otherwise)."""
    if width is None and height is not None:
        width = max(height * 16 // 9, height)
    return MediaInfo(
        duration=2.0,
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        video_codec="h264",
        width=width,
        height=height,
        rotation=rotation,
        audio_codec="aac" if audio else None,
    )


AUDIO_ONLY = MediaInfo(duration=2.0, format_name="mov,mp4,m4a,3gp,3g2,mj2", audio_codec="aac")


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    return list(itertools.pairwise(args))


# --- catalog -------------------------------------------------------------------------------------


def test_catalog_has_the_documented_presets_and_default() -> None:
    assert {"web-720p", "web-1080p", "audio-aac"} <= set(presets.CATALOG)
    assert presets.DEFAULT_PRESET == "web-720p"
    assert presets.DEFAULT_PRESET in presets.CATALOG
    for preset_id, preset in presets.CATALOG.items():
        assert preset.id == preset_id
        assert preset.description
        assert preset.extension.startswith(".")


def test_get_by_id() -> None:
    for preset_id in ("web-720p", "web-1080p", "audio-aac"):
        assert presets.DEFAULT_CATALOG.get(preset_id) is presets.CATALOG[preset_id]


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("1351620000001-000010", "web-720p"),
        ("1351620000001-100070", "web-720p"),
        ("1351620000001-000001", "web-1080p"),
    ],
)
def test_get_by_elastic_transcoder_system_preset_id(alias: str, expected: str) -> None:
    assert presets.DEFAULT_CATALOG.get(alias).id == expected


def test_aliases_are_unique_and_never_shadow_ids() -> None:
    aliases = [a for p in presets.CATALOG.values() for a in p.aliases]
    assert len(aliases) == len(set(aliases))
    assert not set(aliases) & set(presets.CATALOG)


@pytest.mark.parametrize("unknown", ["web-4k", "", "WEB-720P", "1351620000001-999999"])
def test_unknown_preset_is_a_config_error_naming_the_known_ones(unknown: str) -> None:
    with pytest.raises(ConfigError) as info:
        presets.DEFAULT_CATALOG.get(unknown)
    message = str(info.value)
    assert repr(unknown) in message
    for known in presets.CATALOG:
        assert known in message


def test_a_catalog_holds_the_built_in_presets_and_its_custom_ones() -> None:
    catalog = presets.Catalog.define(
        {
            "mine": {"extends": "web-720p", "crf": 30},
            "small": {"extends": "web-720p", "height": 240},
        }
    )
    mine = catalog.get("mine")
    assert mine == presets.build("mine", {"extends": "web-720p", "crf": 30})
    assert mine.spec == {"extends": "web-720p", "crf": 30}  # travels with its jobs
    assert catalog.get("web-720p") is presets.CATALOG["web-720p"]
    assert catalog.get("1351620000001-000001") is presets.CATALOG["web-1080p"]
    assert [p.id for p in catalog.all()] == [*presets.CATALOG, "mine", "small"]
    assert [p.id for p in presets.DEFAULT_CATALOG.all()] == list(presets.CATALOG)
    with pytest.raises(ConfigError) as info:
        catalog.get("web-4k")
    assert str(info.value).endswith(f"known presets: {', '.join([*presets.CATALOG])}, mine, small")


def test_catalogs_do_not_see_each_other_s_custom_presets() -> None:
    """Two configurations in one process: each its own custom presets (a global had them share)."""
    ours = presets.Catalog.define({"mine": {"extends": "web-720p", "crf": 26}})
    theirs = presets.Catalog.define(
        {"mine": {"extends": "web-720p", "crf": 30}, "other": {"extends": "audio-aac"}}
    )
    assert presets.digest(ours.get("mine")) != presets.digest(theirs.get("mine"))
    with pytest.raises(ConfigError, match="unknown preset 'other'"):
        ours.get("other")
    with pytest.raises(ConfigError, match="unknown preset 'mine'"):
        presets.DEFAULT_CATALOG.get("mine")
    assert ours == presets.Catalog.define({"mine": {"extends": "web-720p", "crf": 26}})
    assert ours != theirs


def test_a_job_s_own_definition_wins_over_the_catalog_s() -> None:
    """A custom preset travels with its job, so a worker needs no config to run it."""
    catalog = presets.Catalog.define({"mine": {"extends": "web-720p", "crf": 30}})
    sent = {"extends": "web-720p", "crf": 20}
    assert presets.DEFAULT_CATALOG.resolve("mine", sent) == presets.build("mine", sent)
    assert catalog.resolve("mine", sent) == presets.build("mine", sent)
    assert catalog.resolve("mine", None) is catalog.get("mine")
    with pytest.raises(ConfigError, match="unknown preset 'mine'"):
        presets.DEFAULT_CATALOG.resolve("mine", None)


def test_a_bad_custom_preset_makes_no_catalog() -> None:
    with pytest.raises(ConfigError, match="preset bad: unknown settings colour"):
        presets.Catalog.define({"bad": {"extends": "web-720p", "colour": "red"}})
    with pytest.raises(ConfigError, match="use a new lowercase name"):
        presets.Catalog.define({"web-720p": {"extends": "web-1080p"}})


# --- ffmpeg arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize("preset_id", ["web-720p", "web-1080p"])
def test_video_presets_make_web_ready_h264_aac_mp4(preset_id: str) -> None:
    preset = presets.CATALOG[preset_id]
    args = recipe.ffmpeg_args(preset, _video(height=1080), "in put.mov", "out/clip.mp4")
    pairs = _pairs(args)
    assert ("-movflags", "+faststart") in pairs
    assert ("-c:v", "libx264") in pairs
    assert ("-c:a", "aac") in pairs
    assert ("-map", "0:v:0") in pairs
    assert ("-map", "0:a:0") in pairs
    assert ("-i", "in put.mov") in pairs
    vf = args[args.index("-vf") + 1]
    assert "format=yuv420p" in vf
    assert args[-1] == "out/clip.mp4"
    assert "-nostdin" in args
    assert preset.extension == ".mp4"


def test_video_preset_without_source_audio_maps_video_only() -> None:
    args = recipe.ffmpeg_args(presets.CATALOG["web-720p"], _video(audio=False), "in.mp4", "out.mp4")
    assert "0:a:0" not in args
    assert "-c:a" not in args
    assert ("-c:v", "libx264") in _pairs(args)


def test_audio_preset_maps_audio_only() -> None:
    preset = presets.CATALOG["audio-aac"]
    assert preset.audio_only
    for source in (_video(), AUDIO_ONLY):
        args = recipe.ffmpeg_args(preset, source, "in.mp4", "out.m4a")
        pairs = _pairs(args)
        assert "-vn" in args
        assert ("-map", "0:a:0") in pairs
        assert ("-c:a", "aac") in pairs
        assert "0:v:0" not in args
        assert "-c:v" not in args
        assert "-vf" not in args
    assert preset.extension == ".m4a"


def test_audio_preset_on_a_silent_source_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="audio"):
        recipe.ffmpeg_args(presets.CATALOG["audio-aac"], _video(audio=False), "in.mp4", "out.m4a")


@pytest.mark.parametrize("preset_id", ["web-720p", "web-1080p"])
def test_video_preset_on_an_audio_only_source_is_a_media_error(preset_id: str) -> None:
    with pytest.raises(MediaError, match="video"):
        recipe.ffmpeg_args(presets.CATALOG[preset_id], AUDIO_ONLY, "in.m4a", "out.mp4")


# --- never upscale -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset_id", "source_height", "expected"),
    [
        ("web-720p", 240, 240),
        ("web-720p", 720, 720),
        ("web-720p", 1080, 720),
        ("web-720p", 2160, 720),
        ("web-720p", 241, 240),
        ("web-720p", 719, 718),
        ("web-1080p", 240, 240),
        ("web-1080p", 1080, 1080),
        ("web-1080p", 1081, 1080),
        ("web-1080p", 2160, 1080),
    ],
)
def test_output_height_is_bounded_even_and_never_upscaled(
    preset_id: str, source_height: int, expected: int
) -> None:
    preset = presets.CATALOG[preset_id]
    assert preset.output_height(_video(height=source_height)) == expected
    args = recipe.ffmpeg_args(preset, _video(height=source_height), "in.mp4", "out.mp4")
    assert f":{expected}:flags=" in args[args.index("-vf") + 1]


@pytest.mark.parametrize(
    ("width", "height", "rotation", "expected"),
    [
        (1920, 1080, 0, (1280, 720)),  # landscape: the short side is the height
        (1080, 1920, 0, (720, 1280)),  # portrait: the short side is the width
        (1920, 1080, 90, (720, 1280)),  # a phone's portrait clip, stored landscape + rotation
        (1920, 1080, 270, (720, 1280)),
        (1920, 1080, 180, (1280, 720)),
        (640, 480, 90, (480, 640)),  # small: kept, only turned
        (1440, 1080, 0, (960, 720)),  # 4:3 keeps its aspect ratio
    ],
)
def test_sizes_bound_the_displayed_short_side_and_follow_rotation(
    width: int, height: int, rotation: int, expected: tuple[int, int]
) -> None:
    source = _video(height=height, width=width, rotation=rotation)
    preset = presets.CATALOG["web-720p"]
    assert preset.output_size(source) == expected
    args = recipe.ffmpeg_args(preset, source, "in.mp4", "out.mp4")
    assert args[args.index("-vf") + 1].startswith(f"scale={expected[0]}:{expected[1]}:")


def test_output_height_of_a_preset_without_a_bound_keeps_the_source_made_even() -> None:
    keep = Preset(id="keep", description="keep size", extension=".mp4", video_codec="libx264")
    assert keep.output_height(_video(height=481)) == 480
    assert keep.output_height(_video(height=1080)) == 1080


def test_output_height_is_none_for_audio() -> None:
    assert presets.CATALOG["audio-aac"].output_height(_video(height=1080)) is None
    assert presets.CATALOG["web-720p"].output_height(AUDIO_ONLY) is None


# --- digest --------------------------------------------------------------------------------------


def test_digest_changes_with_what_a_preset_makes_and_only_with_that() -> None:
    """Part of a file's identity: a changed crf must make a new output, a new description not."""
    base = presets.CATALOG["web-720p"]
    crf26 = presets.build("mine", {"extends": "web-720p", "crf": 26})
    crf30 = presets.build("mine", {"extends": "web-720p", "crf": 30})
    described = presets.build("mine", {"extends": "web-720p", "description": "ours"})
    digests = {presets.digest(p) for p in (base, crf26, crf30)}
    assert len(digests) == 3
    assert all(len(d) == 16 and int(d, 16) >= 0 for d in digests)
    assert presets.digest(described) == presets.digest(base)  # same output, other words
    assert presets.digest(crf26) == presets.digest(
        presets.build("mine", {"extends": "web-720p", "crf": 26})
    )
    wider = presets.build("mine", {"extends": "web-720p", "extra_args": ["-g", "50"]})
    assert presets.digest(wider) != presets.digest(base)
    all_digests = [presets.digest(p) for p in presets.CATALOG.values()]
    assert len(set(all_digests)) == len(all_digests)
