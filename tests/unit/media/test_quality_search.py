"""The quality search's arithmetic (where samples go, how the CRF is picked) and the preset
fields that ask for it: pure functions, no ffmpeg."""

from __future__ import annotations

import pytest

from autotranscode.errors import ConfigError
from autotranscode.media import presets, quality
from autotranscode.media.quality import Trial
from autotranscode.settings import build

WEB = presets.CATALOG["web-720p"]


def test_a_short_file_is_sampled_whole_a_long_one_in_spread_windows() -> None:
    assert quality.windows(3.0) == [quality.Window(0.0, 3.0)]
    spots = quality.windows(60.0)
    assert len(spots) == 2 and all(w.length == quality.SAMPLE_SECONDS for w in spots)
    assert spots[0].start < 30 < spots[1].start < 60 - quality.SAMPLE_SECONDS
    assert len(quality.windows(3600.0)) == quality.MAX_SAMPLES


def test_between_two_trials_the_crf_is_interpolated_a_little_above_the_target() -> None:
    trials = [Trial(23, 95.5, 1000), Trial(26, 92.5, 700)]
    choice = quality._pick(trials, 93.0, WEB)
    # 93.25 lies 2.25 of 3 points down from 95.5: crf 23 + 0.75 * 3, in quarter steps.
    assert choice.crf == 25.25
    assert 93.0 <= choice.vmaf <= 93.5


def test_without_a_bracket_the_largest_crf_that_reached_the_target_wins() -> None:
    trials = [Trial(23, 97.0, 1000), Trial(27, 95.0, 700)]
    assert quality._pick(trials, 93.0, WEB).crf == 27
    assert quality._next(trials, 93.0, 0, 51, WEB) == 30.5  # on by their own slope: 0.5 a step


def test_under_a_rate_cap_the_search_stops_where_size_stops_changing() -> None:
    """Lower CRFs cannot pass the cap: same size, same score; the larger CRF is as good."""
    trials = [Trial(23, 88.0, 1_000_000), Trial(18, 88.1, 1_010_000)]
    assert quality._capped(trials, 93.0)
    assert quality._pick(trials, 93.0, WEB).crf == 23
    assert not quality._capped([Trial(23, 88.0, 1_000_000), Trial(18, 91.0, 1_600_000)], 93.0)


def test_an_unreachable_target_is_not_chased_with_bytes() -> None:
    """Seen on a grainy source under web-720p's 4 Mbit/s cap: CRF 23 made 0.28 MB at
    VMAF 72, CRF 15 and 7 both 3.37 MB at ~77. A round halfway finds where the cap starts
    to bind, and the largest CRF within a point of the best score is kept."""
    trials = [Trial(23, 72.0, 280_000), Trial(15, 76.9, 3_370_000), Trial(7, 76.5, 3_370_000)]
    assert quality._capped(trials, 93.0)
    assert quality._knee(trials, WEB) == 19
    assert quality._pick(trials, 93.0, WEB).crf == 15
    trials.append(Trial(19, 76.2, 1_200_000))
    assert quality._pick(trials, 93.0, WEB).crf == 19
    # Nothing smaller than the capped trials tried: no knee to look for.
    assert quality._knee([Trial(23, 88.0, 1_000_000), Trial(18, 88.1, 1_010_000)], WEB) is None


def test_crf_steps_follow_the_encoder() -> None:
    vp9 = presets.CATALOG["webm-vp9"]
    assert quality.with_crf(vp9, 33.4).video_args[1] == "33"
    assert "24.25" in quality.with_crf(WEB, 24.3).video_args


def test_new_fields_leave_the_digests_of_presets_that_do_not_use_them_alone() -> None:
    """Digests are stamped in outputs: a release adding fields must not redo every file."""
    before = "2576f9299fa0eebc"  # web-720p's digest without quality fields (RECIPE_VERSION 3)
    assert presets.digest(WEB) == before
    targeted = presets.build("web-720p", {"extends": "web-720p", "quality": "vmaf:93"})
    assert targeted.quality == 93.0 and presets.digest(targeted) != before
    measured = presets.build("web-720p", {"extends": "web-720p", "measure_quality": True})
    assert presets.digest(measured) == before  # the same output, only scored


def test_quality_is_checked_and_only_given_to_presets_that_can_take_it() -> None:
    with pytest.raises(ConfigError, match='look like "vmaf:93"'):
        presets.build("mine", {"extends": "web-720p", "quality": "93"})
    with pytest.raises(ConfigError, match="needs a video preset with a crf"):
        presets.build("mine", {"extends": "audio-aac", "quality": "vmaf:93"})
    s = build({"quality": "vmaf:95", "preset": ["web-720p", "audio-aac", "poster"]})
    chosen = {p: s.catalog.get(p) for p in s.preset}
    assert chosen["web-720p"].quality == 95.0
    assert chosen["audio-aac"].quality is None and chosen["poster"].quality is None
    # It travels with the job: a worker without the option makes the same output.
    spec = chosen["web-720p"].spec
    assert spec is not None
    assert presets.DEFAULT_CATALOG.resolve("web-720p", spec).quality == 95.0
    with pytest.raises(ConfigError, match="--quality: use vmaf:N"):
        build({"quality": "psnr:40"})


@pytest.mark.parametrize("chosen", [["hls"], ["audio-aac"], ["audio-mp3", "poster"]])
def test_quality_with_no_preset_that_can_take_it_is_refused(chosen: list[str]) -> None:
    """``--quality`` with only presets it cannot tune (HLS, audio, pictures) would be
    ignored without a word: refused in one line instead, naming them."""
    with pytest.raises(ConfigError, match="--quality: none of the presets"):
        build({"quality": "vmaf:90", "preset": chosen})
