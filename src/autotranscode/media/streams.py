"""Which of the source's streams an output carries, how they are encoded, and what they say.

Every audio track goes along by default (a second language, a commentary), each encoded
as the preset says, with its language, title and default flag; text subtitles go along in
the form the container holds (``mov_text`` in MP4, WebVTT in WebM, as they are in
Matroska). Image subtitles (PGS, DVB, VobSub) cannot be turned into text: they are left
out, and the file's log says so (``warnings``). A preset's ``audio`` ("first") and
``subtitles`` (false) leave the extras out.

Metadata: the source's global tags are not copied wholesale (they may hold an earlier
stamp of ours, or an encoder's name that is no longer true), nor are its per-stream tags
(Matroska's statistics would describe the source's streams); what is worth keeping is
set explicitly: the creation time and title, each stream's language and title. Chapters
go along with their titles.
"""

from __future__ import annotations

from .presets import Preset
from .probe import MediaInfo, Track

#: Subtitle codec per output container; ``None``: the container holds no text subtitles.
_SUBTITLE_CODECS = {".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text", ".webm": "webvtt"}
#: Matroska keeps these as they are; anything else (mov_text) becomes SubRip.
_MATROSKA_NATIVE = frozenset({"subrip", "ass", "ssa", "webvtt"})
#: Containers that hold one audio stream only.
_ONE_AUDIO = frozenset({".mp3"})


def maps(preset: Preset, source: MediaInfo) -> list[str]:
    """``-map`` options of a one-file output: its first video (unless audio-only), its audio
    tracks and its text subtitles, in that order."""
    args = ["-vn"] if preset.audio_only else ["-map", "0:v:0"]
    if preset.audio_only or carries_audio(preset, source):
        for spec in audio_specs(preset, source):
            args += ["-map", spec]
    for track in subtitle_tracks(preset, source):
        args += ["-map", f"0:{track.index}"]
    return args


def carries_audio(preset: Preset, source: MediaInfo) -> bool:
    return source.has_audio and preset.audio_codec is not None


def audio_tracks(preset: Preset, source: MediaInfo) -> tuple[Track, ...]:
    """The source's audio tracks this output carries, in the source's order."""
    if not carries_audio(preset, source):
        return ()
    tracks = source.audio_tracks
    if preset.audio == "first" or preset.extension in _ONE_AUDIO:
        return tracks[:1]
    return tracks


def audio_specs(preset: Preset, source: MediaInfo) -> list[str]:
    """Input stream specifiers of the audio carried (``0:a:0`` when the probe listed none)."""
    tracks = audio_tracks(preset, source)
    if tracks:
        return [f"0:{t.index}" for t in tracks]
    return ["0:a:0"] if carries_audio(preset, source) else []


def audio_options(preset: Preset, n: int | None = None) -> list[str]:
    """The audio encoder's options; with ``n``, for the n-th audio stream of the output."""
    a = ":a" if n is None else f":a:{n}"
    bitrate = f"{preset.audio_bitrate_k}k"
    return [f"-c{a}", str(preset.audio_codec), f"-b{a}", bitrate, f"-ac{a}", "2"]


def subtitle_codec(preset: Preset, track: Track) -> str | None:
    """The codec a text subtitle becomes in this preset's container; None: not carried."""
    if preset.extension in (".mkv", ".mka"):
        return "copy" if track.codec in _MATROSKA_NATIVE else "srt"
    return _SUBTITLE_CODECS.get(preset.extension)


def subtitle_tracks(preset: Preset, source: MediaInfo) -> tuple[Track, ...]:
    """The source's text subtitles this output carries."""
    if not preset.subtitles or preset.audio_only or preset.kind != "video":
        return ()
    return tuple(
        t for t in source.subtitle_tracks if t.is_text and subtitle_codec(preset, t) is not None
    )


def subtitle_options(preset: Preset, source: MediaInfo) -> list[str]:
    args: list[str] = []
    for n, track in enumerate(subtitle_tracks(preset, source)):
        args += [f"-c:s:{n}", str(subtitle_codec(preset, track))]
    return args


def metadata(
    preset: Preset,
    source: MediaInfo,
    audio: tuple[Track, ...] | None = None,
    subtitles: tuple[Track, ...] | None = None,
) -> list[str]:
    """What the output says of itself: the source's creation time and title, each stream's
    language, title and default flag, chapters with their titles (see the module's text).

    ``audio``/``subtitles``: the tracks in the output's order, when not ``maps``'s.
    """
    args = ["-map_metadata:g", "-1", "-map_metadata:s", "-1"]
    for name in ("creation_time", "title"):
        value = getattr(source, name)
        if value:
            args += ["-metadata", f"{name}={_clean(value)}"]
    if audio is None:
        audio = audio_tracks(preset, source)
    if subtitles is None:
        subtitles = subtitle_tracks(preset, source)
    args += _stream_tags("a", audio, default_first=True)
    args += _stream_tags("s", subtitles, default_first=False)
    return args


def _stream_tags(kind: str, tracks: tuple[Track, ...], *, default_first: bool) -> list[str]:
    """Language, title and default flag of each output stream of a kind. A player picks the
    default track: the source's choice, else (for audio) the first, never none."""
    args: list[str] = []
    chosen = default_track(tracks) if default_first else _flagged(tracks)
    for n, track in enumerate(tracks):
        spec = f"-metadata:s:{kind}:{n}"
        args += [spec, f"language={_clean(track.language or 'und')}"]
        if track.title:
            args += [spec, f"title={_clean(track.title)}"]
        args += [f"-disposition:{kind}:{n}", "default" if n == chosen else "0"]
    return args


def default_track(tracks: tuple[Track, ...]) -> int | None:
    """The track a player starts with: the source's default, else the first."""
    flagged = _flagged(tracks)
    return flagged if flagged is not None or not tracks else 0


def _flagged(tracks: tuple[Track, ...]) -> int | None:
    return next((n for n, t in enumerate(tracks) if t.default), None)


def warnings(preset: Preset, source: MediaInfo) -> list[str]:
    """What the file's log says about streams left out that a viewer might miss."""
    said: list[str] = []
    if preset.kind not in ("video", "hls", "audio"):
        return said
    if preset.subtitles and not preset.audio_only:
        for track in source.subtitle_tracks:
            if not track.is_text:
                said.append(
                    f"subtitle track {track.index} ({_describe(track)}) is made of pictures,"
                    " which this output cannot carry as text: left out"
                )
    carried = audio_tracks(preset, source)
    if preset.audio == "all" and 0 < len(carried) < len(source.audio_tracks):
        left = source.audio_tracks[len(carried) :]
        names = ", ".join(f"{t.index} ({_describe(t)})" for t in left)
        said.append(f"{preset.extension} holds one audio track: audio tracks {names} left out")
    return said


def _describe(track: Track) -> str:
    parts = [track.codec, track.language or "", f'"{_clean(track.title)}"' if track.title else ""]
    return ", ".join(p for p in parts if p)


def _clean(value: str) -> str:
    """A tag value on one line: a source's tags are its author's text, not ours."""
    return "".join(c if c.isprintable() else " " for c in value)
