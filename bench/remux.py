"""Benchmark 8: a conforming source remuxed against the same source encoded by the same
preset, in one run.

    .venv/bin/python bench/remux.py                     # 60 s 720p clip, 1 round
    .venv/bin/python bench/remux.py --seconds 10        # quicker

The clip is what web-720p makes (and what many cameras and phones record): 1280x720
H.264 High, yuv420p, tagged BT.709, at most 3 Mbit/s, AAC stereo, in MP4; its picture
is testsrc2 with moving noise, so the encoder has real work. Both sides go through
``remux.make``'s own calls: ``transcode`` with ``remux=True`` (what ``make`` chooses for
this source) and without (what it did before). Rounds alternate which goes first.
Target: the remux at least 20x faster than the encode.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from benchlib import Table, ffmpeg, median, print_tables, verdict, workdir

from autotranscode.media import conform, presets
from autotranscode.media.probe import probe
from autotranscode.media.stamps import Stamp
from autotranscode.media.transcoder import find_ffmpeg, transcode

TARGET_SPEEDUP = 20.0
PRESET = "web-720p"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="clip length (default: 60)")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds")
    p.add_argument("--keep", type=Path, help="work in this folder and leave it (for inspection)")
    return p


def conforming_clip(dest: Path, seconds: float) -> Path:
    """A 720p H.264 + AAC clip as web-720p would make it, peak 3 Mbit/s (below its 4)."""
    picture = (
        f"testsrc2=size=1280x720:rate=25:duration={seconds},noise=alls=6:allf=t,"
        "format=yuv420p,setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
    )
    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", picture]
    cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-crf", "23"]
    cmd += ["-maxrate", "3000k", "-bufsize", "6000k", "-c:a", "aac", "-b:a", "128k", "-ac", "2"]
    cmd += ["-movflags", "+faststart", "-shortest", str(dest)]
    subprocess.run(cmd, check=True)
    return dest


def measure(args: argparse.Namespace) -> list[Table]:
    preset = presets.CATALOG[PRESET]
    exe = find_ffmpeg()
    stamp = Stamp(None, presets.digest(preset))
    with workdir(args.keep) as tmp_name:
        tmp = Path(tmp_name)
        src = conforming_clip(tmp / "source.mp4", args.seconds)
        source = probe(src, detail=True)
        verdict_ = conform.judge(preset, source)
        if not verdict_.conforms:
            raise RuntimeError(f"the generated clip does not conform: {verdict_.why}")
        times: dict[str, list[float]] = {"remux": [], "encode": []}
        sizes: dict[str, int] = {}
        for n in range(args.rounds):
            order = ["remux", "encode"] if n % 2 == 0 else ["encode", "remux"]
            for name in order:
                dst = tmp / f"{name}.mp4"
                dst.unlink(missing_ok=True)
                start = time.perf_counter()
                transcode(exe, preset, source, src, dst, stamp=stamp, remux=name == "remux")
                times[name].append(time.perf_counter() - start)
                sizes[name] = dst.stat().st_size
        source_size = src.stat().st_size

    remux_s, encode_s = median(times["remux"]), median(times["encode"])
    ratios = sorted(e / r for e, r in zip(times["encode"], times["remux"], strict=True))
    speedup = median(ratios)
    table = Table(
        f"remux vs encode: {args.seconds:g} s 1280x720 H.264 + AAC ({source_size / 1e6:.1f} MB,"
        f" {(source.video_bit_rate or 0) / 1e6:.2f} Mbit/s video), {PRESET},"
        f" median of {args.rounds} round(s)",
        ["way", "seconds", "output MB", "speed-up", "target"],
    )
    table.add("encode (libx264 veryfast crf 23)", f"{encode_s:.2f}", f"{sizes['encode'] / 1e6:.2f}")
    target = f">= {TARGET_SPEEDUP:g}x: {verdict(speedup, TARGET_SPEEDUP, True)}"
    table.add(
        "remux (streams copied)",
        f"{remux_s:.2f}",
        f"{sizes['remux'] / 1e6:.2f}",
        f"{speedup:.0f}x",
        target,
    )
    table.notes.append(f"why remuxed: {verdict_.why}")
    table.notes.append(
        "speed-up: median of the per-round ratios encode / remux; both include ffmpeg's start "
        "and the output check (a probe), as a worker runs them"
    )
    return [table]


def main() -> None:
    print_tables(measure(parser().parse_args()))


if __name__ == "__main__":
    main()
