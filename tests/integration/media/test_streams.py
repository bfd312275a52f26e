"""Every stream a viewer may want goes along (audio tracks, text subtitles, chapters, creation
time), picture subtitles are left out and said so, and an HLS ladder is cut where players can
switch: real ffmpeg on generated clips, results read back with PyAV and the m3u8 package."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from pathlib import Path

import av
import m3u8
import pytest

from autotranscode.media import hls, presets, recipe
from autotranscode.media.probe import MediaInfo, probe
from autotranscode.media.transcoder import find_ffmpeg, transcode

from conftest import CREATION_TIME


def _made(preset: presets.Preset, src: Path, out: Path) -> MediaInfo:
    transcode(find_ffmpeg(), preset, probe(src, detail=True), src, out)
    return probe(out)


def _streams(path: Path) -> list[tuple[str, str, str | None, int]]:
    """(type, codec, language, default flag) of each audio and subtitle stream."""
    with av.open(str(path)) as container:
        return [
            (
                s.type,
                s.codec_context.name,
                s.metadata.get("language"),
                int(bool(s.disposition & av.stream.Disposition.default)),
            )
            for s in container.streams
            if s.type in ("audio", "subtitle")
        ]


def test_web_720p_keeps_both_languages_the_subtitle_chapters_and_creation_time(
    stream_clips: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "o.mp4"
    info = _made(presets.CATALOG["web-720p"], stream_clips["languages.mkv"], out)

    audio = info.audio_tracks
    assert [(t.codec, t.language, t.default) for t in audio] == [
        ("aac", "eng", True),
        ("aac", "fra", False),
    ]
    assert audio[1].title == "Commentaire"
    assert [(t.codec, t.language) for t in info.subtitle_tracks] == [("mov_text", "eng")]
    assert info.creation_time == CREATION_TIME
    assert info.title == "A film"
    assert info.chapters == 2


def test_webm_carries_the_subtitle_as_webvtt(stream_clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.webm"
    _made(presets.CATALOG["webm-vp9"], stream_clips["languages.mkv"], out)

    assert _streams(out) == [
        ("audio", "opus", "eng", 1),
        ("audio", "opus", "fra", 0),
        ("subtitle", "webvtt", "eng", 0),
    ]


def test_a_preset_can_leave_the_extra_audio_and_the_subtitles_out(
    stream_clips: dict[str, Path], tmp_path: Path
) -> None:
    preset = presets.build(
        "first-only", {"extends": "web-720p", "audio": "first", "subtitles": False}
    )
    info = _made(preset, stream_clips["languages.mkv"], tmp_path / "o.mp4")

    assert [t.language for t in info.audio_tracks] == ["eng"]
    assert info.subtitle_tracks == ()


def test_a_picture_subtitle_is_left_out_and_said_so(
    stream_clips: dict[str, Path], tmp_path: Path
) -> None:
    src = stream_clips["pictures.mkv"]
    source = probe(src, detail=True)
    assert [t.codec for t in source.subtitle_tracks] == ["hdmv_pgs_subtitle"]
    preset = presets.CATALOG["web-720p"]

    info = _made(preset, src, tmp_path / "o.mp4")

    assert info.subtitle_tracks == ()
    assert len(info.audio_tracks) == 2
    (said,) = recipe.warnings(preset, source)
    assert "subtitle track 3 (hdmv_pgs_subtitle, eng) is made of pictures" in said


# --- HLS ------------------------------------------------------------------------------------------


def _ladder(**changes: object) -> presets.Preset:
    """The catalog's HLS preset on a ladder that fits a 320x240 clip: two renditions."""
    return replace(presets.CATALOG["hls"], ladder=(240, 180), **changes)


def _boundaries(playlist: m3u8.M3U8) -> list[float]:
    ends, at = [], 0.0
    for segment in playlist.segments:
        at += segment.duration
        ends.append(round(at, 3))
    return ends


def _keyframe_times(segment: Path) -> list[float]:
    with av.open(str(segment)) as container:
        stream = container.streams.video[0]
        return [
            float(p.pts * p.time_base)
            for p in container.demux(stream)
            if p.is_keyframe and p.pts is not None
        ]


