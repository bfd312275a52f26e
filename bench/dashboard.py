"""Benchmark 7: the dashboard's server time with a big journal: History, Overview, the
status API and one live-stream update, over 10,000 files (done, some partly done,
some failed), each request through the real app (Starlette's TestClient: no network).

    .venv/bin/python bench/dashboard.py                   # 10,000 files, 30 requests each
    .venv/bin/python bench/dashboard.py --files 2000      # quicker

The journal is filled through its real transitions (as the pipeline fills it). Target:
History renders in < 100 ms at p95 with 10,000 files (issue 16); the other rows are
there to show where the cost goes.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from benchlib import Table, median, percentile, print_tables, verdict, workdir

from autotranscode.journal import FileState, Journal
from autotranscode.settings import Settings
from autotranscode.stages import OutputStatus
from autotranscode.story import OutputRecord

TARGET_HISTORY_P95_MS = 100.0
TO_CLEANED = (
    FileState.UPLOADING,
    FileState.UPLOADED,
    FileState.SUBMITTED,
    FileState.TRANSCODING,
    FileState.COMPLETED,
    FileState.DOWNLOADING,
    FileState.DONE,
    FileState.CLEANED,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--files", type=int, default=10_000, help="files in the journal")
    p.add_argument("--requests", type=int, default=30, help="requests per row")
    p.add_argument("--keep", type=Path, help="work in this folder and leave it (for inspection)")
    return p


def fill(journal: Journal, n: int, out: Path) -> None:
    for i in range(n):
        fid = f"f{i:06d}"
        journal.record(fid, Path(f"/drop/clip {i:06d}.mov"), out, ("web-720p",), 10**7, i)
        if i % 50 == 7:
            journal.fail(fid, "not a media file")
            continue
        for state in TO_CLEANED:
            journal.advance(fid, state)
        ok = i % 100 != 3
        journal.story.record_output(
            fid,
            OutputRecord(
                "web-720p",
                OutputStatus.DONE if ok else OutputStatus.FAILED,
                str(out / f"clip {i:06d}.mp4") if ok else None,
                reason=None if ok else "no space left",
                size=4 * 10**6 if ok else None,
            ),
        )


def measure(args: argparse.Namespace) -> list[Table]:
    warnings.simplefilter("ignore", DeprecationWarning)  # TestClient's notice about httpx
    from starlette.testclient import TestClient

    from autotranscode.web.app import create_app

    with workdir(args.keep) as tmp_name:
        tmp = Path(tmp_name)
        journal = Journal(tmp / "state" / "journal.db")
        started = time.perf_counter()
        fill(journal, args.files, tmp / "out")
        filled = time.perf_counter() - started
        journal.close()
        app = create_app(tmp / "state", Settings(state_dir=tmp / "state"))
        dash = app.state.dashboard
        rows = {
            "History, page 1": "/history",
            "History, page 100": "/history?page=100",
            "History, search 'clip 0099'": "/history?q=clip+0099",
            "History, stage partly done": "/history?stage=partly+done",
            "Overview": "/",
            "/api/status": "/api/status",
            "/metrics": "/metrics",
        }
        times: dict[str, list[float]] = {name: [] for name in [*rows, "live update (SSE data)"]}
        with TestClient(app, base_url="http://127.0.0.1:8765") as client:
            for _ in range(args.requests):
                for name, path in rows.items():
                    start = time.perf_counter()
                    answer = client.get(path)
                    times[name].append(time.perf_counter() - start)
                    assert answer.status_code == 200, (path, answer.status_code)
                start = time.perf_counter()
                dash.live()
                times["live update (SSE data)"].append(time.perf_counter() - start)

    table = Table(
        f"web: server time with {args.files} files, {args.requests} requests each",
        ["request", "median ms", "p95 ms", "target"],
    )
    for name, values in times.items():
        p95 = percentile(values, 95) * 1000
        target = ""
        if name.startswith("History"):
            target = f"< {TARGET_HISTORY_P95_MS:g} ms: {verdict(p95, TARGET_HISTORY_P95_MS, False)}"
        table.add(name, f"{median(values) * 1000:.1f}", f"{p95:.1f}", target)
    table.notes.append(f"journal filled through its transitions in {filled:.1f} s")
    table.notes.append(
        "History is one page of SQL (journal.page); /api/status is status.report, whose "
        "totals read every done file; Overview, /metrics and live updates reuse those "
        "totals until a count by state changes (the p95 of Overview is its first request)"
    )
    return [table]


def main() -> None:
    print_tables(measure(parser().parse_args()))


if __name__ == "__main__":
    main()
