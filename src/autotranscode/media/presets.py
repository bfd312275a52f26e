"""Output presets: what a job produces, turned into an ffmpeg command line.

A preset is data (container, codecs, size bound, quality); ``recipe`` turns it into
ffmpeg's command line for a given source. Sizes bound the picture's short side as
displayed (a portrait phone clip under ``web-720p`` becomes 720 wide) and are
never above the source's: nothing is upscaled.

Most presets make one file; ``hls`` and ``thumbnails`` make a folder of files.
What a configuration can name is a ``Catalog`` (the built-in CATALOG and the config
file's custom presets), a value that ``Settings`` holds: there is no registry here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..errors import ConfigError, MediaError
from .probe import MediaInfo

DEFAULT_PRESET = "web-720p"
#: Part of every preset's digest: bump it when ``recipe`` changes what a preset makes,
#: so files done with the old recipe are done again with the new one.
RECIPE_VERSION = 3
#: Preset fields that name or describe it but do not change its output.
_NOT_IN_OUTPUT = frozenset({"id", "description", "aliases", "spec", "measure_quality"})
#: Fields added since digests were first stamped in outputs: left out of the digest while
#: they hold these defaults, so a preset that does not use them keeps its digest.
_NEW_FIELDS: Mapping[str, object] = {"quality": None}

Kind = Literal["video", "audio", "image", "hls", "thumbnails"]
#: What becomes of an HDR source: kept (10-bit, its tags and metadata) or tone-mapped to SDR.
Hdr = Literal["keep", "tonemap"]
HDR_MODES: tuple[Hdr, ...] = ("keep", "tonemap")
#: An interlaced source's output: one frame per frame, or one per field (sports).
Deinterlace = Literal["frame-rate", "double-rate"]
DEINTERLACE_MODES: tuple[Deinterlace, ...] = ("frame-rate", "double-rate")
#: Which of the source's audio tracks an output carries (``streams``).
AudioTracks = Literal["all", "first"]
#: Folder outputs: the job's output key names a folder of objects.
FOLDER_KINDS = ("hls", "thumbnails")

#: Options a custom preset may add to its ffmpeg command, and the values each accepts.
SAFE_EXTRA_ARGS: Mapping[str, re.Pattern[str]] = {
    "-tune": re.compile(r"^(film|animation|grain|stillimage|fastdecode|zerolatency)$"),
    "-g": re.compile(r"^\d{1,4}$"),
    "-keyint_min": re.compile(r"^\d{1,4}$"),
    "-bf": re.compile(r"^\d$"),
    "-level": re.compile(r"^\d(\.\d)?$"),
    "-r": re.compile(r"^\d{1,3}(\.\d{1,3})?(/1001)?$"),
    "-ar": re.compile(r"^(22050|32000|44100|48000)$"),
    "-ac": re.compile(r"^[12]$"),
    "-aq-mode": re.compile(r"^[0-3]$"),
}


@dataclass(frozen=True)
class Preset:
    """One output rendition. ``height`` bounds the displayed short side; None keeps the source's."""

    id: str
    description: str
    extension: str
    kind: Kind = "video"
    video_codec: str | None = None
    audio_codec: str | None = "aac"
    height: int | None = None
    #: Peak video bitrate (kbit/s) for players on slow links; None leaves quality alone.
    max_bitrate_k: int | None = None
    audio_bitrate_k: int = 128
    #: The index at the front of an MP4, so playback starts before the download ends.
    faststart: bool = True
    #: Codec tuning (speed preset, profile, constant quality).
    video_args: tuple[str, ...] = ()
    #: Extra ffmpeg options from a custom preset, checked against SAFE_EXTRA_ARGS.
    extra_args: tuple[str, ...] = ()
    #: thumbnails: one picture every this many seconds.
    interval: float = 10.0
    #: hls: the short sides of the ladder's renditions, largest first.
    ladder: tuple[int, ...] = ()
    #: An HDR source: "keep" (on codecs that carry it, see ``colour``) or "tonemap".
    hdr: Hdr = "tonemap"
    deinterlace: Deinterlace = "frame-rate"
    #: "all": every audio track of the source, each encoded as above; "first": its first.
    audio: AudioTracks = "all"
    #: Whether the source's text subtitles go along (image subtitles never can).
    subtitles: bool = True
    #: A VMAF target (``quality = "vmaf:93"``): the CRF is searched per file (``quality``).
    quality: float | None = None
    #: Score the output's VMAF (sampled) even without a target.
    measure_quality: bool = False
    #: Whether a source that already is what this preset makes (``conform``) is remuxed
    #: (its streams copied) instead of encoded again; False: always encode.
    remux: bool = True
    aliases: tuple[str, ...] = field(default=())
    #: A custom preset's definition, sent along with its jobs so workers need no config.
    spec: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def audio_only(self) -> bool:
        return self.kind == "audio"

    @property
    def folder(self) -> bool:
        return self.kind in FOLDER_KINDS

    def output_size(self, source: MediaInfo, bound: int | None = None) -> tuple[int, int] | None:
        """Displayed width and height of the output: short side at most ``bound``, never more
        than the source's, aspect ratio kept, both even (4:2:0 video needs that)."""
        size = source.display_size
        if self.audio_only or size is None:
            return None
        width, height = size
        short = min(width, height)
        limit = bound if bound is not None else self.height
        target = short if limit is None else min(limit, short)
        scale = target / short
        return _even(round(width * scale)), _even(round(height * scale))

    def rendition_sizes(self, source: MediaInfo) -> list[tuple[int, int]]:
        """The ladder's output sizes for ``source``, largest first, each once: rungs above a
        small source all come out at its own size. Both the command and the output check
        count renditions by this list (rendition n is folder n)."""
        sizes: list[tuple[int, int]] = []
        for rung in self.ladder:
            size = self.output_size(source, rung)
            if size is not None and size not in sizes:
                sizes.append(size)
        return sizes

    def output_height(self, source: MediaInfo) -> int | None:
        size = self.output_size(source)
        return size[1] if size else None

    def check(self, source: MediaInfo) -> None:
        """MediaError when the source lacks the stream this preset is made of."""
        if self.audio_only and not source.has_audio:
            raise MediaError(f"preset {self.id} needs an audio stream and the input has none")
        if not self.audio_only and not source.has_video:
            raise MediaError(f"preset {self.id} needs a video stream and the input has none")


