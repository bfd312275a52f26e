"""Shared fixtures: real media made by ffmpeg, a real S3/SQS/SNS endpoint (moto), leak checks."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import imageio_ffmpeg
import pytest

if TYPE_CHECKING:
    from autotranscode.settings import Settings

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
REPO = Path(__file__).resolve().parent.parent

# (file name, ffmpeg arguments between the inputs and the output, duration, has_audio, height)
_LAVFI_V = "testsrc2=size={size}:rate=25:duration={d}"
_LAVFI_A = "sine=frequency=440:sample_rate=48000:duration={d}"


@dataclass(frozen=True)
class Clip:
    path: Path
    duration: float
    height: int | None
    has_audio: bool
    has_video: bool = True


_CLIPS: dict[str, tuple[str, str, float, bool, bool]] = {
    # name: (size, codec args, duration, audio, video)
    # prores_aw, not prores_ks: the same ProRes LT, made in a fifth of the time.
    "prores 10bit.mov": (
        "1920x1080",
        "-c:v prores_aw -profile:v 1 -pix_fmt yuv422p10le -c:a pcm_s16le",
        1.0,
        True,
        True,
    ),
    "mjpeg.avi": ("320x240", "-c:v mjpeg -q:v 5 -pix_fmt yuvj420p -c:a pcm_s16le", 2.0, True, True),
    "vp9.mkv": (
        "320x240",
        "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 200k -c:a libopus",
        2.0,
        True,
        True,
    ),
    "h264.mp4": (
        "320x240",
        "-c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac",
        2.0,
        True,
        True,
    ),
    "no audio.mp4": (
        "320x240",
        "-c:v libx264 -preset ultrafast -pix_fmt yuv420p",
        2.0,
        False,
        True,
    ),
    "tone.m4a": ("", "-c:a aac", 2.0, True, False),
    # Spaces and non-ASCII in the name; its own content (identity is content, not name).
    "Früh stück — 東京 clip.mp4": (
        "320x240",
        "-c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -metadata comment=unicode",
        2.0,
        True,
        True,
    ),
}
UNICODE_NAME = "Früh stück — 東京 clip.mp4"


def _generate(name: str, dest: Path) -> None:
    size, codec, duration, audio, video = _CLIPS[name]
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y"]
    if video:
        cmd += ["-f", "lavfi", "-i", _LAVFI_V.format(size=size, d=duration)]
    if audio:
        cmd += ["-f", "lavfi", "-i", _LAVFI_A.format(d=duration)]
    cmd += [*codec.split(), "-shortest", str(dest)]
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test clip, generated once per session (a few seconds, all tiny)."""
    root = tmp_path_factory.mktemp("media")
    for name in _CLIPS:
        _generate(name, root / name)
    (root / "notes.mp4").write_text("this is a text file with a media extension\n")
    (root / "empty.mov").write_bytes(b"")
    data = (root / "h264.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 8])
    return root


@pytest.fixture(scope="session")
def clips(media_dir: Path) -> dict[str, Clip]:
    """The good clips, with what a transcode to web-720p must preserve."""
    out = {
        name: Clip(media_dir / name, d, int(size.split("x")[1]) if video else None, audio, video)
        for name, (size, _, d, audio, video) in _CLIPS.items()
    }
    return out


@pytest.fixture(scope="session")
def broken(media_dir: Path) -> dict[str, Path]:
    return {n: media_dir / n for n in ("notes.mp4", "empty.mov", "truncated.mp4")}


# --- colour and interlaced sources ---------------------------------------------------------------

#: The picture of the colour clips: testsrc2 blurred a little, as camera footage is (its
#: sharp one-line stripes look combed to ``idet`` even when progressive).
_SOFT = "testsrc2=size={size}:rate={rate}:duration=2,gblur=sigma=1"
_MASTERING = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
_HDR_X265 = f"log-level=error:hdr10=1:master-display={_MASTERING}:max-cll=1000,400"
_TO_PQ = "zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t={t}:m=bt2020nc:p=bt2020:r=tv:npl={npl}"
_MPEG2 = "-c:v mpeg2video -b:v 2M -pix_fmt yuv420p -f mpegts"
_COLOUR_CLIPS: dict[str, tuple[str, str]] = {
    # name: (lavfi source, filters and codec arguments)
    # HDR10: SDR white at 1000 cd/m², BT.2020, PQ, 10-bit HEVC with mastering display and
    # content light level metadata, as a camera or a grading suite makes it.
    "hdr10.mp4": (
        _SOFT.format(size="640x360", rate=25),
        f"-vf {_TO_PQ.format(t='smpte2084', npl=1000)},format=yuv420p10le -c:v libx265"
        f" -preset ultrafast -x265-params {_HDR_X265} -color_primaries bt2020"
        " -color_trc smpte2084 -colorspace bt2020nc",
    ),
    "hlg.mp4": (
        _SOFT.format(size="640x360", rate=25),
        f"-vf {_TO_PQ.format(t='arib-std-b67', npl=1000)},format=yuv420p10le -c:v libx265"
        " -preset ultrafast -x265-params log-level=error -color_primaries bt2020"
        " -color_trc arib-std-b67 -colorspace bt2020nc",
    ),
    # The same picture as SDR BT.709: what a tone-mapped output should look like.
    "sdr reference.mp4": (
        _SOFT.format(size="640x360", rate=25),
        "-vf format=yuv420p,setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709"
        " -c:v libx264 -preset ultrafast -crf 18",
    ),
    # Untagged: no colour properties at all, at an HD size.
    "untagged hd.mp4": (
        _SOFT.format(size="1280x720", rate=25).replace("duration=2", "duration=1"),
        "-vf format=yuv420p -c:v libx264 -preset ultrafast",
    ),
    # 576i: 50 pictures a second woven into 25 top-field-first frames, flagged so.
    "interlaced tff.ts": (
        _SOFT.format(size="720x576", rate=50),
        f"-vf tinterlace=mode=interleave_top,setfield=tff -flags +ilme+ildct {_MPEG2}",
    ),
    # The same, coded as progressive frames: only idet can tell.
    "interlaced unflagged.ts": (
        _SOFT.format(size="720x576", rate=50),
        f"-vf tinterlace=mode=interleave_top,setfield=prog {_MPEG2}",
    ),
    "progressive 576.ts": (_SOFT.format(size="720x576", rate=25), _MPEG2),
    # Film (23.976 frames a second) telecined by 3:2 pulldown to 29.97 interlaced frames,
    # flagged top field first, as an NTSC DVD of a film holds it. Blurred more: a frame
    # made again from its fields must look progressive to idet.
    "telecined 480i.ts": (
        _SOFT.format(size="720x480", rate="24000/1001").replace("sigma=1", "sigma=2"),
        f"-vf telecine=pattern=23,setfield=tff -flags +ilme+ildct {_MPEG2}",
    ),
    # Video shot interlaced at 59.94 fields a second: the same frame rate, no pulldown.
    "interlaced 480i.ts": (
        _SOFT.format(size="720x480", rate="60000/1001").replace("sigma=1", "sigma=2"),
        f"-vf tinterlace=mode=interleave_top,setfield=tff -flags +ilme+ildct {_MPEG2}",
    ),
}


@pytest.fixture(scope="session")
def colour_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """HDR10, HLG, untagged, interlaced and telecined clips (2 s or less, under 1 MB each)."""
    root = tmp_path_factory.mktemp("colour")
    for name, (lavfi, args) in _COLOUR_CLIPS.items():
        cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", lavfi]
        subprocess.run([*cmd, *args.split(), str(root / name)], check=True, capture_output=True)
    return {name: root / name for name in _COLOUR_CLIPS}


# --- a real AWS-compatible endpoint -------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's threaded server on an ephemeral loopback port, spoken to over HTTP."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for code (and subprocesses) that should reach the test endpoint only."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


@pytest.fixture
def deployment_name() -> str:
    """A fresh deployment name per test, so tests sharing the endpoint never see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def boto_session(aws_env: dict[str, str]) -> boto3.Session:
    return boto3.Session(region_name="us-east-1")


# --- hygiene ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every thread autotranscode starts in a test (all are named ``autotranscode-*``) must end."""
    yield
    deadline = time.monotonic() + 5
    while True:
        leaked = [t for t in threading.enumerate() if t.name.startswith("autotranscode")]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"threads left running: {leaked}"


def _children() -> dict[int, str]:
    """pid -> "name (state)" of this process's children, exited-but-unreaped ones too."""
    found = {}
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids = (task / "children").read_text().split()
        except OSError:  # a thread that just ended
            continue
        for pid in map(int, pids):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:  # reaped meanwhile
                continue
            name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
            found[pid] = f"{name} ({state})"
    return found


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Every process a test starts (ffmpeg, the CLI, a worker) must be gone, and reaped, when
    it ends; one still exiting gets a moment."""
    before = _children().keys()
    yield
    deadline = time.monotonic() + 5
    while True:
        leaked = {pid: what for pid, what in _children().items() if pid not in before}
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"child processes left behind: {leaked}"


def backend_settings(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Settings:
    """Settings for ``backend`` with the state dir under ``tmp_path``; aws uses the moto server."""
    from autotranscode import settings as settings_mod

    values: dict[str, object] = {"backend": backend, "state_dir": tmp_path / "state"}
    if backend == "aws":
        request.getfixturevalue("aws_env")
        values["endpoint_url"] = request.getfixturevalue("moto_endpoint")
        values["name"] = request.getfixturevalue("deployment_name")
    return settings_mod.build(values)


def check_output(path: Path, clip: Clip, max_height: int = 720) -> None:
    """A delivered output must be H.264/AAC (or AAC alone) of the right height and duration."""
    from autotranscode.media.probe import probe

    info = probe(path)
    if clip.has_video:
        assert info.video_codec == "h264", (path, info)
        assert clip.height is not None
        assert info.height == min(clip.height, max_height), (path, info)
    else:
        assert not info.has_video, (path, info)
    assert info.has_audio == clip.has_audio, (path, info)
    if clip.has_audio:
        assert info.audio_codec == "aac", (path, info)
    assert info.duration is not None and abs(info.duration - clip.duration) < 0.5, (path, info)


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for running the CLI as a subprocess, isolated from the user's config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOTRANSCODE_", "AWS_"))}
    env["XDG_CONFIG_HOME"] = str(REPO / "tests" / "_no_config")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a hung process, sent SIGABRT, shows its threads' stacks
    env.update(extra or {})
    return env


# --- several streams: audio tracks, subtitles, chapters, scene cuts -------------------------------

_SRT = "1\n00:00:00,500 --> 00:00:01,500\nHello\n\n2\n00:00:02,000 --> 00:00:02,800\nWorld\n"
#: The scene-cut clip's subtitles, English and French: a cue in each of its three segments.
_SCENE_SRT = {
    lang: "".join(
        f"{n + 1}\n00:00:{start:02d},500 --> 00:00:{start + 1:02d},500\n{word} {n + 1}\n\n"
        for n, start in enumerate((0, 7, 12))
    )
    for lang, word in (("eng", "Line"), ("fre", "Ligne"))
}
_CHAPTERS = (
    ";FFMETADATA1\ntitle=A film\n"
    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\ntitle=One\n"
    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\nEND=3000\ntitle=Two\n"
)
CREATION_TIME = "2020-05-17T10:00:00.000000Z"
#: Each scene of the scene-cut clip lasts this long: keyframes an encoder puts at its cuts
#: fall between the HLS segment boundaries.
SCENE_SECONDS = 2.3
_SCENES = (
    "testsrc2=size=320x240:rate=25:duration={d}",
    "mandelbrot=size=320x240:rate=25,trim=duration={d}",
    "smptebars=size=320x240:rate=25:duration={d}",
    "cellauto=size=320x240:rate=25:rule=110,trim=duration={d}",
    "rgbtestsrc=size=320x240:rate=25:duration={d}",
    "life=size=320x240:rate=25:mold=10,trim=duration={d}",
)


def _two_languages(dest: Path, extra_inputs: list[str], codec: str, scenes: bool) -> None:
    """English (default) and French ("Commentaire") audio; with ``scenes``, a picture that
    changes completely every SCENE_SECONDS, else 3 s of test pattern."""
    duration = SCENE_SECONDS * len(_SCENES) if scenes else 3.0
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y"]
    pictures = _SCENES if scenes else (_SCENES[0],)
    for picture in pictures:
        cmd += ["-f", "lavfi", "-i", picture.format(d=SCENE_SECONDS if scenes else duration)]
    for hz in (440, 660):
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={hz}:duration={duration}"]
    n = len(pictures)
    graph = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0,format=yuv420p[v]"
    cmd += [*extra_inputs, "-filter_complex", graph, "-map", "[v]", "-map", str(n)]
    cmd += ["-map", str(n + 1)]
    if extra_inputs:
        cmd += ["-map", f"{n + 2}:s", "-map_metadata", str(n + 3), "-map_chapters", str(n + 3)]
        cmd += ["-metadata:s:s:0", "language=eng", "-metadata", f"creation_time={CREATION_TIME}"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-c:a", "aac", *codec.split()]
    cmd += ["-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra"]
    cmd += ["-metadata:s:a:1", "title=Commentaire", "-disposition:a:0", "default"]
    cmd += ["-disposition:a:1", "0", str(dest)]
    subprocess.run(cmd, check=True, capture_output=True)


def _pgs(width: int, height: int) -> bytes:
    """A Blu-ray (PGS) subtitle stream: a box shown at 0.5 s and cleared at 2 s.

    Written here, as ffmpeg cannot make picture subtitles from anything it can generate.
    """

    def segment(pts: int, kind: int, data: bytes) -> bytes:
        return b"PG" + pts.to_bytes(4, "big") + bytes(4) + bytes([kind])
        +len(data).to_bytes(2, "big") + data

    def u16(n: int) -> bytes:
        return n.to_bytes(2, "big")

    box_w, box_h = 16, 8
    rle = (b"\x00" + bytes([0x80 | box_w]) + b"\x01" + b"\x00\x00") * box_h
    ods = u16(0) + b"\x00\xc0" + (len(rle) + 4).to_bytes(3, "big") + u16(box_w) + u16(box_h) + rle
    show, clear = 45_000, 180_000
    screen = u16(width) + u16(height) + b"\x10"
    window = b"\x01\x00" + u16(8) + u16(8) + u16(box_w) + u16(box_h)
    return b"".join(
        (
            segment(
                show,
                0x16,
                screen + u16(0) + b"\x80\x00\x00\x01" + u16(0) + b"\x00\x00" + u16(8) + u16(8),
            ),
            segment(show, 0x17, window),
            segment(show, 0x14, b"\x00\x00" + b"\x01\xeb\x80\x80\xff"),
            segment(show, 0x15, ods),
            segment(show, 0x80, b""),
            segment(clear, 0x16, screen + u16(1) + b"\x00\x00\x00\x00"),
            segment(clear, 0x17, window),
            segment(clear, 0x80, b""),
        )
    )


@pytest.fixture(scope="session")
def stream_clips(media_dir: Path) -> dict[str, Path]:
    """``languages.mkv``: two audio tracks, an SRT subtitle, chapters, creation time and
    title; ``pictures.mkv``: the same but its subtitle is a PGS picture one;
    ``scenes.mkv``: 13.8 s of scene cuts every SCENE_SECONDS, two audio tracks and two
    SRT subtitles (``_SCENE_SRT``: eng, then fre with the title "Sous-titres")."""
    (media_dir / "s.srt").write_text(_SRT)
    (media_dir / "s.sup").write_bytes(_pgs(320, 240))
    (media_dir / "meta.txt").write_text(_CHAPTERS)
    made = {}
    for name, sub, codec in (
        ("languages.mkv", "s.srt", "-c:s srt"),
        ("pictures.mkv", "s.sup", "-c:s copy"),
    ):
        inputs = ["-i", str(media_dir / sub), "-i", str(media_dir / "meta.txt")]
        _two_languages(media_dir / name, inputs, codec, scenes=False)
        made[name] = media_dir / name
    _two_languages(media_dir / "scenes-bare.mkv", [], "", scenes=True)
    cmd = [
        FFMPEG,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(media_dir / "scenes-bare.mkv"),
    ]
    for lang, text in _SCENE_SRT.items():
        (media_dir / f"scenes.{lang}.srt").write_text(text)
        cmd += ["-i", str(media_dir / f"scenes.{lang}.srt")]
    cmd += ["-map", "0", "-map", "1", "-map", "2", "-c", "copy", "-c:s", "srt"]
    cmd += ["-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=fre"]
    cmd += ["-metadata:s:s:1", "title=Sous-titres", str(media_dir / "scenes.mkv")]
    subprocess.run(cmd, check=True, capture_output=True)
    made["scenes.mkv"] = media_dir / "scenes.mkv"
    return made


#: Pictures that differ from each other at a glance: one per scene of ``make_scene_clip``.
SCENE_SOURCES = ("testsrc2", "mandelbrot", "smptebars", "testsrc", "pal100bars", "rgbtestsrc")


def make_scene_clip(ffmpeg: str, dst: Path, scene_frames: tuple[int, ...], rate: int) -> Path:
    """A 320x240 H.264 clip of hard scene cuts (a different picture for each of
    ``scene_frames``, at most six), with keyframes forced at every cut and every 2 s and
    none elsewhere, B-frames between them (``--chunk-scenes``' tests)."""
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    graph = ""
    for n, (source, frames) in enumerate(zip(SCENE_SOURCES, scene_frames, strict=False)):
        cmd += ["-f", "lavfi", "-i", f"{source}=s=320x240:r={rate}"]
        graph += f"[{n}:v]trim=end_frame={frames},setpts=PTS-STARTPTS,"
        graph += f"format=yuv420p,setsar=1[v{n}];"
    graph += "".join(f"[v{n}]" for n in range(len(scene_frames)))
    graph += f"concat=n={len(scene_frames)}:v=1:a=0[v]"
    cuts = list(itertools.accumulate(f / rate for f in scene_frames[:-1]))
    total = sum(scene_frames) / rate
    keys = sorted({*(float(t) for t in range(0, math.ceil(total), 2)), *cuts})
    cmd += ["-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast"]
    cmd += ["-x264-params", "keyint=500:scenecut=0", "-forced-idr", "1"]
    # A millisecond early: the first frame at or after each time is the cut's, however rounded.
    cmd += ["-force_key_frames", ",".join(f"{max(0.0, t - 0.001):.3f}" for t in keys), str(dst)]
    subprocess.run(cmd, check=True)
    return dst


def make_long_clip(dst: Path, seconds: int, frequency: int = 440) -> Path:
    """A 320x240 25 fps H.264 clip with a tone (AAC), a keyframe every 2 s: long enough to
    be cut into chunks (``--chunk-seconds``' tests), quick to make."""
    subprocess.run(
        [
            *(FFMPEG, "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}"),
            *("-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=48000"),
            *("-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "50"),
            *("-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(dst)),
        ],
        check=True,
    )
    return dst
