"""HTTP Live Streaming: one encode split into the ladder's renditions and a master playlist.

Players switch renditions at segment boundaries, so every rendition has a keyframe at the
same instants, every SEGMENT_SECONDS: forced there, and no scene cut may add one that the
segmenter would cut at instead (x264's ``-sc_threshold 0``). Every segment then lasts
SEGMENT_SECONDS (to a frame) but the last, in every rendition alike.

With one audio track, each rendition carries it (one download per rendition). With
several, each is a rendition of its own, in an audio group (``EXT-X-MEDIA``) that every
video rendition names, so a player offers the languages and downloads one.

Text subtitles become WebVTT renditions in a subtitles group that every video rendition
names. ffmpeg's segmenter writes a subtitle only beside a video or audio stream, one per
rendition, cut where that stream is cut. So each subtitle track gets a carrier of its
own: a 16x16 picture from the same decode, its keyframes forced as the renditions' are,
so its WebVTT segments have the video's boundaries; the carrier is deleted after the
encode, leaving the track's folder (``subtitles-K``) with its playlist and segments. (An
audio rendition as the carrier would do without one, but ffmpeg then stretches that audio
playlist's last segment by the last cue's length.) Each WebVTT segment is given the
``X-TIMESTAMP-MAP`` that ties its cue times to the MPEG-TS clock (ffmpeg writes none).
Languages are told as BCP 47 tags with their own names (``languages``).

ffmpeg's master playlist lacks the frame rate and measures bandwidth its own way;
``write_master`` writes it again after the encode, from the segments themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import av

from . import colour, interlace, languages, streams, video
from .presets import Preset
from .probe import MediaInfo, Track

#: Seconds per segment.
SEGMENT_SECONDS = 6
MASTER = "master.m3u8"
PLAYLIST = "index.m3u8"
#: The group every video rendition names when the audio is a rendition of its own.
AUDIO_GROUP = "audio"
#: The group of the WebVTT subtitle renditions.
SUBTITLE_GROUP = "subs"
#: What ffmpeg names the subtitle playlist beside its carrier's ``PLAYLIST``.
_VTT_PLAYLIST = "index_vtt.m3u8"
#: A subtitle carrier's picture: the smallest any encoder takes, as it is thrown away.
_CARRIER = "scale=16:16:flags=fast_bilinear"
#: Where ffmpeg's MPEG-TS muxer starts its clock: twice ``-muxdelay`` (0.7 s) after the
#: output's time zero, in 90 kHz ticks. A WebVTT cue at 0 is shown at this MPEG-TS time.
MPEGTS_START = 126_000


def options(preset: Preset, source: MediaInfo, folder: Path) -> list[str]:
    """One decode, split to every rendition of the ladder not above the source."""
    sizes = preset.rendition_sizes(source)
    subtitles = subtitle_tracks(preset, source)
    pictures = len(sizes) + len(subtitles)
    splits = "".join(f"[v{n}]" for n in range(pictures))
    picture = [*interlace.filters(preset, source), *colour.filters(preset, source, None)]
    graph = [f"[0:v:0]{','.join(picture)},split={pictures}{splits}"]
    graph += [f"[v{n}]scale={w}:{h}:flags=bicubic[o{n}]" for n, (w, h) in enumerate(sizes)]
    graph += [f"[v{n}]{_CARRIER}[o{n}]" for n in range(len(sizes), pictures)]
    args = ["-filter_complex", ";".join(graph)]
    audio = streams.audio_specs(preset, source)
    grouped = audio_grouped(preset, source)
    stream_map = []
    for n, size in enumerate(sizes):
        rendition = replace(preset, max_bitrate_k=ladder_bitrate(min(size)))
        args += ["-map", f"[o{n}]", *video.encoder_options(rendition, n), *keyframes(preset, n)]
        if audio and not grouped:
            args += ["-map", audio[0], *streams.audio_options(preset, n)]
            stream_map.append(f"v:{n},a:{n},name:{n}")
        else:
            group = f",agroup:{AUDIO_GROUP}" if grouped else ""
            stream_map.append(f"v:{n}{group},name:{n}")
    if grouped:
        for k, spec in enumerate(audio):
            args += ["-map", spec, *streams.audio_options(preset, k)]
            stream_map.append(f"a:{k},agroup:{AUDIO_GROUP},name:{audio_folder(k)}")
    carrier = replace(preset, video_codec="libx264")
    for k, track in enumerate(subtitles):
        n = len(sizes) + k
        args += ["-map", f"[o{n}]", f"-c:v:{n}", "libx264", f"-preset:v:{n}", "ultrafast"]
        args += [*keyframes(carrier, n), "-map", f"0:{track.index}", f"-c:s:{k}", "webvtt"]
        stream_map.append(f"v:{n},s:{k},sgroup:{SUBTITLE_GROUP},name:{subtitle_folder(k)}")
    tracks = streams.audio_tracks(preset, source)
    # Muxed: each rendition's copy of the one track says its language.
    carried = tracks if grouped else tracks[:1] * len(sizes) if audio else ()
    return [
        *args,
        *streams.metadata(preset, source, audio=carried, subtitles=subtitles),
        *("-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod"),
        *("-hls_segment_type", "mpegts", "-hls_flags", "independent_segments"),
        *("-hls_segment_filename", str(folder / "%v" / "segment-%03d.ts")),
        *("-master_pl_name", MASTER, "-var_stream_map", " ".join(stream_map)),
        str(folder / "%v" / PLAYLIST),
    ]


def keyframes(preset: Preset, n: int) -> list[str]:
    """A keyframe at every segment boundary of rendition ``n``, and none from scene cuts
    (the segmenter cuts at the first keyframe past each boundary)."""
    v = f":v:{n}"
    args = [f"-force_key_frames{v}", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})"]
    if preset.video_codec == "libx264":
        args += [f"-sc_threshold{v}", "0"]
    elif preset.video_codec == "libx265":
        args += [f"-x265-params{v}", "scenecut=0:log-level=error"]
    return args


def audio_grouped(preset: Preset, source: MediaInfo) -> bool:
    """Whether the audio is its own rendition group: when there are several tracks."""
    return len(streams.audio_tracks(preset, source)) > 1


def audio_folder(k: int) -> str:
    return f"audio-{k}"


def subtitle_tracks(preset: Preset, source: MediaInfo) -> tuple[Track, ...]:
    """The text subtitles the ladder carries as WebVTT renditions."""
    if not preset.subtitles:
        return ()
    return tuple(t for t in source.subtitle_tracks if t.is_text)


def subtitle_folder(k: int) -> str:
    return f"subtitles-{k}"


def subtitles_only(folder: Path) -> None:
    """A subtitle track's folder as delivered: its carrier's picture and playlist deleted,
    its WebVTT playlist in their place, said to be VOD, each segment's cues mapped to the
    MPEG-TS clock (``map_timestamps``). ValueError when the WebVTT playlist is missing."""
    vtt = folder / _VTT_PLAYLIST
    if not vtt.is_file():
        raise ValueError(f"{folder.name} has no subtitle playlist")
    for picture in folder.glob("*.ts"):
        picture.unlink()
    map_timestamps(vtt)
    text = vtt.read_text(encoding="utf-8")
    if "#EXT-X-PLAYLIST-TYPE:" not in text:
        text = text.replace(
            "#EXT-X-TARGETDURATION:", "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:"
        )
    tmp = folder / f".{PLAYLIST}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(folder / PLAYLIST)
    vtt.unlink()


def ladder_bitrate(short_side: int) -> int:
    """A rendition's peak kbit/s, by its short side."""
    return {1080: 6000, 720: 3500, 480: 1500, 360: 800}.get(short_side, max(400, short_side * 5))