def digest(preset: Preset) -> str:
    """16 hex digits that change whenever what ``preset`` makes changes.

    Part of a file's identity: a custom preset changed from crf 26 to crf 30 makes a new
    output instead of "done already". Every field counts except the ones that only name
    or describe the preset, so a field added later counts without anyone remembering to
    add it here; the custom ``spec`` is left out as its effect is in the resolved fields.
    """
    fields = {
        f.name: getattr(preset, f.name)
        for f in dataclasses.fields(preset)
        if f.name not in _NOT_IN_OUTPUT
        and not (f.name in _NEW_FIELDS and getattr(preset, f.name) == _NEW_FIELDS[f.name])
    }
    text = json.dumps({"recipe": RECIPE_VERSION, **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _even(n: int) -> int:
    return max(2, n - n % 2)


_H264 = ("-preset", "veryfast", "-profile:v", "high", "-crf", "23")
_OPUS = {"audio_codec": "libopus", "audio_bitrate_k": 128}

CATALOG: Mapping[str, Preset] = {
    p.id: p
    for p in (
        Preset(
            id="web-720p",
            description="H.264 + AAC in MP4, at most 720 lines, streams from the first byte",
            extension=".mp4",
            video_codec="libx264",
            height=720,
            max_bitrate_k=4000,
            video_args=_H264,
            aliases=("1351620000001-000010", "1351620000001-100070", "1351620000001-000020"),
        ),
        Preset(
            id="web-1080p",
            description="H.264 + AAC in MP4, at most 1080 lines, streams from the first byte",
            extension=".mp4",
            video_codec="libx264",
            height=1080,
            max_bitrate_k=8000,
            audio_bitrate_k=160,
            video_args=_H264,
            aliases=("1351620000001-000001",),
        ),
        Preset(
            id="hevc-1080p",
            description="H.265 (tagged hvc1, for Apple players) + AAC in MP4, at most 1080 lines",
            extension=".mp4",
            video_codec="libx265",
            height=1080,
            max_bitrate_k=6000,
            audio_bitrate_k=160,
            video_args=("-preset", "fast", "-crf", "26", "-x265-params", "log-level=error"),
            hdr="keep",
        ),
        Preset(
            id="webm-vp9",
            description="VP9 + Opus in WebM, at most 1080 lines",
            extension=".webm",
            video_codec="libvpx-vp9",
            height=1080,
            faststart=False,
            video_args=(
                "-crf",
                "33",
                "-b:v",
                "0",
                "-deadline",
                "good",
                "-cpu-used",
                "4",
                "-row-mt",
                "1",
            ),
            **_OPUS,  # type: ignore[arg-type]
        ),
        Preset(
            id="av1-1080p",
            description="AV1 (SVT-AV1) + Opus in MP4, at most 1080 lines",
            extension=".mp4",
            video_codec="libsvtav1",
            height=1080,
            video_args=("-preset", "8", "-crf", "35"),
            hdr="keep",
            **_OPUS,  # type: ignore[arg-type]
        ),
        Preset(
            id="audio-aac",
            description="AAC audio only, in M4A",
            extension=".m4a",
            kind="audio",
            audio_bitrate_k=160,
            aliases=("1351620000001-100110",),
        ),
        Preset(
            id="audio-mp3",
            description="MP3 audio only, 192 kbit/s",
            extension=".mp3",
            kind="audio",
            audio_codec="libmp3lame",
            audio_bitrate_k=192,
            faststart=False,
            aliases=("1351620000001-300020",),
        ),
        Preset(
            id="hls",
            description="HTTP Live Streaming: 1080/720/480/360 renditions and a master playlist",
            extension=".hls",
            kind="hls",
            video_codec="libx264",
            video_args=_H264,
            ladder=(1080, 720, 480, 360),
            aliases=("1351620000001-200010",),
        ),
        Preset(
            id="poster",
            description="One JPEG frame (near the start), at most 720 lines",
            extension=".jpg",
            kind="image",
            height=720,
        ),
        Preset(
            id="thumbnails",
            description="A JPEG every 10 seconds, at most 360 lines",
            extension=".thumbnails",
            kind="thumbnails",
            height=360,
            interval=10.0,
        ),
    )
}

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_CUSTOM_FIELDS = {
    "extends",
    "description",
    "height",
    "crf",
    "max_bitrate_k",
    "audio_bitrate_k",
    "extra_args",
    "hdr",
    "deinterlace",
    "audio",
    "subtitles",
    "quality",
    "measure_quality",
    "remux",
}
#: What a job may change of a built-in preset (``Catalog._chosen``).
_CHOICES = frozenset({"extends", "audio", "quality", "measure_quality"})


@dataclass(frozen=True)
class Catalog:
    """The presets one configuration can name: the built-in CATALOG and its custom presets.

    A value, held by ``Settings``: two configurations in one process (a client and a
    worker in a test, say) each see their own custom presets, never each other's.
    """

    #: Custom presets (``build``), by their definition order; their ids are not CATALOG's.
    custom: tuple[Preset, ...] = ()
    #: ``--audio``: the audio tracks every preset carries, whatever it says itself.
    audio: AudioTracks | None = None
    #: ``--quality vmaf:N``: the target of every preset that can take one (``tunable``).
    quality: str | None = None
    #: ``--measure-quality``: every video output's VMAF is measured.
    measure_quality: bool = False
    _by_id: Mapping[str, Preset] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {p.id: p for p in self.custom})

    @classmethod
    def define(cls, specs: Mapping[str, Mapping[str, Any]]) -> Catalog:
        """The catalog with the custom presets of a config file's ``[presets.NAME]`` tables."""
        for name in specs:
            if name in CATALOG:
                raise ConfigError(f"custom preset name {name!r}: use a new lowercase name")
        return cls(tuple(build(name, spec) for name, spec in specs.items()))

    def with_audio(self, audio: AudioTracks | None) -> Catalog:
        """This catalog with every preset carrying ``audio`` tracks (``--audio``)."""
        return replace(self, audio=audio)

    def with_quality(self, quality: str | None, measure: bool) -> Catalog:
        """This catalog with a VMAF target (``--quality``) or scores (``--measure-quality``)."""
        return replace(self, quality=quality, measure_quality=measure)

    def _chosen(self, preset: Preset) -> Preset:
        """``preset`` as this catalog's choices change it; what changed travels in its
        ``spec``, so a worker with another configuration makes the same output."""
        changes: dict[str, Any] = {}
        if self.audio is not None and preset.audio != self.audio:
            changes["audio"] = self.audio
        if tunable(preset):
            if self.quality is not None:
                changes["quality"] = self.quality
            if self.measure_quality and not preset.measure_quality:
                changes["measure_quality"] = True
        if not changes:
            return preset
        return build(preset.id, {**(preset.spec or {"extends": preset.id}), **changes})

    def get(self, preset_id: str) -> Preset:
        """A preset by id (custom ones included), or by the Elastic Transcoder id it replaces."""
        if preset_id in self._by_id:
            return self._chosen(self._by_id[preset_id])
        if preset_id in CATALOG:
            return self._chosen(CATALOG[preset_id])
        for preset in CATALOG.values():
            if preset_id in preset.aliases:
                return self._chosen(preset)
        known = ", ".join([*CATALOG, *self._by_id])
        raise ConfigError(f"unknown preset {preset_id!r}; known presets: {known}")

    def all(self) -> list[Preset]:
        return [self._chosen(p) for p in (*CATALOG.values(), *self.custom)]

    def resolve(self, preset_id: str, spec: Mapping[str, Any] | None) -> Preset:
        """The preset a job names: its own definition if it carries one, else this catalog's."""
        return build(preset_id, spec) if spec is not None else self.get(preset_id)


#: The built-in presets alone: what a configuration without custom presets can name.
DEFAULT_CATALOG = Catalog()


def build(preset_id: str, spec: Mapping[str, Any]) -> Preset:
    """A custom preset: a catalog preset with some values changed.

    ``extends`` names the base; ``height``, ``crf``, ``max_bitrate_k``,
    ``audio_bitrate_k``, ``hdr``, ``deinterlace``, ``audio`` ("all" or "first"),
    ``subtitles`` and ``remux`` (true or false), ``quality`` ("vmaf:93": the CRF searched
    per file), ``measure_quality`` and ``extra_args`` change it; extra ffmpeg options must
    be in SAFE_EXTRA_ARGS, so a config file can tune the encode but never point ffmpeg at
    other files or protocols.
    """
    if preset_id in CATALOG and spec.get("extends") == preset_id and set(spec) <= _CHOICES:
        # A built-in preset as ``--audio`` changed it (``Catalog._chosen``), sent with a job.
        own = CATALOG[preset_id]
        audio = _audio(preset_id, spec.get("audio", own.audio))
        return replace(own, audio=audio, spec=dict(spec), **_quality(own, spec))
    if not _ID.match(preset_id) or preset_id in CATALOG:
        raise ConfigError(f"custom preset name {preset_id!r}: use a new lowercase name")
    unknown = set(spec) - _CUSTOM_FIELDS
    if unknown:
        raise ConfigError(f"preset {preset_id}: unknown settings {', '.join(sorted(unknown))}")
    base = CATALOG.get(str(spec.get("extends", "")))
    if base is None or base.folder:
        raise ConfigError(f"preset {preset_id}: 'extends' must name a file preset of the catalog")
    changes: dict[str, Any] = {"id": preset_id, "aliases": ()}
    tweaks = ", ".join(f"{k}={v}" for k, v in spec.items() if k not in ("extends", "description"))
    changes["description"] = str(spec.get("description", f"{base.id}, {tweaks or 'as is'}"))
    for name in ("height", "max_bitrate_k", "audio_bitrate_k"):
        if name in spec:
            value = spec[name]
            if not isinstance(value, int) or not 16 <= value <= 100_000:
                raise ConfigError(f"preset {preset_id}: {name} must be a whole number")
            changes[name] = value
    if "crf" in spec:
        crf = spec["crf"]
        if not isinstance(crf, int) or not 0 <= crf <= 63 or "-crf" not in base.video_args:
            raise ConfigError(f"preset {preset_id}: crf must be 0-63 on a constant-quality base")
        args = list(base.video_args)
        args[args.index("-crf") + 1] = str(crf)
        changes["video_args"] = tuple(args)
    for name, allowed in (("hdr", HDR_MODES), ("deinterlace", DEINTERLACE_MODES)):
        if name in spec:
            if spec[name] not in allowed:
                choices = " or ".join(f'"{a}"' for a in allowed)
                raise ConfigError(f"preset {preset_id}: {name} must be {choices}")
            changes[name] = spec[name]
    if "audio" in spec:
        changes["audio"] = _audio(preset_id, spec["audio"])
    for name in ("subtitles", "remux"):
        if name in spec:
            if not isinstance(spec[name], bool):
                raise ConfigError(f"preset {preset_id}: {name} must be true or false")
            changes[name] = spec[name]
    changes.update(_quality(replace(base, id=preset_id), spec))
    changes["extra_args"] = check_extra_args(preset_id, spec.get("extra_args", []))
    changes["spec"] = dict(spec)
    return replace(base, **changes)


def tunable(preset: Preset) -> bool:
    """Whether a VMAF target can choose this preset's CRF: one video, constant quality."""
    return preset.kind == "video" and "-crf" in preset.video_args


def _quality(base: Preset, spec: Mapping[str, Any]) -> dict[str, Any]:
    """``quality = "vmaf:93"`` and ``measure_quality = true`` of a spec, checked."""
    changes: dict[str, Any] = {}
    if "quality" in spec:
        if not tunable(base):
            raise ConfigError(f"preset {base.id}: quality needs a video preset with a crf")
        changes["quality"] = parse_target(base.id, spec["quality"])
    if "measure_quality" in spec:
        if not isinstance(spec["measure_quality"], bool) or base.kind != "video":
            raise ConfigError(f"preset {base.id}: measure_quality must be true or false (video)")
        changes["measure_quality"] = spec["measure_quality"]
    return changes


def parse_target(preset_id: str, value: object) -> float:
    """``"vmaf:93"`` → 93.0; ConfigError for anything else."""
    found = _TARGET.match(value) if isinstance(value, str) else None
    if found is None or not 1 <= float(found[1]) <= 100:
        raise ConfigError(f'preset {preset_id}: quality must look like "vmaf:93" (1-100)')
    return float(found[1])


_TARGET = re.compile(r"^vmaf:(\d{1,3}(?:\.\d+)?)$")


def _audio(preset_id: str, value: object) -> AudioTracks:
    if value == "all" or value == "first":
        return value
    raise ConfigError(f'preset {preset_id}: audio must be "all" or "first"')


def check_extra_args(preset_id: str, extra: object) -> tuple[str, ...]:
    if (
        not isinstance(extra, list | tuple)
        or len(extra) % 2
        or not all(isinstance(a, str) for a in extra)
    ):
        raise ConfigError(f"preset {preset_id}: extra_args must be a list of option, value pairs")
    pairs = list(zip(extra[::2], extra[1::2], strict=True))
    for option, value in pairs:
        pattern = SAFE_EXTRA_ARGS.get(option)
        if pattern is None or not pattern.match(value):
            allowed = ", ".join(SAFE_EXTRA_ARGS)
            raise ConfigError(
                f"preset {preset_id}: {option} {value} is not allowed (options allowed: {allowed})"
            )
    return tuple(extra)


#: The codec each encoder makes, as a probe names it; others are named as they are.
_CODEC_NAMES = {
    "libx264": "h264",
    "libx265": "hevc",
    "libvpx-vp9": "vp9",
    "libsvtav1": "av1",
    "libopus": "opus",
    "libmp3lame": "mp3",
}


def codec_name(encoder: str | None) -> str | None:
    """The codec an encoder makes, as a probe of its output names it (libx264: h264)."""
    return _CODEC_NAMES.get(encoder or "", encoder)
