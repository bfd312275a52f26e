"""Where chunks are cut with scene changes (``--chunk-scenes``): ``chunks.plan`` is pure, so
every choice is checked here on made-up keyframes and scene times."""

from __future__ import annotations

import pytest

from autotranscode.media import chunks, scenes

#: A keyframe every 2 s for 60 s.
EVERY_2S = [float(t) for t in range(0, 60, 2)]


def starts(
    keys: list[float], chunk_seconds: float, found: list[float], duration: float = 60.0
) -> list[float]:
    return [c.start for c in chunks.plan(duration, keys, chunk_seconds, None, found)]


def test_without_scenes_the_cuts_are_the_plain_ones() -> None:
    plain = [c.start for c in chunks.plan(60.0, EVERY_2S, 10.0)]
    assert plain == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert starts(EVERY_2S, 10.0, []) == plain


def test_a_cut_moves_to_a_keyframe_at_a_scene_change_within_the_window() -> None:
    keys = sorted([*EVERY_2S, 8.6, 23.1])
    # 8.6 is 1.4 s before the ideal 10 (window 2.5 s): taken; the next ideal is 18.6 and
    # 23.1 is 4.5 s from it: not taken, the plain nearest (18) is.
    assert starts(keys, 10.0, [8.6, 23.1]) == [0.0, 8.6, 18.0, 28.0, 38.0, 48.0]


def test_the_scene_keyframe_nearest_the_ideal_cut_wins() -> None:
    keys = sorted([*EVERY_2S, 8.1, 11.3])
    assert starts(keys, 10.0, [8.1, 11.3])[:2] == [0.0, 11.3]


def test_a_scene_time_from_the_thinned_pass_matches_the_keyframe_just_before_it() -> None:
    """The pass sees 5 frames a second: it reports a change up to one of them after the
    source's cut, and the keyframe nearest that report is the cut's."""
    keys = sorted([*EVERY_2S, 9.12])
    assert starts(keys, 10.0, [9.2])[:2] == [0.0, 9.12]
    assert chunks.scene_keyframes(keys, [9.2]) == {keys.index(9.12)}


def test_a_scene_change_far_from_any_keyframe_moves_nothing() -> None:
    """Cuts stay on keyframes: a change between two keyframes 2 s apart is neither's."""
    assert chunks.scene_keyframes(EVERY_2S, [9.0]) == set()
    assert starts(EVERY_2S, 10.0, [9.0]) == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]


def test_every_chunk_stays_within_the_window_of_its_length() -> None:
    keys = sorted({*EVERY_2S, *(t + 0.52 for t in range(0, 60, 3))})
    found = [t + 0.6 for t in range(0, 60, 3)]  # a change every 3 s, each on a keyframe
    planned = chunks.plan(60.0, keys, 10.0, None, found)
    assert len(planned) >= 5
    at = chunks.scene_keyframes(keys, found)
    for chunk in planned[:-1]:
        assert chunk.end is not None
        assert 7.5 - 1e-9 <= chunk.end - chunk.start <= 12.5 + 1e-9
        assert keys.index(chunk.end) in at  # there is one in every window: always taken
    assert planned[-1].end is None


def test_frame_counts_follow_the_moved_cuts() -> None:
    keys = sorted([*EVERY_2S, 8.6])
    counts = [1] * len(keys)  # one frame per keyframe: a chunk counts its keyframes
    planned = chunks.plan(60.0, keys, 10.0, counts, [8.6])
    assert planned[0].frames == keys.index(8.6)
    assert sum(c.frames or 0 for c in planned) == len(keys)


@pytest.mark.parametrize("found", [[], [100.0], [-1.0]])
def test_scene_times_outside_the_video_change_nothing(found: list[float]) -> None:
    assert starts(EVERY_2S, 10.0, found) == starts(EVERY_2S, 10.0, [])


def test_short_videos_are_still_not_cut() -> None:
    assert chunks.plan(15.0, EVERY_2S, 10.0, None, [8.0]) == []


def test_the_pass_output_is_read_whole_or_cut_short() -> None:
    text = (
        "frame:0    pts:17      pts_time:3.4\nlavfi.scd.time=3.4\n"
        "frame:1    pts:36      pts_time:7.2\nlavfi.scd.time=7.2\n"
        "frame:2    pts:53      pts_time:10.6\nlavfi.scd.ti"
    )
    assert scenes.parse(text) == [3.4, 7.2]
    assert scenes.parse("") == []


def test_the_pass_is_bounded_by_the_video_length() -> None:
    assert scenes.budget(None) == scenes.MIN_BUDGET_SECONDS
    assert scenes.budget(7200.0) == 7200.0 * scenes.BUDGET_PER_SECOND


def test_the_pass_command_thins_the_frames_and_writes_to_a_file() -> None:
    cmd = scenes.scdet_command("ffmpeg", "in:put.mp4", "/tmp/a:b'c/scenes.txt")
    graph = cmd[cmd.index("-vf") + 1]
    assert graph.startswith(f"fps={scenes.SCENE_FPS},scale={scenes.SCENE_WIDTH}:-2")
    assert "scdet=threshold=" in graph and "sc_pass=1" in graph
    assert graph.endswith(r"file=/tmp/a\\:b\\\'c/scenes.txt")
    assert cmd[cmd.index("-i") + 1] == "in:put.mp4"