# --- after the encode: the master playlist, measured ---------------------------------------------


@dataclass(frozen=True)
class Measured:
    """A media playlist's segments: peak and average bit/s, and how long each lasts."""

    peak: int
    average: int
    durations: tuple[float, ...]


def segments(playlist: Path) -> list[tuple[float, str]]:
    """(duration, URI) of each segment of a media playlist."""
    found: list[tuple[float, str]] = []
    duration: float | None = None
    for line in playlist.read_text().splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",")[0])
        elif line and not line.startswith("#") and duration is not None:
            found.append((duration, line))
            duration = None
    return found


def measure(playlist: Path) -> Measured:
    parts = segments(playlist)
    if not parts:
        raise ValueError(f"{playlist.parent.name}/{playlist.name} lists no segments")
    sizes = [(d, (playlist.parent / uri).stat().st_size * 8) for d, uri in parts]
    peak = max(bits / d for d, bits in sizes if d > 0)
    total = sum(d for d, _ in sizes)
    average = sum(bits for _, bits in sizes) / total if total else peak
    return Measured(math.ceil(peak), math.ceil(average), tuple(d for d, _ in parts))


def write_master(preset: Preset, source: MediaInfo, folder: Path) -> None:
    """The master playlist again, with what players choose by: codecs, resolution, frame
    rate, and peak and average bandwidth measured from the segments (audio included).
    ValueError when a rendition is missing or unreadable."""
    sizes = preset.rendition_sizes(source)
    tracks = streams.audio_tracks(preset, source)
    grouped = audio_grouped(preset, source)
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    audio_peak = audio_average = 0
    audio_codec = None
    if grouped:
        names: set[str] = set()
        for k, track in enumerate(tracks):
            playlist = folder / audio_folder(k) / PLAYLIST
            measured = measure(playlist)
            audio_peak = max(audio_peak, measured.peak)
            audio_average = max(audio_average, measured.average)
            audio_codec = audio_codec or _first_segment_codecs(playlist)[1]
            default = k == streams.default_track(tracks)
            lines.append(media_line(track, k, default, names, f"{audio_folder(k)}/{PLAYLIST}"))
    subtitles = subtitle_tracks(preset, source)
    subtitle_names: set[str] = set()
    for k, track in enumerate(subtitles):
        subtitles_only(folder / subtitle_folder(k))
        uri = f"{subtitle_folder(k)}/{PLAYLIST}"
        lines.append(media_line(track, k, track.default, subtitle_names, uri))
    for n, (width, height) in enumerate(sizes):
        playlist = folder / str(n) / PLAYLIST
        measured = measure(playlist)
        video_codec, muxed_audio, rate = _first_segment_codecs(playlist)
        codecs = [c for c in (video_codec, muxed_audio or audio_codec) if c]
        attrs = [
            f"BANDWIDTH={measured.peak + audio_peak}",
            f"AVERAGE-BANDWIDTH={measured.average + audio_average}",
            *([f'CODECS="{",".join(codecs)}"'] if codecs else []),
            f"RESOLUTION={width}x{height}",
            *([f"FRAME-RATE={rate:.3f}"] if rate else []),
            *([f'AUDIO="{AUDIO_GROUP}"'] if grouped else []),
            *([f'SUBTITLES="{SUBTITLE_GROUP}"'] if subtitles else []),
        ]
        lines += [f"#EXT-X-STREAM-INF:{','.join(attrs)}", f"{n}/{PLAYLIST}"]
    tmp = folder / f".{MASTER}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(folder / MASTER)


