"""A video output's options: the filter chain that shapes the picture, and the encoder's.

The chain is where the picture is made right for its viewers (deinterlaced, sized,
its colour converted and tagged: ``interlace``, ``colour``), the encoder options where
it is made small.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import MediaError
from . import colour, interlace
from .presets import Preset
from .probe import MediaInfo


def filter_chain(preset: Preset, source: MediaInfo, size: tuple[int, int]) -> list[str]:
    """The filters from the decoded picture (already turned upright) to the encoder's input."""
    return [*interlace.filters(preset, source), *colour.filters(preset, source, size)]


def encoder_options(preset: Preset, n: int | None = None) -> list[str]:
    """Codec and rate options; with ``n``, aimed at the n-th video stream of one encode."""
    v = ":v" if n is None else f":v:{n}"
    args = [f"-c{v}", str(preset.video_codec), *per_stream(preset.video_args, v)]
    if preset.max_bitrate_k:
        peak = preset.max_bitrate_k
        args += [f"-maxrate{v}", f"{peak}k", f"-bufsize{v}", f"{2 * peak}k"]
    if preset.video_codec == "libx265":
        args += [f"-tag{v}", "hvc1"]  # what Apple's players require of HEVC in MP4
    return args


def options(preset: Preset, source: MediaInfo) -> list[str]:
    """Everything a one-rendition video output says about its video stream."""
    size = preset.output_size(source)
    if size is None:  # probe() refuses such sources; a job from elsewhere might not
        raise MediaError("the input's video stream has no picture size")
    chain = ",".join(filter_chain(preset, source, size))
    # passthrough: a variable frame rate stays as it was.
    return [
        *("-vf", chain, *encoder_options(preset), *colour.options(preset, source)),
        *("-fps_mode", "passthrough"),
    ]


def threaded(preset: Preset, threads: int | None) -> Preset:
    """The preset with its encoder held to ``threads`` threads (None: ffmpeg's choice, one
    per CPU the process may use): for a worker pinned to a core, where more threads than
    cores only take turns. x265 and SVT-AV1 get their own pools bounded too: they do not
    read ``-threads`` (SVT-AV1 took 1.6 cores with it set to 1; with ``lp=1``, one)."""
    if not threads or preset.kind not in ("video", "hls"):
        return preset
    args = [*preset.video_args, "-threads", str(threads)]
    own = _THREAD_PARAMS.get(str(preset.video_codec))
    if own is not None:
        option, template = own
        value = template.format(n=threads)
        if option in args:
            at = args.index(option) + 1
            args[at] = f"{args[at]}:{value}"
        else:
            args += [option, value]
    return replace(preset, video_args=tuple(args))


#: Encoders that take their thread count in their own parameters: the option and its value.
_THREAD_PARAMS = {
    "libx265": ("-x265-params", "pools={n}:frame-threads={n}"),
    "libsvtav1": ("-svtav1-params", "lp={n}"),
}


def per_stream(args: tuple[str, ...], spec: str) -> list[str]:
    """Codec options aimed at one stream (``-crf`` → ``-crf:v:0``, ``-profile:v`` likewise)."""
    return [
        f"{a.split(':')[0]}{spec}" if idx % 2 == 0 and a.startswith("-") else a
        for idx, a in enumerate(args)
    ]
