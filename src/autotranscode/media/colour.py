"""The output's colour: tone-mapped to SDR, kept HDR, and always tagged.

A player shows a picture right only if the file says how its numbers become light
(primaries, transfer, matrix, range). Three cases:

- an HDR source (PQ or HLG) under a ``tonemap`` preset becomes BT.709 SDR through
  zimg (``zscale``) and ``tonemap``, since an SDR player shows PQ numbers washed out;
- an HDR source under a ``keep`` preset stays 10-bit with its tags; the bundled
  ffmpeg's libx265 and libsvtav1 wrappers write the decoded frames' mastering-display
  and content-light metadata themselves, so nothing more is needed;
- anything else keeps its numbers, and the tags it lacks are filled in by the rule
  players use (mpv's): BT.709 at HD sizes, BT.601 (SMPTE 170M; BT.470BG primaries at
  576 or 288 lines) below, so every player agrees on the same picture.

Tags are set on the frames (``setparams``): FFmpeg 7.1 and later take a frame's
primaries and transfer over ``-color_primaries``/``-color_trc``, which are still given
for other ffmpeg builds (``--ffmpeg``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .presets import Preset
from .probe import MediaInfo

#: Light level (cd/m²) that SDR white stands for when HDR is tone-mapped.
SDR_WHITE_NITS = 100
#: The tone curve: Hable's keeps highlights' detail and mid-tone contrast; desaturation
#: off, as BT.2020 to BT.709 gamut mapping already happened in zimg.
TONEMAP = "tonemap=hable:desat=0"
#: Encoders that can carry HDR (10-bit and its tags); others tone-map whatever the preset.
HDR_CODECS = frozenset({"libx265", "libsvtav1", "libvpx-vp9"})
#: Pixel formats holding RGB, for which a YCbCr matrix says nothing.
_RGB_PREFIXES = ("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr")
#: The matrices ``scale`` (swscale) converts with, by ffmpeg's names.
_SCALE_MATRICES = frozenset({"bt709", "bt470bg", "smpte170m", "smpte240m", "bt2020nc"})


@dataclass(frozen=True)
class Colour:
    """How an output's numbers become light, in ffmpeg's names."""

    primaries: str
    transfer: str
    matrix: str
    range: str = "tv"

    def setparams(self) -> str:
        """The filter that tags each frame so."""
        return (
            f"setparams=color_primaries={self.primaries}:color_trc={self.transfer}"
            f":colorspace={self.matrix}:range={self.range}"
        )

    def options(self) -> list[str]:
        """The encoder's options that say the same."""
        return [
            *("-color_primaries", self.primaries, "-color_trc", self.transfer),
            *("-colorspace", self.matrix, "-color_range", self.range),
        ]


BT709 = Colour("bt709", "bt709", "bt709")
#: What an HDR source most likely is when it tags only its transfer.
_BT2020 = Colour("bt2020", "smpte2084", "bt2020nc")


def hd(source: MediaInfo) -> bool:
    """Whether players take an untagged picture of this size as HD (BT.709)."""
    return (source.width or 0) >= 1280 or (source.height or 0) > 576


def assumed(source: MediaInfo) -> Colour:
    """The source's colour: its tags, and for each one missing, what players assume.

    A known matrix decides the family of the missing ones (a BT.709 matrix at SD size
    is a BT.709 picture); else the size does.
    """
    # An RGB picture's "gbr" matrix says nothing of the YCbCr it is to become.
    matrix = source.color_space if source.color_space != "gbr" else None
    if source.hdr:
        base = _BT2020
    elif matrix == "bt709" or (matrix is None and hd(source)):
        base = BT709
    elif source.height in (576, 288):
        base = Colour("bt470bg", "smpte170m", "bt470bg")
    else:
        base = Colour("smpte170m", "smpte170m", "smpte170m")
    return Colour(
        primaries=source.color_primaries or base.primaries,
        transfer=source.color_transfer or base.transfer,
        matrix=matrix or base.matrix,
    )


def keeps_hdr(preset: Preset, source: MediaInfo) -> bool:
    """Whether this output stays HDR: the preset says "keep" and its codec can."""
    return source.hdr is not None and preset.hdr == "keep" and preset.video_codec in HDR_CODECS


def tonemaps(preset: Preset, source: MediaInfo) -> bool:
    """Whether this output turns an HDR source into SDR."""
    return source.hdr is not None and not keeps_hdr(preset, source)


def output(preset: Preset, source: MediaInfo) -> Colour:
    """The colour the output is tagged with."""
    return BT709 if tonemaps(preset, source) else assumed(source)


def filters(preset: Preset, source: MediaInfo, size: tuple[int, int] | None) -> list[str]:
    """From the decoded (deinterlaced) picture to the encoder's: scaled to ``size``
    (None: not scaled), 4:2:0 in limited range, colour converted or kept, tagged."""
    target = output(preset, source)
    scale = [f"{size[0]}:{size[1]}", "flags=bicubic"] if size else []
    if tonemaps(preset, source):
        # Scaled first, while the picture is still compact 4:2:0: the tone mapping
        # then works on the output's pixels only.
        was = assumed(source)
        return [
            *([f"scale={':'.join(scale)}"] if scale else []),
            f"zscale=tin={was.transfer}:min={was.matrix}:pin={was.primaries}:rin=tv"
            f":t=linear:npl={SDR_WHITE_NITS}",
            "format=gbrpf32le",
            "zscale=p=bt709",
            TONEMAP,
            "zscale=t=bt709:m=bt709:r=tv",
            "format=yuv420p",
            target.setparams(),
        ]
    # An untagged YCbCr source is read with the matrix it is tagged with here; an RGB
    # one is converted with it: either way the numbers match the tags.
    if target.matrix in _SCALE_MATRICES:
        if not (source.pix_fmt or "").startswith(_RGB_PREFIXES):
            scale.append(f"in_color_matrix={target.matrix}")
        scale.append(f"out_color_matrix={target.matrix}")
    scale.append("out_range=tv")
    fmt = "yuv420p10le" if keeps_hdr(preset, source) else "yuv420p"
    return [f"scale={':'.join(scale)}", f"format={fmt}", target.setparams()]


def options(preset: Preset, source: MediaInfo) -> list[str]:
    """The encoder's colour options for this source."""
    return output(preset, source).options()


def untagged(source: MediaInfo) -> list[str]:
    """The colour tags the source lacks, by name (players guess where a tag is missing)."""
    tags = (
        ("primaries", source.color_primaries),
        ("transfer", source.color_transfer),
        ("matrix", source.color_space),
    )
    return [name for name, value in tags if value is None]


def notes(preset: Preset, source: MediaInfo) -> list[str]:
    """What the file's log says of this output's colour, when it is not simply kept."""
    target = output(preset, source)
    if tonemaps(preset, source):
        name = "HDR10 (PQ)" if source.hdr == "pq" else "HLG"
        return [f"{name} source tone-mapped to BT.709 SDR"]
    if keeps_hdr(preset, source):
        return [f"HDR kept: 10-bit, {target.primaries}/{target.transfer}/{target.matrix}"]
    missing = untagged(source)
    if not missing:
        return []
    return [
        f"source colour untagged ({', '.join(missing)}): tagged"
        f" {target.primaries}/{target.transfer}/{target.matrix}"
    ]