def media_line(track: Track, k: int, default: bool, names: set[str], uri: str) -> str:
    """An audio or subtitle rendition's EXT-X-MEDIA line: its language as a BCP 47 tag, its
    NAME the language's own name (with the track's title), unique in the group."""
    audio = track.kind == "audio"
    language = languages.bcp47(track.language)
    name = _quoted(rendition_name(track) or f"{'Audio' if audio else 'Subtitles'} {k + 1}")
    if name in names:
        name = f"{name} ({k + 1})"
    names.add(name)
    attrs = [
        f"TYPE={'AUDIO' if audio else 'SUBTITLES'}",
        f'GROUP-ID="{AUDIO_GROUP if audio else SUBTITLE_GROUP}"',
        f'NAME="{name}"',
        *([f'LANGUAGE="{language}"'] if language else []),
        f"DEFAULT={'YES' if default else 'NO'}",
        "AUTOSELECT=YES",
        *([] if audio else ["FORCED=NO"]),
        f'URI="{uri}"',
    ]
    return f"#EXT-X-MEDIA:{','.join(attrs)}"


def rendition_name(track: Track) -> str | None:
    """What a player's menu shows: the language's own name, with the track's title when it
    says more ("Français (Commentaire)"); the title alone, or the tag, when unnamed."""
    language = languages.name(track.language)
    title = track.title.strip() if track.title else None
    if language and title and title.casefold() not in (language.casefold(), track.language):
        return f"{language} ({title})"
    return language or title or languages.bcp47(track.language)


