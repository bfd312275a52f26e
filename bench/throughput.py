"""Benchmark 4: throughput on many short clips, ``transcode --workers W`` vs bare ffmpeg
run by ``xargs -P W`` with the same per-file command lines and the same concurrency.

    .venv/bin/python bench/throughput.py                      # 40 clips, W = 1 and 2, 2 rounds
    .venv/bin/python bench/throughput.py --rounds 3 --workers 2 4

The clips are 3 s 640x360 H.264/AAC MP4s, each distinct (autotranscode identifies
files by content). The bare side runs, for each clip, exactly the command line a
worker runs (``autotranscode.media.transcoder.command``, what ``presets show`` prints),
``W`` at a time through ``xargs -P W``; autotranscode runs ``transcode DIR --workers W``
(local backend, default preset). Rounds alternate which goes first. Throughput is
clips per second of wall time; the ratio is the median over rounds of each round's
paired ratio; target: autotranscode >= 0.95x bare.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from benchlib import (
    Table,
    autotranscode,
    cli_env,
    ffmpeg,
    make_clip,
    measured,
    median,
    print_tables,
    quiet_note,
    verdict,
    wait_for_quiet,
    workdir,
)

from autotranscode.media import presets
from autotranscode.media.probe import probe
from autotranscode.media.transcoder import command

TARGET = 0.95
SOURCE = ("-c:v", "libx264", "-preset", "fast", "-pix_fmt", "yuv420p")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clips", type=int, default=40)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    p.add_argument("--size", default="640x360", help="clip size")
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        metavar="W",
        help="concurrency levels to compare (default: 1 2)",
    )
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per level")
    p.add_argument(
        "--timeout", type=float, default=900.0, help="seconds before a run counts as hung"
    )
    p.add_argument("--keep", type=Path, help="work in this folder and leave it (for inspection)")
    return p


def measure(args: argparse.Namespace) -> list[Table]:
    preset = presets.CATALOG[presets.DEFAULT_PRESET]
    busy: list[float] = []
    results: dict[int, tuple[list[tuple[float, float]], list[tuple[float, float]]]] = {}
    with workdir(args.keep) as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "clips"
        src.mkdir()
        clips = [
            make_clip(
                src / f"clip-{i:03}.mp4",
                args.seconds,
                args.size,
                codec=SOURCE,
                audio=("-c:a", "aac"),
                variant=i + 1,
            )
            for i in range(args.clips)
        ]
        for w in args.workers:
            bare, ours = [], []
            for r in range(args.rounds):
                busy.append(wait_for_quiet())
                tag = f"w{w}-r{r}"
                out = tmp / f"bare-{tag}"
                out.mkdir()
                lines = tmp / f"commands-{tag}.txt"
                lines.write_text(
                    "".join(
                        shlex.join(command(ffmpeg(), preset, probe(c), c, out / c.name))
                        + " >/dev/null\n"
                        for c in clips
                    )
                )
                bare_cmd = ["xargs", "-d", "\n", "-P", str(w), "-n", "1", "sh", "-c"]
                ours_cmd = autotranscode(
                    "transcode", src, "--out", tmp / f"out-{tag}", "--workers", str(w),
                    "--state-dir", tmp / f"state-{tag}",
                )  # fmt: skip
                if r % 2:
                    ours.append(measured(ours_cmd, cli_env(), timeout=args.timeout))
                    bare.append(measured(bare_cmd, stdin=lines, timeout=args.timeout))
                else:
                    bare.append(measured(bare_cmd, stdin=lines, timeout=args.timeout))
                    ours.append(measured(ours_cmd, cli_env(), timeout=args.timeout))
                done = len(list((tmp / f"out-{tag}").glob("*.mp4")))
                if done != len(clips):
                    raise RuntimeError(f"transcode produced {done} of {len(clips)} outputs")
            results[w] = (bare, ours)
    t = Table(
        f"4. Throughput, {args.clips} clips of {args.seconds:g} s {args.size} H.264 -> "
        f"{preset.id}, local backend ({args.rounds} rounds per level, alternating)",
        ["case", "W", "median s", "clips/s", "CPU s", "ratio", "target", "result"],
    )
    for w, (bare, ours) in results.items():
        b = median([x for x, _ in bare])
        o = median([x for x, _ in ours])
        # Each round's two runs are back to back, so their ratio cancels most of this
        # machine's drift; the median of those is steadier than a ratio of medians.
        per_round = [bb / oo for (bb, _), (oo, _) in zip(bare, ours, strict=True)]
        ratio = median(per_round)
        t.add("bare ffmpeg, xargs -P W", w, b, args.clips / b, median([c for _, c in bare]), 1.0)
        t.add(
            "autotranscode transcode --workers W",
            w,
            o,
            args.clips / o,
            median([c for _, c in ours]),
            ratio,
            f">= {TARGET:g}",
            verdict(ratio, TARGET, higher_is_better=True),
        )
        rounds = ", ".join(f"{r:.3f}" for r in per_round)
        t.notes.append(f"W={w}: per-round throughput ratios {rounds}")
    t.notes.append("CPU s: user + system time of the process and every child it waited for")
    t.notes.append(quiet_note(busy))
    return [t]


def main() -> None:
    print_tables(measure(parser().parse_args()))


if __name__ == "__main__":
    main()
