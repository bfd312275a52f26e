"""Benchmark: one full rescan of a large library tree whose files are all known and unchanged.

    .venv/bin/python bench/rescan.py                  # 20,000 files (the goal's size)
    .venv/bin/python bench/rescan.py --files 5000     # a smaller tree

``run --recursive`` rescans DROP every ``--rescan`` seconds (30 by default) to catch what
file events missed. The tree is generated: ``Show NNN/Season N/Show NNN - sNNeNN.mkv``,
each a sparse 1 MiB file (no data written), in 1,000 folders. A ``Watcher`` (the one
``run`` uses, with a settle time of 0) takes every file once, as at start-up; then one
rescan of the unchanged tree is measured: its wall time (best of ``--rounds``, each round
paired with a baseline run) and the memory it allocates at its peak (tracemalloc, in a
round of its own, since tracing slows Python down). The rescan relies on stat data only;
one that opened or read a file would show in ``/proc/self/io`` (``rchar``), printed too.

Goal (issue 18): 20,000 unchanged files in < 2 s and < 50 MB. The baseline measured in the
same run is the floor of any rescan: ``os.walk`` of the tree plus one ``os.stat`` per file.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from pathlib import Path

from benchlib import Table, median, print_tables, verdict, workdir

from autotranscode import keys
from autotranscode.deploy import open_backend
from autotranscode.journal import Journal
from autotranscode.pipeline import Pipeline
from autotranscode.settings import Settings
from autotranscode.watcher import Watcher

TARGET_SECONDS = 2.0
TARGET_MB = 50.0
PER_SEASON = 10
SEASONS = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--files", type=int, default=20_000, help="files in the tree")
    p.add_argument("--rounds", type=int, default=5, help="timed rescans (the best is kept)")
    p.add_argument("--keep", type=Path, help="work in this folder and leave it (for inspection)")
    return p


def make_tree(root: Path, files: int) -> None:
    """``files`` sparse 1 MiB .mkv files, ten per season, two seasons per show."""
    for i in range(files):
        show, rest = divmod(i, PER_SEASON * SEASONS)
        season, episode = divmod(rest, PER_SEASON)
        folder = root / f"Show {show:03d}" / f"Season {season + 1}"
        if episode == 0:
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"Show {show:03d} - s{season + 1:02d}e{episode + 1:02d}.mkv"
        with path.open("wb") as f:
            f.truncate(1 << 20)
    old = time.time() - 3600  # written an hour ago: settled
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), (old, old))


def walk_and_stat(root: Path) -> int:
    """The floor: every folder listed, every file stat'ed once."""
    n = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(dirpath, name))
            n += 1
    return n