def _quoted(value: str) -> str:
    """A quoted-string of a playlist holds no double quote, CR or LF."""
    return "".join(c for c in value if c.isprintable() and c != '"').strip() or "Untitled"


def map_timestamps(playlist: Path) -> None:
    """Give each WebVTT segment of a subtitle playlist its ``X-TIMESTAMP-MAP`` (see
    ``MPEGTS_START``), so players show the cues in step with the MPEG-TS video."""
    header = f"X-TIMESTAMP-MAP=MPEGTS:{MPEGTS_START},LOCAL:00:00:00.000"
    for _, uri in segments(playlist):
        path = playlist.parent / uri
        first, _, rest = path.read_text(encoding="utf-8").partition("\n")
        if not first.startswith("WEBVTT"):
            raise ValueError(f"{playlist.parent.name}/{uri} is not WebVTT")
        if rest.startswith("X-TIMESTAMP-MAP="):
            continue
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(f"{first}\n{header}\n{rest}", encoding="utf-8")
        tmp.replace(path)


def _first_segment_codecs(playlist: Path) -> tuple[str | None, str | None, float | None]:
    """RFC 6381 codec names of the video and audio in a playlist's first segment, and the
    video's frame rate: read off the stream itself (the H.264 SPS's profile and level)."""
    first = segments(playlist)[0][1]
    video_codec = audio_codec = None
    rate = None
    with av.open(str(playlist.parent / first)) as container:
        for stream in container.streams:
            cc = stream.codec_context
            if stream.type == "video" and cc is not None and cc.name == "h264":
                video_codec = avc1(bytes(cc.extradata or b""))
                if video_codec is None:
                    packet = next(container.demux(stream), None)
                    video_codec = avc1(bytes(packet) if packet is not None else b"")
                average = stream.average_rate or stream.guessed_rate
                rate = float(average) if average else None
            elif stream.type == "audio" and cc is not None:
                audio_codec = _AUDIO_CODECS.get((cc.name, cc.profile or ""))
    return video_codec, audio_codec, rate


#: RFC 6381 names of audio codecs, by FFmpeg's codec and profile names.
_AUDIO_CODECS = {
    ("aac", "LC"): "mp4a.40.2",
    ("aac", "HE-AAC"): "mp4a.40.5",
    ("aac", "HE-AACv2"): "mp4a.40.29",
    ("mp3", ""): "mp4a.40.34",
    ("mp3float", ""): "mp4a.40.34",
    ("ac3", ""): "ac-3",
    ("eac3", ""): "ec-3",
}


def avc1(data: bytes) -> str | None:
    """``avc1.PPCCLL`` from the first sequence parameter set in Annex B bytes."""
    at = data.find(b"\x00\x00\x01\x67")
    if at < 0 or len(data) < at + 7:
        return None
    return "avc1." + data[at + 4 : at + 7].hex()
