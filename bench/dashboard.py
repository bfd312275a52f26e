"""Benchmark 7: the dashboard's server time with a big journal: History, Overview, the
status API and one live-stream update, over 10,000 files (done, some partly done,
some failed), each request through the real app (Starlette's TestClient: no network);
then, on a real server, how soon a progress note reaches an open live stream, and what
the server costs while idle with one open.

    .venv/bin/python bench/dashboard.py                   # 10,000 files, 30 requests each
    .venv/bin/python bench/dashboard.py --files 2000      # quicker

The journal is filled through its real transitions (as the pipeline fills it). Target:
History renders in < 100 ms at p95 with 10,000 files; an update reaches the stream
in < 0.5 s (p95); idle with a stream open, < 1 % of a core (issue 16). The other rows
show where the cost goes.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from benchlib import Table, median, percentile, print_tables, verdict, workdir

from autotranscode.journal import FileState, Journal
from autotranscode.settings import Settings
from autotranscode.stages import OutputStatus, Stage
from autotranscode.story import OutputRecord

TARGET_HISTORY_P95_MS = 100.0
#: A progress update reaches an open page within this (issue 16).
TARGET_SSE_S = 0.5
#: The server's CPU while idle with a page open, as a share of one core.
TARGET_IDLE_CPU = 0.01
IDLE_SECONDS = 5.0
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
    p.add_argument("--updates", type=int, default=20, help="progress updates sent over SSE")
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


def live(state_dir: Path, updates: int) -> tuple[list[float], float]:
    """Seconds from a progress note (another connection, as the pipeline's) to the event
    that carries it, on a real server; then the process's CPU while a stream stays open."""
    import httpx

    from autotranscode.web.app import create_app
    from autotranscode.web.server import Bind, WebServer

    app = create_app(state_dir, Settings(state_dir=state_dir))
    writer = Journal(state_dir / "journal.db")
    writer.record("live", Path("/drop/live.mov"), state_dir, ("web-720p",), 10**7, 0)
    writer.advance("live", FileState.UPLOADING)
    latencies = []
    try:
        with (
            WebServer(app, Bind("127.0.0.1", 0)) as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
            http.stream("GET", "/api/events") as stream,
        ):
            lines = stream.iter_lines()
            for i in range(updates + 1):
                fraction = (i + 1) / (updates + 2)
                start = time.perf_counter()
                writer.story.note_progress("live", Stage.UPLOADING, fraction)
                want = round(fraction * 100, 1)
                for line in lines:
                    if line.startswith("data: "):
                        flying = json.loads(line[6:])["in_flight"]
                        if flying and (flying[0]["progress"] or {}).get("percent") == want:
                            break
                if i:  # the first one warms up (totals of the whole journal)
                    latencies.append(time.perf_counter() - start)
            cpu, wall = time.process_time(), time.perf_counter()
            time.sleep(IDLE_SECONDS)
            idle = (time.process_time() - cpu) / (time.perf_counter() - wall)
    finally:
        writer.close()
    return latencies, idle


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

        latencies, idle_cpu = live(tmp / "state", args.updates)

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
    p95 = percentile(latencies, 95)
    table.add(
        f"SSE: progress noted -> event received ({len(latencies)} updates)",
        f"{median(latencies) * 1000:.1f}",
        f"{p95 * 1000:.1f}",
        f"< {TARGET_SSE_S * 1000:g} ms: {verdict(p95, TARGET_SSE_S, False)}",
    )
    table.add(
        f"idle, one stream open ({IDLE_SECONDS:g} s): CPU % of a core",
        f"{idle_cpu * 100:.2f}",
        "",
        f"< {TARGET_IDLE_CPU * 100:g} %: {verdict(idle_cpu, TARGET_IDLE_CPU, False)}",
    )
    table.notes.append(f"journal filled through its transitions in {filled:.1f} s")
    table.notes.append(
        "History is one page of SQL (journal.page, newest first by an index); /api/status is "
        "status.report; Overview, /metrics and live updates reuse its totals until a count "
        "by state or an output changes (the p95 of Overview is its first request)"
    )
    return [table]


def main() -> None:
    print_tables(measure(parser().parse_args()))


if __name__ == "__main__":
    main()
