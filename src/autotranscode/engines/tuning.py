"""One output's quality, as the worker makes it: the CRF searched for a VMAF target before
the encode, the output scored after it (``media.quality`` does the work).

While the search runs the file is not left at 0 % without a word: the search is the
first ``SEARCH_SHARE`` of the output's progress, a round at a time, and the file's log
says which round it is in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import TranscodeError
from ..media import conform, quality
from ..media.presets import Preset
from ..media.probe import MediaInfo

log = logging.getLogger(__name__)

#: The part of an output's progress bar the search takes (its cost goal: ≤ 25 % of the encode).
SEARCH_SHARE = 0.2

#: Where progress goes: fraction of this output done (0..1), ffmpeg's speed factor.
Progress = Callable[[float, "float | None"], None]


class Tuning:
    """The preset an output is made with (its CRF searched, when it has a target), the
    progress of the whole, and the scores its outcome records."""

    def __init__(
        self,
        ffmpeg: str,
        preset: Preset,
        source: MediaInfo,
        src: Path,
        workdir: Path,
        report: Progress,
        say: Callable[[str], None],
        cancel: threading.Event | None = None,
    ) -> None:
        self.ffmpeg, self.preset, self.source, self.src = ffmpeg, preset, source, src
        self.workdir, self.report, self.say, self.cancel = workdir, report, say, cancel
        self.choice: quality.Choice | None = None

    @property
    def searches(self) -> bool:
        """A target, and video to encode: a source the preset would remux is not searched
        (a copy has no CRF, and re-encoding it to reach the target adds a generation's
        loss; ``remux = false`` asks for the search and the encode)."""
        if self.preset.quality is None or not self.source.has_video:
            return False
        return not (self.preset.remux and conform.judge(self.preset, self.source).conforms)

    def search(self) -> Preset:
        """The preset to encode with: its own, or at the CRF found for its VMAF target."""
        if not self.searches or self.preset.quality is None:
            return self.preset
        target = self.preset.quality
        small = quality.too_small(self.preset, self.source)
        if small:
            self.say(f"VMAF {target:g} not searched: {small}; encoded at the preset's crf")
            return self.preset
        self.say(f"searching the CRF for VMAF {target:g} on samples of the source")
        self.report(0.0, None)
        choice = quality.search(
            self.ffmpeg,
            self.preset,
            self.source,
            self.src,
            self.workdir,
            target,
            note=self._round,
            cancel=self.cancel,
        )
        tried = ", ".join(f"crf {t.crf:g}: {t.vmaf:.2f}" for t in choice.trials)
        self.say(f"crf {choice.crf:g} chosen for VMAF {target:g} (samples: {tried})")
        self.choice = choice
        return quality.with_crf(self.preset, choice.crf)

    def progress(self, fraction: float, speed: float | None) -> None:
        """The encode's progress, after the search's share when there was one."""
        if self.choice is None:
            self.report(fraction, speed)
        else:
            self.report(SEARCH_SHARE + (1 - SEARCH_SHARE) * fraction, speed)

    def scores(self, output: Path) -> dict[str, float]:
        """``vmaf`` and ``crf`` for the output's status: measured (sampled) when asked or
        searched for, else nothing; a score that cannot be taken is logged, not fatal (a
        cancel is raised: the job goes back)."""
        found: dict[str, float] = {}
        if self.choice is not None:
            found["crf"] = self.choice.crf
        if not (self.searches or self.preset.measure_quality) or not self.source.has_video:
            return found
        try:
            found["vmaf"] = round(
                quality.measure(
                    self.ffmpeg, self.preset, self.source, self.src, output, self.cancel
                ),
                2,
            )
        except TranscodeError as exc:
            if self.cancel is not None and self.cancel.is_set():
                raise
            log.warning("VMAF of %s not measured: %s", output, exc)
            self.say(f"VMAF not measured: {exc}")
            return found
        self.say(f"VMAF {found['vmaf']:g} (sampled)")
        return found

    def _round(self, n: int, most: int) -> None:
        if n == 0:
            self.say("searching quality: decoding the samples")
        else:
            self.say(f"searching quality, round {n} of at most {most}")
        self.report(SEARCH_SHARE * n / (most + 1), None)
