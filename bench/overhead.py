"""Benchmark 1: end-to-end ``autotranscode transcode`` (local backend, default preset) vs bare
ffmpeg running the identical command line, on the same clip in the same run.

    .venv/bin/python bench/overhead.py                          # quick: 10 s clip, 3 rounds
    .venv/bin/python bench/overhead.py --seconds 60 --rounds 5  # the full run
    .venv/bin/python bench/overhead.py --web                    # + run with/without --web

The clip is 1080p ProRes 4:2:2 10-bit with PCM audio (ffmpeg's lavfi sources); the
command line is ``autotranscode.media.transcoder.command(...)``, exactly what a worker runs.
Rounds alternate which of the two goes first; the table shows medians, and the ratio
is the median of each round's paired ratio (target: <= 1.03x), plus the fixed cost of
a run measured on a 1 s clip.

With ``--web`` each round also times ``run`` on the same clip twice, from start to the
output in OUT: plain, and with ``--web`` and a live-stream (SSE) client connected all the
while, as an open Overview page is. The dashboard's cost is their paired ratio (target:
<= 1.03x, the same noise band as the transcode's).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import httpx
from benchlib import (
    Proc,
    Table,
    autotranscode,
    cli_env,
    ffmpeg,
    free_port,
    make_clip,
    measured,
    median,
    print_tables,
    quiet_note,
    verdict,
    wait_for_quiet,
    wait_until,
    workdir,
)

from autotranscode.media import presets
from autotranscode.media.probe import probe
from autotranscode.media.transcoder import command

TARGET = 1.03


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="clip length (full run: 60)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (full run: 5)")
    p.add_argument("--keep", type=Path, help="work in this folder and leave it (for inspection)")
    p.add_argument("--web", action="store_true", help="also time run with --web and an SSE client")
    return p


Timing = tuple[float, float]  # wall seconds, CPU seconds


def pair(clip: Path, tmp: Path, tag: str, ours_first: bool) -> tuple[Timing, Timing]:
    """One round: bare ffmpeg, then autotranscode transcode (or the other way round)."""
    preset = presets.CATALOG[presets.DEFAULT_PRESET]
    bare_cmd = command(ffmpeg(), preset, probe(clip), clip, tmp / f"bare-{tag}.mp4")
    ours_cmd = autotranscode(
        "transcode", clip, "--out", tmp / f"out-{tag}", "--state-dir", tmp / f"state-{tag}"
    )
    env = cli_env()
    if ours_first:
        o = measured(ours_cmd, env)
        b = measured(bare_cmd)
    else:
        b = measured(bare_cmd)
        o = measured(ours_cmd, env)
    return b, o


def run_wall(clip: Path, tmp: Path, tag: str, web: bool) -> tuple[float, int]:
    """``run`` with the clip already in DROP (old: taken at start-up): wall seconds from
    start to its output in OUT, and how many live updates the SSE client received."""
    drop, out = tmp / f"drop-{tag}", tmp / f"runout-{tag}"
    drop.mkdir()
    os.link(clip, drop / clip.name)
    hour_ago = time.time() - 3600
    os.utime(drop / clip.name, (hour_ago, hour_ago))
    port = free_port()
    extra = ["--web", f"127.0.0.1:{port}"] if web else []
    argv = autotranscode(
        "run", drop, out, "--state-dir", tmp / f"runstate-{tag}", "--settle", "0.1", *extra
    )
    updates = [0]
    done = threading.Event()

    def watch() -> None:  # an open Overview page: connected to the live stream throughout
        while not done.is_set():
            try:
                with httpx.stream("GET", f"http://127.0.0.1:{port}/api/events", timeout=60) as r:
                    for line in r.iter_lines():
                        updates[0] += line.startswith("event: status")
                        if done.is_set():
                            return
            except httpx.HTTPError:
                time.sleep(0.02)  # not listening yet

    start = time.perf_counter()
    with Proc(f"run-{tag}", argv, cli_env(), tmp / "logs"):
        client = threading.Thread(target=watch)
        if web:
            client.start()
        wait_until(lambda: (out / f"{clip.stem}.mp4").exists(), f"run {tag}'s output")
        wall = time.perf_counter() - start
        done.set()
    if web:
        client.join()
    return wall, updates[0]


def measure(args: argparse.Namespace) -> list[Table]:
    with workdir(args.keep) as tmp_name:
        tmp = Path(tmp_name)
        clip = make_clip(tmp / "clip.mov", args.seconds)
        short = make_clip(tmp / "short.mov", 1.0, variant=1)
        pair(short, tmp, "warmup", False)  # page cache, first-run costs: not measured
        bare: list[Timing] = []
        busy: list[float] = []
        ours: list[Timing] = []
        plain: list[float] = []
        served: list[tuple[float, int]] = []
        for i in range(args.rounds):
            busy.append(wait_for_quiet())
            b, o = pair(clip, tmp, str(i), ours_first=i % 2 == 1)
            bare.append(b)
            ours.append(o)
            if args.web:
                order = [False, True] if i % 2 == 0 else [True, False]
                got = {web: run_wall(clip, tmp, f"{i}-{web}", web) for web in order}
                plain.append(got[False][0])
                served.append(got[True])
        fixed_b: list[Timing] = []
        fixed_o: list[Timing] = []
        for i in range(3):
            fb_i, fo_i = pair(short, tmp, f"short{i}", ours_first=i % 2 == 1)
            fixed_b.append(fb_i)
            fixed_o.append(fo_i)
    bw, ow = [w for w, _ in bare], [w for w, _ in ours]
    b_med, o_med = median(bw), median(ow)
    # Paired rounds: the median of per-round ratios is steadier than a ratio of medians.
    per_round = [oo / bb for bb, oo in zip(bw, ow, strict=True)]
    ratio = median(per_round)
    t = Table(
        f"1. End-to-end transcode, {args.seconds:.0f} s 1080p ProRes -> "
        f"{presets.DEFAULT_PRESET}, local backend ({args.rounds} rounds, alternating)",
        ["case", "median s", "min s", "max s", "CPU s", "ratio", "target", "result"],
    )
    t.add(
        "bare ffmpeg (same command line)",
        b_med,
        min(bw),
        max(bw),
        median([c for _, c in bare]),
        1.0,
        "",
        "",
    )
    t.add(
        "autotranscode transcode",
        o_med,
        min(ow),
        max(ow),
        median([c for _, c in ours]),
        ratio,
        f"<= {TARGET:.2f}",
        verdict(ratio, TARGET, higher_is_better=False),
    )
    rounds = ", ".join(f"{r:.3f}" for r in per_round)
    t.notes.append(f"per-round ratios: {rounds}; ratio of mins {min(ow) / min(bw):.3f}")
    fb, fo = median([w for w, _ in fixed_b]), median([w for w, _ in fixed_o])
    fbc, foc = median([c for _, c in fixed_b]), median([c for _, c in fixed_o])
    t.notes.append(
        f"fixed cost per run (1 s clip, median of 3): bare {fb:.2f} s ({fbc:.2f} s CPU), "
        f"transcode {fo:.2f} s ({foc:.2f} s CPU): {fo - fb:+.2f} s wall, {foc - fbc:+.2f} s CPU"
    )
    t.notes.append("CPU s: user + system time of the process and the children it waited for")
    t.notes.append(quiet_note(busy))
    if not args.web:
        return [t]
    web_walls = [w for w, _ in served]
    web_ratio = median([w / p for p, w in zip(plain, web_walls, strict=True)])
    w = Table(
        f"1w. The dashboard's cost: run on the same clip, start to output in OUT "
        f"({args.rounds} rounds, alternating)",
        ["case", "median s", "min s", "max s", "ratio", "target", "result"],
    )
    w.add("autotranscode run", median(plain), min(plain), max(plain), 1.0, "", "")
    w.add(
        "autotranscode run --web, SSE client connected",
        median(web_walls),
        min(web_walls),
        max(web_walls),
        web_ratio,
        f"<= {TARGET:.2f}",
        verdict(web_ratio, TARGET, higher_is_better=False),
    )
    w.notes.append(
        "per-round ratios: "
        + ", ".join(f"{x / p:.3f}" for p, x in zip(plain, web_walls, strict=True))
        + f"; live updates received per run: {[n for _, n in served]}"
    )
    w.notes.append(f"run vs bare ffmpeg (median): {median(plain) / b_med:.3f}x")
    return [t, w]


def main() -> None:
    print_tables(measure(parser().parse_args()))


if __name__ == "__main__":
    main()