def read_bytes() -> int:
    """Bytes this process has read through read() and the like (``rchar``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def measure(args: argparse.Namespace) -> list[Table]:
    with workdir(args.keep) as tmp:
        root = Path(tmp) / "library"
        root.mkdir()
        started = time.perf_counter()
        make_tree(root, args.files)
        made = time.perf_counter() - started
        watcher = Watcher(
            root,
            print,  # never called here: the check loop, which calls it, is not started
            matches=Settings().matches,
            settle=0.0,
            recursive=True,
            exclude=(Path(tmp) / "out",),
        )
        tracemalloc.start()
        watcher.rescan()  # start-up: every file a candidate...
        time.sleep(0.15)
        taken = len(watcher._ready())  # ...then taken, as the check loop takes them
        held = tracemalloc.get_traced_memory()[0]  # what the watcher keeps of them
        tracemalloc.stop()
        assert taken == args.files, (taken, args.files)

        floors, times = [], []
        for i in range(args.rounds):  # paired rounds, each side first in turn
            if i % 2:
                floors.append(_timed(lambda: walk_and_stat(root)))
            before = read_bytes()
            times.append(_timed(watcher.rescan))
            read = read_bytes() - before
            assert not watcher._candidates, "an unchanged file became a candidate"
            if not i % 2:
                floors.append(_timed(lambda: walk_and_stat(root)))
        tracemalloc.start()
        watcher.rescan()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        restart = restart_table(Path(tmp), root, args.files)
    best, floor = min(times), min(floors)
    ratio = median([t / f for t, f in zip(times, floors, strict=True)])
    mb = peak / 1e6
    t = Table(
        f"Rescan of {args.files:,} unchanged files in a tree (sparse 1 MiB each, 1,000 "
        f"folders), best of {args.rounds}",
        ["what", "value", "target", "result"],
    )
    t.add("rescan wall time (s)", best, f"< {TARGET_SECONDS}", verdict(best, TARGET_SECONDS, False))
    t.add(
        "peak memory allocated during it (MB, tracemalloc)",
        mb,
        f"< {TARGET_MB:g}",
        verdict(mb, TARGET_MB, False),
    )
    t.add("what the watcher keeps of the files it took (MB, tracemalloc)", held / 1e6)
    t.add("process peak RSS, whole run (MB, ru_maxrss)", rss_mb())
    t.add("baseline: os.walk + one os.stat per file (s)", floor)
    t.add("rescan / baseline (median of the paired rounds' ratios)", ratio)
    t.add("bytes read during a rescan (rchar: folder listings only)", read)
    t.notes.append(f"tree made in {made:.1f} s; every file taken once before the rescans")
    return [t, restart]


def rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def restart_table(tmp: Path, root: Path, files: int) -> Table:
    """``run --recursive`` started again on the same tree: its start-up scan hands every
    file to ``Pipeline.add``, which finds it done in a journal that knows them all."""
    s = Settings(state_dir=tmp / "state")
    out = tmp / "out"
    backend = open_backend(s)
    journal = Journal(s.state_dir / "journal.db")
    try:
        pipe = Pipeline(backend, journal, out, s)
        _known(journal, pipe, root, out)
        t = Table(
            f"Start-up of run --recursive on the same {files:,} files, all done before "
            "(the journal knows them all)",
            ["what", "value"],
        )
        for traced in (False, True):
            watcher = Watcher(root, print, matches=s.matches, settle=0.0, recursive=True)
            if traced:
                tracemalloc.start()
            started = time.perf_counter()
            watcher.rescan()
            time.sleep(0.15)
            ready = watcher._ready()
            ids = [pipe.add(p, under=root) for p in ready]
            took = time.perf_counter() - started - 0.15
            if traced:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                t.add("peak memory allocated (MB, tracemalloc)", peak / 1e6)
            else:
                t.add(
                    "scan, settle and Pipeline.add of every file (s, without the 0.15 s wait)", took
                )
            assert len(ids) == files and not pipe.in_flight(), "a known file was taken again"
        return t
    finally:
        journal.close()
        backend.close()


def _known(journal: Journal, pipe: Pipeline, root: Path, out: Path) -> None:
    """Every file of the tree recorded as done, as a first run leaves it (in one
    transaction: going through each file's transitions would take minutes)."""
    now = time.time()
    with journal.db.transaction(False) as conn:
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                st = path.stat()
                out_dir = out.resolve() / keys.subfolder(root, path)
                conn.execute(
                    "INSERT INTO files (id, path, out_dir, presets, size, mtime_ns, state,"
                    " created_at, updated_at, ctime_ns, dev, ino, digests, content_hash)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'CLEANED', ?, ?, ?, ?, ?, ?, 'x')",
                    (
                        f"{st.st_ino}",
                        str(path),
                        str(out_dir),
                        ",".join(pipe._preset_ids),
                        st.st_size,
                        st.st_mtime_ns,
                        now,
                        now,
                        st.st_ctime_ns,
                        st.st_dev,
                        st.st_ino,
                        ",".join(pipe._digests),
                    ),
                )


def _timed(call: object) -> float:
    assert callable(call)
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


if __name__ == "__main__":
    print_tables(measure(parser().parse_args()))
