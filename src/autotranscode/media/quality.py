"""A VMAF target turned into a CRF for one file, and an output's VMAF measured.

One CRF for every source wastes bytes on easy pictures and starves hard ones. With a
preset's ``quality = "vmaf:93"`` the CRF is searched per file the way ab-av1's
``crf-search`` does it: short samples spread across the file are encoded at a guess,
scored against the source with libvmaf, the next guess interpolated from the scores,
and the largest CRF (the smallest output) that reaches the target is the one used.

The search must cost a small part of the encode it tunes (``bench/quality.py``):

- every round is two ffmpeg runs, whatever the number of samples: the samples are cut
  by input seeking (``-ss`` before ``-i``, only the frames needed are decoded) and
  joined by ``concat`` in one encode; the score reads the same windows of the source
  again, through the same filters as the encode (so the reference is the picture the
  encoder was given, at the output's size) and scores every ``SUBSAMPLE``-th frame;
- the first guess is the preset's own CRF, the second assumes ``VMAF_PER_CRF``; once
  two scores lie on either side of the target, the CRF is interpolated between them and
  no more samples are encoded; else a third guess extrapolates from the two: at most
  ``MAX_ROUNDS`` rounds, one when a score lands within ``CLOSE_ENOUGH`` above the target;
- under a rate cap (``max_bitrate_k``) a lower CRF stops making a larger sample once the
  cap binds: the search stops there, as lower would only cost time, after one more round
  halfway to the nearest CRF the cap left smaller (``_knee``); a target out of reach
  gets the largest CRF within ``CLOSE_ENOUGH`` of the best score, not the best at any size.

Scored frames are paired by their index (``setpts=N``) on both sides, not by timestamps
that containers round differently.

Each ffmpeg here is run as the encode's is (``runner.run``: it dies with the
worker, even one killed with -9) and a cancel stops the one running, not only the next.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ConfigError, TranscodeError
from . import colour, interlace, runner, video
from .presets import Preset
from .probe import MediaInfo

log = logging.getLogger(__name__)

#: libvmaf's models, both built into the bundled ffmpeg; the 4k one from ``UHD_LINES`` up.
MODEL = "vmaf_v0.6.1"
MODEL_4K = "vmaf_4k_v0.6.1"
UHD_LINES = 2160
#: Samples: at most this many, this long each, one per ``SECONDS_PER_SAMPLE`` of the file.
MAX_SAMPLES = 3
SAMPLE_SECONDS = 2.0
SECONDS_PER_SAMPLE = 30.0
#: A file this short is sampled whole: windows would cover most of it anyway.
WHOLE_BELOW_SECONDS = 8.0
#: libvmaf crashes (SIGSEGV) on a picture 16 px or less a side: smaller ones are not scored.
MIN_SIDE = 32
#: libvmaf scores one frame in this many (``n_subsample``).
SUBSAMPLE = 3
MAX_ROUNDS = 3
#: A score this close above the target ends the search.
CLOSE_ENOUGH = 1.0
#: Interpolated between two trials, the CRF is chosen for this much above the target.
MARGIN = 0.25
#: The second guess's assumption: VMAF points lost per CRF step (x264 near 90-95: ~0.8-1.2).
VMAF_PER_CRF = 1.0
#: The furthest one guess moves from the last.
MAX_STEP = 8.0
#: Samples this close in size are the rate cap's doing, not the CRF's.
SAME_SIZE = 0.02
#: CRF bounds per encoder (x264/x265: 0-51; VP9 and SVT-AV1: 0-63).
CRF_RANGE = {"libx264": (0.0, 51.0), "libx265": (0.0, 51.0)}
DEFAULT_CRF_RANGE = (0.0, 63.0)
#: Encoders that take a fractional CRF; others get whole numbers.
FRACTIONAL_CRF = frozenset({"libx264", "libx265"})
#: The samples are kept raw up to this size (fastest to read again), else losslessly packed
#: (FFV1: 4K at 60 frames a second would be gigabytes raw).
MAX_RAW_BYTES = 1 << 30
#: A sample's encode or score that takes longer has stuck.
RUN_TIMEOUT_S = 600.0

#: Frames numbered in one time base on both sides of a score, so they pair by index.
_BY_INDEX = "settb=1/1000,setpts=N"
_SCORE = re.compile(r"VMAF score: ([0-9.]+)")

#: Told the sample being worked on (1-based) and how many a search can take at most.
NoteFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Window:
    start: float
    length: float


@dataclass(frozen=True)
class Trial:
    crf: float
    vmaf: float
    #: Bytes of the encoded samples.
    size: int


@dataclass(frozen=True)
class Choice:
    """What the search settled on: the CRF, the samples' VMAF there, and the way to it."""

    crf: float
    vmaf: float
    trials: tuple[Trial, ...]


