"""Benchmark 2: detection latency, file closed -> job submitted, in a running ``autotranscode run``.

    .venv/bin/python bench/detection.py                 # 50 drops, settle 0.5 s (the default)
    .venv/bin/python bench/detection.py --drops 200     # more samples

``autotranscode run DROP OUT --workers 0`` (local backend; no worker, so no transcode
competes) watches DROP while this script writes tiny, distinct media files into it,
0.1-0.2 s apart, as a program saving its output would (create, write, close). For each
file the time right after ``close()`` (``time.time()``) is compared with the ``at`` of
its SUBMITTED event in the journal (SQLite, read-only). A file can only be taken once it
has been still for the settle period, so the target is on the latency *beyond* the
settle period: p50 <= 0.3 s.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from benchlib import (
    Proc,
    Table,
    autotranscode,
    cli_env,
    event_times,
    make_clip,
    percentile,
    print_tables,
    verdict,
    wait_until,
    workdir,
)

TARGET = 0.3
TINY = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--drops", type=int, default=50, help="files to drop")
    p.add_argument("--settle", type=float, default=0.5, help="run --settle (default: its default)")
    p.add_argument(
        "--spacing",
        type=float,
        nargs=2,
        default=(0.1, 0.2),
        metavar=("MIN", "MAX"),
        help="seconds between drops, uniformly random in [MIN, MAX]",
    )
    p.add_argument("--poll", action="store_true", help="run --poll (polling, not inotify)")
    p.add_argument("--keep", type=Path, help="work in this folder and leave it (for inspection)")
    return p


def tiny_clips(folder: Path, n: int) -> list[bytes]:
    """``n`` distinct half-second 160x90 MP4s (content identifies a file, so each differs)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        make_clip(
            folder / f"c{i}.mp4", 0.5, "160x90", codec=TINY, audio=("-c:a", "aac"), variant=i + 1
        ).read_bytes()
        for i in range(n)
    ]


def row(t: Table, name: str, values: list[float], target: str = "", result: str = "") -> None:
    t.add(
        name,
        percentile(values, 50),
        percentile(values, 95),
        min(values),
        max(values),
        target,
        result,
    )


def measure(args: argparse.Namespace) -> list[Table]:
    rng = random.Random(5)
    with workdir(args.keep) as tmp_name:
        tmp = Path(tmp_name)
        drop, out, state = tmp / "drop", tmp / "out", tmp / "state"
        drop.mkdir()
        datas = tiny_clips(tmp / "clips", args.drops)
        argv = autotranscode(
            "run", drop, out, "--workers", "0", "--state-dir", state, "--settle", str(args.settle)
        )
        if args.poll:
            argv.append("--poll")
        closed: dict[str, float] = {}
        with Proc("run", argv, cli_env(), tmp / "logs") as run:
            run.wait_for("watching")
            time.sleep(1.0)  # let it go idle
            for i, data in enumerate(datas):
                path = drop / f"drop-{i:03}.mp4"
                with path.open("wb") as fh:
                    fh.write(data)
                closed[str(path)] = time.time()
                time.sleep(rng.uniform(*args.spacing))
            wait_until(
                lambda: len(event_times(state, "SUBMITTED")) >= len(closed),
                f"{len(closed)} SUBMITTED events",
                timeout=60 + 2 * args.settle * len(closed),
            )
            submitted = event_times(state, "SUBMITTED")
            discovered = event_times(state, "DISCOVERED")
    total = [submitted[p] - c for p, c in closed.items()]
    beyond = [x - args.settle for x in total]
    found = [discovered[p] - c for p, c in closed.items()]
    pipeline = [submitted[p] - discovered[p] for p in closed]
    p50 = percentile(beyond, 50)
    mode = "polling" if args.poll else "inotify"
    t = Table(
        f"2. Detection latency, file closed -> SUBMITTED, {len(closed)} drops "
        f"{args.spacing[0]:g}-{args.spacing[1]:g} s apart, settle {args.settle:g} s, "
        f"local backend, {mode}",
        ["interval (s)", "p50", "p95", "min", "max", "target", "result"],
    )
    row(t, "closed -> SUBMITTED", total)
    row(
        t,
        "closed -> SUBMITTED, minus settle",
        beyond,
        f"p50 <= {TARGET:g}",
        verdict(p50, TARGET, higher_is_better=False),
    )
    row(t, "  of which closed -> DISCOVERED", found)
    row(t, "  of which DISCOVERED -> SUBMITTED", pipeline)
    t.notes.append("the baseline is the settle period itself: no watcher can take a file sooner")
    return [t]


def main() -> None:
    print_tables(measure(parser().parse_args()))


if __name__ == "__main__":
    main()
