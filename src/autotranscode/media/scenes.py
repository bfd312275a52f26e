"""Scene changes of a video, for chunk cuts where the picture changes anyway
(``--chunk-scenes``, issue 19).

A chunk starts on a keyframe; a keyframe at a scene change is the best place for a cut:
the encoder would spend a keyframe there in any case, and the two chunks share no picture,
so the bitrate and quality of their encodes do not jump where they meet. ``chunks.plan``
takes the times found here and prefers such keyframes near each ideal cut.

How they are found: ffmpeg's ``scdet`` on a cheap picture of the video, decoded once and
thinned to SCENE_FPS frames a second of SCENE_WIDTH pixels before it is looked at. The
decode is the cost, so it is made cheaper where the picture lost cannot matter: the loop
filter is skipped (its blur cannot be seen at that size, -10 % of the pass) and so are
B-frames (-40 %): a cut is only ever moved to a keyframe, which is always decoded, and
what it is compared with is the last frame decoded before it, of the shot before. Not
``-skip_frame nokey``: keyframes seconds apart always differ, a scene change is found
between neighbouring frames. The pass is bounded (``budget``): when it runs out, the
changes found so far are kept and the rest of the file is cut plainly. A time is where
the thinned frame shows the new scene, up to one thinned frame after the source's own
cut (MATCH_SECONDS).

The pass is an ffmpeg like any other of a job's (``runner.run``): it dies with its worker
and stops on the job's cancel.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import TranscodeError
from .runner import Deadline, run

log = logging.getLogger(__name__)

#: Frames a second ``scdet`` looks at, and their width: enough to tell scenes apart.
SCENE_FPS = 5
SCENE_WIDTH = 160
#: ``scdet``'s threshold (its default): the score, 0-100, of a change between two frames.
THRESHOLD = 10.0
#: How far a keyframe may be from a time found here and still be that scene change: one
#: thinned frame, and a little for rounding.
MATCH_SECONDS = 1.0 / SCENE_FPS + 0.02
#: The pass's time bound: this many seconds of it per second of video, and at least
#: MIN_BUDGET_SECONDS. On one core the pass took 0.03 s per second of a 2.7 Mbit/s 1080p
#: H.264 source and 0.22 s at 30 Mbit/s; a slower one (4K HEVC) is cut short, not waited
#: for (what it found by then is kept: SIGTERM lets ffmpeg close its file).
BUDGET_PER_SECOND = 0.25
MIN_BUDGET_SECONDS = 30.0

_TIME = re.compile(r"^lavfi\.scd\.time=(-?[0-9.]+(?:e[-+]?[0-9]+)?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Scenes:
    """What the pass found: the scene changes' times (s from the file's start, as
    ``chunks.Chunk``'s), how long it took, and whether it saw the whole video."""

    times: tuple[float, ...]
    seconds: float
    complete: bool

    def __str__(self) -> str:
        seen = "the whole video" if self.complete else "part of the video (out of time)"
        return f"{len(self.times)} found in {self.seconds:.1f}s over {seen}"


def budget(duration: float | None) -> float:
    """The pass's time bound for a video of ``duration`` seconds (see BUDGET_PER_SECOND)."""
    return max(MIN_BUDGET_SECONDS, BUDGET_PER_SECOND * (duration or 0.0))


def scdet_command(ffmpeg: str, src: Path | str, found: Path | str) -> list[str]:
    """ffmpeg's command for the pass: the first video stream's frames, thinned and made
    small, through ``scdet``, whose changes (only those frames pass) are written to
    ``found`` as ``metadata`` prints them (a file: stderr is bounded, a film has
    thousands)."""
    graph = (
        f"fps={SCENE_FPS},scale={SCENE_WIDTH}:-2:flags=fast_bilinear,"
        f"scdet=threshold={THRESHOLD:g}:sc_pass=1,"
        f"metadata=mode=print:key=lavfi.scd.time:file={_escaped(str(found))}"
    )
    return [
        *(ffmpeg, "-loglevel", "level+info", "-progress", "pipe:1", "-nostats"),
        *("-hide_banner", "-nostdin", "-skip_loop_filter", "all", "-skip_frame", "bidir"),
        *("-i", str(src)),
        *("-map", "0:v:0", "-an", "-sn", "-dn", "-vf", graph, "-f", "null", "-"),
    ]


def parse(text: str) -> list[float]:
    """The times in what ``metadata`` printed, sorted (a last line cut short is skipped)."""
    return sorted({float(m) for m in _TIME.findall(text)})


def scene_changes(
    ffmpeg: str,
    src: Path | str,
    duration: float | None,
    *,
    cancel: threading.Event | None = None,
    seconds: float | None = None,
) -> Scenes | None:
    """The scene changes of ``src``'s video, looked for during ``seconds`` at most
    (``budget`` of ``duration`` by default); None when the pass failed (the plain cuts
    then). TranscodeError if ``cancel`` stopped it: the job stops, as for any other run."""
    began = time.monotonic()
    bound = Deadline(cancel, began + (seconds if seconds is not None else budget(duration)))
    with tempfile.TemporaryDirectory(prefix="scenes-") as work:
        found = Path(work) / "scenes.txt"
        try:
            run(scdet_command(ffmpeg, src, found), duration=duration, cancel=bound)
            complete = True
        except TranscodeError as exc:
            if cancel is not None and cancel.is_set():
                raise
            if not bound.expired:
                log.warning("scene detection on %s failed: %s", src, exc)
                return None
            complete = False
        try:
            text = found.read_text(errors="replace")
        except FileNotFoundError:
            if complete:
                log.warning("scene detection on %s wrote nothing", src)
                return None
            text = ""  # stopped before its first frame: nothing found, plain cuts
        except OSError as exc:
            log.warning("scene detection on %s wrote nothing readable: %s", src, exc)
            return None
    scenes = Scenes(tuple(parse(text)), time.monotonic() - began, complete)
    log.info("scene detection on %s: %s", src, scenes)
    return scenes


def _escaped(path: str) -> str:
    """A path as a value in a filter graph: its ``\\``, ``'``, ``:`` and the graph's own
    separators escaped (the temporary folder's name is ours, but TMPDIR is not)."""
    once = re.sub(r"([\\':])", r"\\\1", path)
    return re.sub(r"([\\'\[\],;])", r"\\\1", once)