def windows(duration: float | None) -> list[Window]:
    """Where the samples are: the whole of a short file, else evenly spread windows."""
    if not duration or duration < WHOLE_BELOW_SECONDS:
        return [Window(0.0, duration or WHOLE_BELOW_SECONDS)]
    count = int(min(MAX_SAMPLES, max(2, duration // SECONDS_PER_SAMPLE)))
    return [
        Window(round((i + 0.5) * duration / count - SAMPLE_SECONDS / 2, 3), SAMPLE_SECONDS)
        for i in range(count)
    ]


def crf_of(preset: Preset) -> float:
    args = preset.video_args
    if "-crf" not in args:
        raise ConfigError(f"preset {preset.id}: a quality target needs a constant-quality base")
    return float(args[args.index("-crf") + 1])


def with_crf(preset: Preset, crf: float) -> Preset:
    """The preset encoding at ``crf`` (its digest is not the file's: stamp with the original)."""
    args = list(preset.video_args)
    args[args.index("-crf") + 1] = _crf_text(preset, crf)
    return replace(preset, video_args=tuple(args))


def model(size: tuple[int, int]) -> str:
    return MODEL_4K if min(size) >= UHD_LINES else MODEL


def search(
    ffmpeg: str,
    preset: Preset,
    source: MediaInfo,
    src: Path,
    workdir: Path,
    target: float,
    note: NoteFn | None = None,
    cancel: threading.Event | None = None,
) -> Choice:
    """The largest CRF whose samples score ``target`` or more (the smallest output)."""
    size = _size(preset, source)
    low, high = CRF_RANGE.get(str(preset.video_codec), DEFAULT_CRF_RANGE)
    trials: list[Trial] = []
    crf = crf_of(preset)
    stem = workdir / f"quality-{threading.get_ident()}"
    reference, sample = stem.with_suffix(".nut"), stem.with_suffix(".mkv")
    try:
        if note is not None:
            note(0, MAX_ROUNDS)
        _reference(ffmpeg, preset, source, src, size, reference, cancel)
        for n in range(1, MAX_ROUNDS + 1):
            _check(cancel)
            if note is not None:
                note(n, MAX_ROUNDS)
            trial = _trial(ffmpeg, with_crf(preset, crf), source, size, reference, sample, cancel)
            log.debug("quality search: crf %s -> vmaf %.2f, %d bytes", crf, trial.vmaf, trial.size)
            trials.append(trial)
            if target <= trial.vmaf <= target + CLOSE_ENOUGH:
                break
            if _capped(trials, target):
                knee = _knee(trials, preset)
                if knee is not None:  # one more round, where the cap starts to bind
                    trials.append(
                        _trial(
                            ffmpeg, with_crf(preset, knee), source, size, reference, sample, cancel
                        )
                    )
                break
            if _bracket(trials, target) is not None:
                break  # interpolated between the two (``_pick``): no round more needed
            following = _next(trials, target, low, high, preset)
            if following is None or any(t.crf == following for t in trials):
                break
            crf = following
    finally:
        reference.unlink(missing_ok=True)
        sample.unlink(missing_ok=True)
    return _pick(trials, target, preset)


def measure(
    ffmpeg: str,
    preset: Preset,
    source: MediaInfo,
    src: Path,
    output: Path,
    cancel: threading.Event | None = None,
) -> float:
    """The output's VMAF against its source, over the search's windows (``windows``)."""
    size = _size(preset, source)
    spots = windows(source.duration)
    chain = ",".join(video.filter_chain(preset, source, size))
    tag = colour.output(preset, source).setparams()
    count = len(spots)
    graph = ";".join(
        [
            *(f"[{i}:v]{tag},setpts=PTS-STARTPTS[d{i}]" for i in range(count)),
            *(f"[{count + i}:v]{chain},setpts=PTS-STARTPTS[r{i}]" for i in range(count)),
            _joined("d", count, "dis"),
            _joined("r", count, "ref"),
        ]
    )
    inputs = [arg for w in spots for arg in _seek(w, output)]
    inputs += [arg for w in spots for arg in _seek(w, src)]
    return _score(ffmpeg, size, inputs, graph, cancel)


def _size(preset: Preset, source: MediaInfo) -> tuple[int, int]:
    size = preset.output_size(source)
    if size is None:
        raise TranscodeError("the output has no picture to score")
    fault = too_small(preset, source)
    if fault:
        raise TranscodeError(fault)
    return size


def too_small(preset: Preset, source: MediaInfo) -> str | None:
    """Why the output's picture cannot be scored (under MIN_SIDE a side), or None."""
    size = preset.output_size(source)
    if size is None or min(size) >= MIN_SIDE:
        return None
    return f"the picture is {size[0]}x{size[1]}, too small for VMAF (under {MIN_SIDE} px a side)"


def _reference(
    ffmpeg: str,
    preset: Preset,
    source: MediaInfo,
    src: Path,
    size: tuple[int, int],
    dst: Path,
    cancel: threading.Event | None,
) -> None:
    """The samples as the encoder is given them (through the encode's filters, at the
    output's size), decoded once, kept raw: each round encodes and scores from it."""
    spots = windows(source.duration)
    chain = ",".join(video.filter_chain(preset, source, size))
    fields = interlace.interlaced(source) and preset.deinterlace == "double-rate"
    frames = sum(w.length for w in spots) * (source.frame_rate or 60) * (2 if fields else 1)
    raw = frames * size[0] * size[1] * (3 if colour.keeps_hdr(preset, source) else 1.5)
    codec = ["rawvideo"] if raw <= MAX_RAW_BYTES else ["ffv1", "-level", "3", "-slices", "4"]
    graph = ";".join(
        [
            *(f"[{i}:v]{chain},setpts=PTS-STARTPTS[v{i}]" for i in range(len(spots))),
            _joined("v", len(spots), "out", "null"),
        ]
    )
    _run(
        [
            ffmpeg,
            *("-hide_banner", "-nostdin", "-y", "-loglevel", "error"),
            *[arg for w in spots for arg in _seek(w, src)],
            *("-filter_complex", graph, "-map", "[out]", "-c:v", *codec),
            *("-fps_mode", "passthrough", "-f", "nut", str(dst)),
        ],
        cancel,
    )


def _trial(
    ffmpeg: str,
    preset: Preset,
    source: MediaInfo,
    size: tuple[int, int],
    reference: Path,
    sample: Path,
    cancel: threading.Event | None,
) -> Trial:
    extra = [a for pair in _pairs(preset.extra_args) if pair[0] not in ("-ar", "-ac") for a in pair]
    _run(
        [
            ffmpeg,
            *("-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(reference)),
            # Frames from a raw file lose their colour tags: tagged again as in the encode.
            *("-map", "0:v", "-vf", colour.output(preset, source).setparams()),
            *video.encoder_options(preset),
            *colour.options(preset, source),
            *extra,
            *("-fps_mode", "passthrough", "-f", "matroska", str(sample)),
        ],
        cancel,
    )
    tag = colour.output(preset, source).setparams()
    graph = f"[0:v]{tag},{_BY_INDEX}[dis];[1:v]{tag},{_BY_INDEX}[ref]"
    vmaf = _score(ffmpeg, size, ["-i", str(sample), "-i", str(reference)], graph, cancel)
    return Trial(crf_of(preset), vmaf, sample.stat().st_size)


def _score(
    ffmpeg: str,
    size: tuple[int, int],
    inputs: list[str],
    graph: str,
    cancel: threading.Event | None,
) -> float:
    """libvmaf on every SUBSAMPLE-th frame of ``[dis]`` against ``[ref]`` (``graph`` makes
    both from ``inputs``)."""
    vmaf = f"libvmaf=model=version={model(size)}:n_subsample={SUBSAMPLE}:n_threads=2"
    stderr = _run(
        [
            ffmpeg,
            *("-hide_banner", "-nostdin", "-loglevel", "info", *inputs),
            *("-filter_complex", f"{graph};[dis][ref]{vmaf}", "-f", "null", "-"),
        ],
        cancel,
    )
    found = _SCORE.findall(stderr)
    if not found:
        raise TranscodeError("VMAF: libvmaf printed no score")
    return float(found[-1])


def _joined(label: str, count: int, name: str, then: str = _BY_INDEX) -> str:
    """The windows labelled ``label0``… one after the other, then through ``then`` (by
    default numbered for scoring: the encoder needs their own timestamps)."""
    parts = "".join(f"[{label}{i}]" for i in range(count))
    return f"{parts}concat=n={count}:v=1:a=0,{then}[{name}]"


def _next(
    trials: Sequence[Trial], target: float, low: float, high: float, preset: Preset
) -> float | None:
    """The next CRF to try: from one score by the assumed slope, from more by interpolating
    between the two trials nearest the target (their own slope, if it is a sane one)."""
    last = trials[-1]
    slope = VMAF_PER_CRF
    if len(trials) > 1:
        a, b = sorted(trials, key=lambda t: abs(t.vmaf - target))[:2]
        if a.crf != b.crf and (a.vmaf - b.vmaf) / (b.crf - a.crf) > 0.1:
            slope = (a.vmaf - b.vmaf) / (b.crf - a.crf)
            last = a
    step = max(-MAX_STEP, min(MAX_STEP, (last.vmaf - target - MARGIN) / slope))
    crf = max(low, min(high, last.crf + step))
    value = float(_crf_text(preset, crf))
    return None if value == last.crf else value


def _capped(trials: Sequence[Trial], target: float) -> bool:
    """Below the target at two CRFs with the same size: the rate cap decides, not the CRF."""
    if len(trials) < 2:
        return False
    a, b = trials[-2], trials[-1]
    same = abs(a.size - b.size) <= SAME_SIZE * max(a.size, b.size)
    return same and a.vmaf < target and b.vmaf < target


def _knee(trials: Sequence[Trial], preset: Preset) -> float | None:
    """Under a rate cap, the CRF halfway between the largest capped one and the nearest
    trial the cap left smaller: the point past which lower CRFs only add bytes lies
    there (a grainy source: CRF 23 made 0.3 MB, 15 and 7 both 3.4 MB)."""
    last = trials[-1]
    capped = [t for t in trials if abs(t.size - last.size) <= SAME_SIZE * max(t.size, last.size)]
    top = max(t.crf for t in capped)
    smaller = [t for t in trials if t.crf > top and t.size < last.size * (1 - SAME_SIZE)]
    if not smaller:
        return None
    nearest = min(smaller, key=lambda t: t.crf)
    knee = float(_crf_text(preset, (top + nearest.crf) / 2))
    return None if knee in (top, nearest.crf) else knee


def _bracket(trials: Sequence[Trial], target: float) -> tuple[Trial, Trial] | None:
    """The tightest pair of trials around the target: one reaching it, one a larger CRF not."""
    good = [t for t in trials if t.vmaf >= target]
    bad = [t for t in trials if t.vmaf < target]
    if not good or not bad:
        return None
    above = max(good, key=lambda t: t.crf)
    below = [t for t in bad if t.crf > above.crf]
    return (above, min(below, key=lambda t: t.crf)) if below else None


def _pick(trials: Sequence[Trial], target: float, preset: Preset) -> Choice:
    """Between trials around the target, the CRF interpolated for a little above it
    (``MARGIN``); else the largest CRF that reached the target; none did: the largest CRF
    within ``CLOSE_ENOUGH`` of the best score tried (under a rate cap lower CRFs make the
    same output, or only a little better for many more bytes)."""
    pair = _bracket(trials, target)
    if pair is not None:
        a, b = pair
        wanted = min(target + MARGIN, a.vmaf)
        crf = a.crf + (a.vmaf - wanted) / (a.vmaf - b.vmaf) * (b.crf - a.crf)
        crf = float(_crf_text(preset, max(a.crf, min(b.crf, crf))))
        if crf >= b.crf:  # rounded onto the trial that missed
            crf = a.crf
        vmaf = a.vmaf + (crf - a.crf) / (b.crf - a.crf) * (b.vmaf - a.vmaf)
        return Choice(crf, round(vmaf, 2), tuple(trials))
    good = [t for t in trials if t.vmaf >= target]
    if good:
        best = max(good, key=lambda t: t.crf)
    else:
        # Out of reach (a rate cap, most often): the largest CRF within a point of the best
        # score seen, not the best at any size (12 times the bytes for 5 points, seen).
        top = max(t.vmaf for t in trials)
        best = max((t for t in trials if t.vmaf >= top - CLOSE_ENOUGH), key=lambda t: t.crf)
    return Choice(best.crf, best.vmaf, tuple(trials))


def _crf_text(preset: Preset, crf: float) -> str:
    if preset.video_codec in FRACTIONAL_CRF:
        return f"{round(crf * 4) / 4:g}"
    return str(round(crf))


def _seek(window: Window, path: Path) -> list[str]:
    return ["-ss", f"{window.start:.3f}", "-t", f"{window.length:.3f}", "-i", str(path)]


def _pairs(args: Sequence[str]) -> list[tuple[str, str]]:
    return list(zip(args[::2], args[1::2], strict=True))


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise TranscodeError("transcode cancelled")


def _run(cmd: list[str], cancel: threading.Event | None) -> str:
    """ffmpeg's stderr once it has succeeded; run as every encode is (``runner.run``: it dies
    with the worker, a cancel stops it at once), within RUN_TIMEOUT_S."""
    _check(cancel)
    bound = runner.Deadline(cancel, time.monotonic() + RUN_TIMEOUT_S)
    said: list[runner.FfmpegRun] = []
    try:
        runner.run(cmd, duration=None, cancel=bound, ran=said.append)
    except TranscodeError as exc:
        if cancel is not None and cancel.is_set():
            raise
        if bound.expired:
            raise TranscodeError(f"quality search: ffmpeg took over {RUN_TIMEOUT_S:g} s") from exc
        raise TranscodeError(f"quality search: {exc}") from exc
    return said[-1].stderr
