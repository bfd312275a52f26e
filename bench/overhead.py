"""End-to-end ``transcode`` on the local backend vs bare ffmpeg with the identical command line.

    .venv/bin/python bench/overhead.py [--seconds 60] [--rounds 3]

Both are measured in the same run on the same file, alternating, and the table
shows the ratio of medians (target: <= 1.03x). The clip is 1080p ProRes 4:2:2
10-bit with PCM audio, made by ffmpeg's lavfi sources.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autotranscode import presets
from autotranscode.media import probe
from autotranscode.transcoder import command, find_ffmpeg


def make_clip(ffmpeg: str, dest: Path, seconds: float) -> None:
    subprocess.run(
        [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=1920x1080:rate=25:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v",
            "prores_ks",
            "-profile:v",
            "1",
            "-pix_fmt",
            "yuv422p10le",
            "-c:a",
            "pcm_s16le",
            "-shortest",
            str(dest),
        ],
        check=True,
    )


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="clip length")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ffmpeg = find_ffmpeg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clip = tmp / "clip.mov"
        make_clip(ffmpeg, clip, args.seconds)
        preset = presets.get(presets.DEFAULT_PRESET)
        bare, ours = [], []
        for i in range(args.rounds):
            out = tmp / f"bare{i}.mp4"
            bare.append(timed(command(ffmpeg, preset, probe(clip), clip, out)))
            ours.append(
                timed(
                    [
                        sys.executable,
                        "-m",
                        "autotranscode",
                        "transcode",
                        str(clip),
                        "--out",
                        str(tmp / f"out{i}"),
                        "--state-dir",
                        str(tmp / f"state{i}"),
                    ]
                )
            )
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"clip: {args.seconds:.0f} s 1080p ProRes -> {preset.id}, {args.rounds} rounds")
        print(f"{'case':<40}{'median s':>10}{'ratio':>8}")
        print(f"{'bare ffmpeg (same command line)':<40}{b:>10.2f}{1.0:>8.3f}")
        print(f"{'autotranscode transcode (local)':<40}{o:>10.2f}{o / b:>8.3f}")


if __name__ == "__main__":
    main()
