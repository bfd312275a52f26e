"""Benchmark 6: what identity costs: BLAKE3 of a whole file, and the local store's snapshot
(copy, then hash the copy), against ``cp`` of the same file in the same run.

    .venv/bin/python bench/hashing.py                    # 1 GB file, 3 rounds
    .venv/bin/python bench/hashing.py --size-mb 256      # quicker

Every file a client takes is hashed in full (``keys.content_hash``: one thread, 4 MiB
reads) and, on the local backend, copied into the store (``FolderStore.take``: a reflink
where the filesystem can, else ``copy_file_range``, then the copy hashed through mmap).
Rounds alternate the order of the three; the file is written once beforehand, so all
of them read from the page cache where memory allows (as a just-dropped file does).
Targets: hashing >= 1 GB/s; the snapshot costs about what ``cp`` does (ratio near
1.0x; below it on a reflink filesystem). The 10 GB row extrapolates from throughput.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import Table, median, print_tables, verdict, workdir

from autotranscode import keys
from autotranscode.backends.local import FolderStore

#: Hashing slower than this would make a 10 GB drop wait more than 10 s before upload.
TARGET_GB_PER_S = 1.0
MB = 1_000_000


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size-mb", type=int, default=1000, help="file size in MB (default: 1 GB)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    p.add_argument("--keep", type=Path, help="work in this folder and leave it (for inspection)")
    return p


def _write(path: Path, size: int) -> None:
    """Incompressible data (a reflink or a sparse copy must not make the copy look free)."""
    block = os.urandom(8 * 1024 * 1024)
    with path.open("wb") as fh:
        left = size
        while left:
            fh.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(args: argparse.Namespace) -> list[Table]:
    size = args.size_mb * MB
    with workdir(args.keep) as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "source.bin"
        _write(src, size)
        store = FolderStore(tmp / "store")
        copy = tmp / "copy.bin"
        key = "inputs/bench/source.bin"

        def cp() -> None:
            subprocess.run(["cp", str(src), str(copy)], check=True)

        def snapshot() -> None:
            store.take(src, store.input_bucket, key)

        def cleanup() -> None:
            copy.unlink(missing_ok=True)
            shutil.rmtree(tmp / "store", ignore_errors=True)
            os.sync()  # the next copy does not wait for this one's writeback

        actions: dict[str, Callable[[], object]] = {
            "cp": cp,
            "hash (BLAKE3)": lambda: keys.content_hash(src),
            "snapshot (copy + hash)": snapshot,
        }
        times: dict[str, list[float]] = {name: [] for name in actions}
        keys.content_hash(src)  # warm-up: page cache and first-call costs, not measured
        order = list(actions)
        for n in range(args.rounds):
            for name in order[n % len(order) :] + order[: n % len(order)]:
                cleanup()
                times[name].append(_timed(actions[name]))
        cleanup()

    cp_s = median(times["cp"])
    gb = size / 1e9
    table = Table(
        f"hashing: {args.size_mb} MB file, median of {args.rounds} rounds",
        ["step", "seconds", "GB/s", "vs cp", "10 GB (est.)", "target"],
    )
    for name, values in times.items():
        seconds = median(values)
        target = ""
        if name.startswith("hash"):
            target = f">= {TARGET_GB_PER_S:g} GB/s: {verdict(gb / seconds, TARGET_GB_PER_S, True)}"
        table.add(
            name,
            f"{seconds:.2f}",
            f"{gb / seconds:.2f}",
            f"{seconds / cp_s:.2f}x",
            f"{seconds * 10 / gb:.1f} s",
            target,
        )
    table.notes.append(
        "snapshot: FolderStore.take, what the local backend does to every file it takes; "
        "hash: keys.content_hash, what the aws backend does before its upload"
    )
    return [table]


def main() -> None:
    print_tables(measure(parser().parse_args()))


if __name__ == "__main__":
    main()
