"""Whether a source already is what a preset makes, so that copying its streams (a remux)
gives the same result as encoding it again, in a fraction of the time and without a
second generation's loss.

Each video preset's ``Conformance`` is derived from its own settings, so a custom preset
gets one without a table to keep: its codec (at most the profile it encodes), 4:2:0 at
the bit depth it writes, a short side within its bound, an average video bitrate within
its peak (``max_bitrate_k``), audio in its codec on at most the two channels it mixes to,
in a container whose streams an MP4 or WebM can take as they are. A preset that bounds no
bitrate conforms to nothing: nothing would then tell a 50 Mbit/s camera file from a web
one. Beyond those, a source conforms only when the encode would not change its picture:
not interlaced (it would be deinterlaced), not HDR for an SDR output (tone-mapped), not
rotated (turned upright), its colour tagged (tagged) in limited range, its picture size
even (rounded).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import colour, interlace, streams
from .presets import Preset
from .probe import MediaInfo

#: Containers whose streams an MP4 or WebM output takes as they are (FFmpeg's names).
COPYABLE_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
#: Channels the recipe mixes audio to (``streams.audio_options``).
MAX_CHANNELS = 2
#: Options of a custom preset's ``extra_args`` that change what the output is (frame rate,
#: sound, decoder level), not only how it is encoded: a copy would not honour them.
SHAPING_ARGS = frozenset({"-r", "-ar", "-ac", "-level"})

#: The profiles each encoder's output may have, by the profile it is told (lowercase, as
#: FFmpeg names them): a decoder of a profile decodes the ones below it.
_H264_PROFILES = {
    "high": ("high", "main", "constrained baseline", "baseline"),
    "main": ("main", "constrained baseline", "baseline"),
    "baseline": ("constrained baseline", "baseline"),
}
#: Per encoder: the decoder's name, the profiles of 8-bit output, those added by HDR kept.
_CODECS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "libx264": ("h264", _H264_PROFILES["high"], ()),
    "libx265": ("hevc", ("main",), ("main 10",)),
    "libvpx-vp9": ("vp9", ("profile 0",), ("profile 2",)),
    "libsvtav1": ("av1", ("main",), ()),
}
_AUDIO = {"aac": "aac", "libopus": "opus", "libmp3lame": "mp3"}


@dataclass(frozen=True)
class Conformance:
    """What a source must be for a preset to copy its streams rather than encode them."""

    video_codec: str
    profiles: frozenset[str]
    pix_fmts: frozenset[str]
    #: The displayed short side, at most; None: any.
    max_short_side: int | None
    #: Average video bit/s, at most.
    max_bitrate: int
    #: Every audio track carried in this codec (None: the preset carries no audio).
    audio_codec: str | None
    containers: frozenset[str] = COPYABLE_CONTAINERS
    max_channels: int = MAX_CHANNELS
    #: Whether an HDR source may be copied (the preset keeps HDR on a codec that can).
    hdr: bool = False


@dataclass(frozen=True)
class Verdict:
    """``conforms`` and, either way, why in a few words (for the output's note)."""

    conforms: bool
    why: str


def conformance(preset: Preset) -> Conformance | str:
    """The preset's conformance, or why it has none (it never remuxes)."""
    if preset.kind != "video" or preset.video_codec is None:
        return f"{preset.id} is not a video preset"
    if not preset.remux:
        return f"{preset.id} says remux = false"
    known = _CODECS.get(preset.video_codec)
    if known is None:
        return f"{preset.id}'s codec {preset.video_codec} has no known profiles"
    if preset.max_bitrate_k is None:
        return f"{preset.id} bounds no bitrate"
    shaping = SHAPING_ARGS.intersection(preset.extra_args[::2])
    if shaping:
        return f"{preset.id} sets {', '.join(sorted(shaping))}"
    codec, profiles, hdr_profiles = known
    if preset.video_codec == "libx264" and "-profile:v" in preset.video_args:
        told = preset.video_args[preset.video_args.index("-profile:v") + 1]
        profiles = _H264_PROFILES.get(told, (told,))
    keeps_hdr = preset.hdr == "keep" and preset.video_codec in colour.HDR_CODECS
    pix_fmts = {"yuv420p", "yuv420p10le"} if keeps_hdr else {"yuv420p"}
    return Conformance(
        video_codec=codec,
        profiles=frozenset(profiles + (hdr_profiles if keeps_hdr else ())),
        pix_fmts=frozenset(pix_fmts),
        max_short_side=preset.height,
        max_bitrate=preset.max_bitrate_k * 1000,
        audio_codec=_AUDIO.get(preset.audio_codec or "", preset.audio_codec),
        hdr=keeps_hdr,
    )


def judge(preset: Preset, source: MediaInfo, *, bitrate: bool = True) -> Verdict:
    """Whether ``source`` (probed with ``detail``) conforms to ``preset``, and why (not).

    ``bitrate=False`` leaves the bitrate out: whether a copy would play as the encode does,
    which is what "never bigger" asks of a source whose encode came out larger.
    """
    rule = conformance(preset)
    if isinstance(rule, str):
        return Verdict(False, rule)
    problem = _picture_problem(rule, preset, source) or _audio_problem(rule, preset, source)
    rate = source.video_bit_rate or source.bit_rate
    if problem is None and bitrate:
        if rate is None:
            problem = "its bitrate is unknown"
        elif rate > rule.max_bitrate:
            problem = f"{_mbits(rate)} is above {_mbits(rule.max_bitrate)}"
    if problem is not None:
        return Verdict(False, f"not copied: {problem}")
    facts = [
        f"{source.video_codec} {source.video_profile}".lower(),
        f"{source.width}x{source.height}",
        str(source.pix_fmt),
    ]
    if rate is not None:
        facts.append(_mbits(rate))
    if streams.carries_audio(preset, source):
        facts.append(str(source.audio_codec))
    return Verdict(True, f"already {', '.join(facts)}: what {preset.id} makes")


def _picture_problem(rule: Conformance, preset: Preset, source: MediaInfo) -> str | None:
    if source.format_name not in rule.containers:
        return f"a {source.format_name} container"
    if source.video_codec != rule.video_codec:
        return f"video is {source.video_codec}, not {rule.video_codec}"
    profile = (source.video_profile or "").lower()
    if profile not in rule.profiles:
        return f"{source.video_codec} profile {source.video_profile or 'unknown'}"
    if source.pix_fmt not in rule.pix_fmts:
        return f"pixel format {source.pix_fmt or 'unknown'}"
    if source.pix_fmt != "yuv420p" and source.hdr is None:
        return f"pixel format {source.pix_fmt} for SDR, which {preset.id} makes 8-bit"
    if source.rotation % 360:
        return f"rotated {source.rotation}°"
    size = source.display_size
    if size is None or preset.output_size(source) != size:
        return f"picture {source.width}x{source.height} would be resized"
    if interlace.interlaced(source):
        return f"interlaced ({source.field_order})"
    if source.hdr is not None and not rule.hdr:
        return f"HDR ({source.hdr}) for an SDR output"
    missing = colour.untagged(source)
    if missing:
        return f"colour untagged ({', '.join(missing)})"
    if source.color_range == "pc":
        return "full-range colour"
    return None


def _audio_problem(rule: Conformance, preset: Preset, source: MediaInfo) -> str | None:
    if not streams.carries_audio(preset, source):
        return None
    tracks = streams.audio_tracks(preset, source)
    codecs = [t.codec for t in tracks] or [str(source.audio_codec)]
    wrong = next((c for c in codecs if c != rule.audio_codec), None)
    if wrong is not None:
        return f"audio is {wrong}, not {rule.audio_codec}"
    if any((t.channels or 0) > rule.max_channels for t in tracks):
        return f"audio has more than {rule.max_channels} channels"
    return None


def _mbits(rate: int) -> str:
    return f"{rate / 1e6:.2f} Mbit/s"
