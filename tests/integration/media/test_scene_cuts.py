"""``--chunk-scenes`` on a real clip: hard scene cuts at known times, a keyframe at each and
every 2 s; the chunks' cuts land on the scene cuts' keyframes within the window, on the
plain ones elsewhere, and the scdet pass failing or running out of time only means plain cuts."""

from __future__ import annotations

import itertools
import re
import threading
from pathlib import Path

import pytest

from autotranscode.errors import TranscodeError
from autotranscode.media import chunks, scenes, transcoder
from autotranscode.media.probe import probe

from conftest import make_scene_clip

RATE = 25
#: Frames of each scene: cuts at 3.4, 7.12, 10.6, 13.2 and 17.52 s; 21 s in all.
SCENE_FRAMES = (85, 93, 87, 65, 108, 87)
CUTS = (3.4, 7.12, 10.6, 13.2, 17.52)
CHUNK_SECONDS = 4.0


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return transcoder.find_ffmpeg()


@pytest.fixture(scope="module")
def scene_clip(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("scenes") / "scenes.mp4"
    return make_scene_clip(ffmpeg, dst, SCENE_FRAMES, RATE)


def test_cuts_land_on_the_scene_cuts_keyframes_within_the_window(
    ffmpeg: str, scene_clip: Path
) -> None:
    keys = chunks.keyframes(scene_clip)
    assert all(any(abs(k - cut) < 1e-6 for k in keys) for cut in CUTS)
    source = probe(scene_clip)
    plain = chunks.chunk_plan(scene_clip, source, CHUNK_SECONDS)
    assert [c.start for c in plain] == pytest.approx([0.0, 4.0, 8.0, 12.0, 16.0])
    said: list[str] = []
    planned = chunks.chunk_plan(
        scene_clip, source, CHUNK_SECONDS, scene_cuts=True, ffmpeg=ffmpeg, say=said.append
    )
    # 13.2 is 1.4 s before the ideal 14.6 (10.6 + 4), outside the window of 1 s: plain 14.
    assert [c.start for c in planned] == pytest.approx([0.0, *CUTS[:3], 14.0, CUTS[4]])
    assert sum(c.frames or 0 for c in planned) == sum(SCENE_FRAMES)
    assert all(c.end == n.start for c, n in itertools.pairwise(planned))
    assert len(said) == 1
    assert re.fullmatch(
        r"scene changes: 5 found in [0-9.]+s over the whole video; 4 of 5 cuts moved to one",
        said[0],
    )


def test_a_failed_pass_leaves_the_plain_cuts(scene_clip: Path) -> None:
    source = probe(scene_clip)
    said: list[str] = []
    failed = chunks.chunk_plan(
        scene_clip, source, CHUNK_SECONDS, scene_cuts=True, ffmpeg="/bin/false", say=said.append
    )
    assert failed == chunks.chunk_plan(scene_clip, source, CHUNK_SECONDS)
    assert said == ["scene changes: none (the pass failed); 0 of 4 cuts moved to one"]


def test_the_pass_is_bounded_and_stops_with_its_job(ffmpeg: str, scene_clip: Path) -> None:
    cut_short = scenes.scene_changes(ffmpeg, scene_clip, 21.0, seconds=0.0)
    assert cut_short is not None and not cut_short.complete
    assert "out of time" in str(cut_short)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TranscodeError, match="cancelled"):
        scenes.scene_changes(ffmpeg, scene_clip, 21.0, cancel=cancel)