@pytest.fixture(scope="module")
def ladder(stream_clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hls") / "scenes.hls"
    src = stream_clips["scenes.mkv"]
    transcode(find_ffmpeg(), _ladder(), probe(src, detail=True), src, folder)
    return folder


def test_hls_segments_last_six_seconds_in_every_rendition_despite_scene_cuts(
    ladder: Path,
) -> None:
    master = m3u8.load(str(ladder / "master.m3u8"))
    assert len(master.playlists) == 2
    bounds = []
    for variant in master.playlists:
        playlist = m3u8.load(str(ladder / variant.uri))
        assert playlist.is_independent_segments and playlist.is_endlist
        durations = [s.duration for s in playlist.segments]
        assert len(durations) == 3, durations  # 13.8 s: 6 + 6 + the rest
        assert all(abs(d - hls.SEGMENT_SECONDS) <= 0.1 for d in durations[:-1]), durations
        bounds.append(_boundaries(playlist))
        # Each segment starts on a keyframe, and the scene cuts made none between.
        for segment in playlist.segments:
            keyframes = _keyframe_times(ladder / variant.uri.rsplit("/", 1)[0] / segment.uri)
            assert len(keyframes) == 1, (segment.uri, keyframes)
    assert bounds[0] == bounds[1]


def test_hls_master_playlist_says_what_players_choose_by(ladder: Path) -> None:
    master = m3u8.load(str(ladder / "master.m3u8"))
    assert master.is_independent_segments
    sizes = [(320, 240), (240, 180)]
    for variant, size in zip(master.playlists, sizes, strict=True):
        info = variant.stream_info
        assert info.resolution == size
        assert info.frame_rate == 25.0
        assert info.codecs is not None
        video_codec, audio_codec = info.codecs.split(",")
        assert video_codec.startswith("avc1.64") and audio_codec == "mp4a.40.2"
        assert info.audio == hls.AUDIO_GROUP
        folder = ladder / variant.uri.rsplit("/", 1)[0]
        video_bits = sum(p.stat().st_size * 8 for p in folder.glob("*.ts"))
        assert info.average_bandwidth > video_bits / 14  # the video alone, over ~13.9 s
        assert info.bandwidth >= info.average_bandwidth


def test_hls_several_audio_tracks_are_an_audio_group(ladder: Path) -> None:
    master = m3u8.load(str(ladder / "master.m3u8"))
    audio = [m for m in master.media if m.type == "AUDIO"]
    # BCP 47 tags ("eng" → "en"), each named in its own language.
    assert [(m.group_id, m.language, m.name, m.default) for m in audio] == [
        ("audio", "en", "English", "YES"),
        ("audio", "fr", "Français (Commentaire)", "NO"),
    ]
    for rendition in audio:
        playlist = m3u8.load(str(ladder / rendition.uri))
        segment = ladder / rendition.uri.rsplit("/", 1)[0] / playlist.segments[0].uri
        assert probe(segment).audio_codec == "aac"
    for variant in master.playlists:  # the video renditions carry no audio of their own
        assert not probe(ladder / variant.uri).has_audio


def test_hls_with_one_audio_track_carries_it_in_every_rendition(
    stream_clips: dict[str, Path], tmp_path: Path
) -> None:
    src = stream_clips["languages.mkv"]
    folder = tmp_path / "o.hls"
    transcode(find_ffmpeg(), _ladder(audio="first"), probe(src, detail=True), src, folder)

    master = m3u8.load(str(folder / "master.m3u8"))
    assert [(m.type, m.language, m.uri) for m in master.media] == [
        ("SUBTITLES", "en", "subtitles-0/index.m3u8")  # the SRT
    ]
    assert not list((folder / "subtitles-0").glob("*.ts")), "the carrier picture is gone"
    for variant in master.playlists:
        assert variant.stream_info.audio is None
        assert variant.stream_info.subtitles == hls.SUBTITLE_GROUP
        assert probe(folder / variant.uri).audio_codec == "aac"


def _first_video_pts(segment: Path) -> int:
    with av.open(str(segment)) as container:
        packets = container.demux(container.streams.video[0])
        return min(p.pts for p in itertools.islice(packets, 10) if p.pts is not None)


def _cues(vtt: Path) -> tuple[int, list[tuple[float, str]]]:
    """A WebVTT segment's X-TIMESTAMP-MAP (MPEG-TS ticks at its local zero) and its cues
    (start seconds, text)."""
    lines = vtt.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "WEBVTT"
    mapping = re.fullmatch(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:00:00:00\.000", lines[1])
    assert mapping is not None, lines[:3]
    cues = []
    for n, line in enumerate(lines):
        if "-->" in line:
            minutes, seconds = line.split(" --> ")[0].split(":")[-2:]
            cues.append((int(minutes) * 60 + float(seconds), lines[n + 1]))
    return int(mapping[1]), cues


def test_hls_text_subtitles_are_webvtt_renditions_in_step_with_the_video(ladder: Path) -> None:
    master = m3u8.load(str(ladder / "master.m3u8"))
    subtitles = [m for m in master.media if m.type == "SUBTITLES"]
    assert [(m.group_id, m.language, m.name, m.forced) for m in subtitles] == [
        ("subs", "en", "English", "NO"),
        ("subs", "fr", "Français (Sous-titres)", "NO"),
    ]
    assert all(v.stream_info.subtitles == "subs" for v in master.playlists)
    video = m3u8.load(str(ladder / master.playlists[0].uri))
    start = _first_video_pts(ladder / "0" / video.segments[0].uri)  # the source's time zero
    for rendition, word in zip(subtitles, ("Line", "Ligne"), strict=True):
        playlist = m3u8.load(str(ladder / rendition.uri))
        assert playlist.is_endlist
        bounds = _boundaries(playlist)
        assert bounds[:-1] == _boundaries(video)[:-1]  # the video's segments, the same cuts
        assert bounds[-1] == pytest.approx(_boundaries(video)[-1], abs=0.2)
        folder = ladder / rendition.uri.rsplit("/", 1)[0]
        for n, segment in enumerate(playlist.segments):
            ticks, cues = _cues(folder / segment.uri)
            # One cue a segment, shown when the source shows it (0.5 s, 7.5 s, 12.5 s).
            assert [text for _, text in cues] == [f"{word} {n + 1}"]
            shown = cues[0][0] + (ticks - start) / 90_000
            assert shown == pytest.approx((0.5, 7.5, 12.5)[n], abs=0.05)
