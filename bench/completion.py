"""Benchmark 3: completion latency, worker finished -> download started.

    .venv/bin/python bench/completion.py                   # local and aws, 10 jobs each
    .venv/bin/python bench/completion.py --jobs 40         # more samples
    .venv/bin/python bench/completion.py --backend local   # one backend only

The client (``autotranscode run DROP OUT --workers 0``) and the transcoding service
(``autotranscode worker -v``) run as separate processes, so the worker's side is
read from its own log: the line ``<asctime> INFO worker-1: job <id> completed``
(asctime is local time with milliseconds), which the worker writes right after it
has published COMPLETED and deleted the job message. The client's side is the
journal's COMPLETED and DOWNLOADING events for that job (``files.job_id`` ->
``events``, read-only). Targets for worker finished -> DOWNLOADING: p50 <= 0.2 s on
the local backend, <= 0.5 s on aws (a moto server started here, in its own process,
on a free loopback port, with fake credentials).

The worker logs *after* its publish and delete, so the latency measured here is a
little lower than the true publish -> download latency (by the one delete request:
about a millisecond on local, a few on moto); 1 ms log resolution.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from pathlib import Path

from benchlib import (
    Proc,
    Table,
    autotranscode,
    aws_env,
    cli_env,
    job_event_times,
    log_time,
    make_clip,
    moto_server,
    percentile,
    print_tables,
    verdict,
    wait_until,
    workdir,
)

TARGETS = {"local": 0.2, "aws": 0.5}
_COMPLETED = re.compile(r"job ([0-9A-Za-z-]+) completed")
_PROBE = re.compile(r"bench-probe job ([0-9A-Za-z-]+) published ([0-9.]+) ([0-9.]+)")
PROBED_WORKER = Path(__file__).with_name("probed_worker.py")
SMALL = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=10, help="files to transcode per backend")
    p.add_argument(
        "--backend", choices=["local", "aws", "both"], default="both", help="which backend(s)"
    )
    p.add_argument("--spacing", type=float, default=0.7, help="seconds between drops")
    p.add_argument("--keep", type=Path, help="work in this folder and leave it (for inspection)")
    return p


def worker_times(log: str) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """job id -> time of the worker's 'job <id> completed' line, and job id -> (start, end)
    of its COMPLETED publish (from probed_worker.py)."""
    done, published = {}, {}
    for line in log.splitlines():
        m = _COMPLETED.search(line)
        at = log_time(line)
        if m and at is not None:
            done[m.group(1)] = at
        p = _PROBE.search(line)
        if p:
            published[p.group(1)] = (float(p.group(2)), float(p.group(3)))
    return done, published


Times = dict[str, float]


def one_backend(backend: str, tmp: Path, clips: list[Path], spacing: float) -> Table:
    drop, out = tmp / "drop", tmp / "out"
    client_state, worker_state = tmp / "client-state", tmp / "worker-state"
    drop.mkdir(parents=True)
    logs = tmp / "logs"

    def measure_with(common: list[str], env: dict[str, str]) -> tuple[str, Times, Times]:
        run_argv = autotranscode(
            "run", drop, out, "--workers", "0", "--state-dir", client_state, *common
        )
        with Proc("run", run_argv, env, logs) as run:
            run.wait_for("watching")  # on aws, the client has created the deployment by now
            # local: the queues live in the state dir, so the worker must share the client's
            worker_dir = client_state if backend == "local" else worker_state
            worker_argv = [sys.executable, str(PROBED_WORKER), "worker", "-v"]
            worker_argv += ["--state-dir", str(worker_dir), *common]
            with Proc("worker", worker_argv, env, logs) as worker:
                worker.wait_for("waiting for jobs")
                for clip in clips:
                    (drop / clip.name).write_bytes(clip.read_bytes())
                    time.sleep(spacing)
                wait_until(
                    lambda: len(job_event_times(client_state, "CLEANED")) >= len(clips),
                    f"{len(clips)} files CLEANED on {backend}",
                )
                log = worker.text()
        return (
            log,
            job_event_times(client_state, "COMPLETED"),
            job_event_times(client_state, "DOWNLOADING"),
        )

    if backend == "aws":
        with moto_server(logs) as endpoint:
            name = f"b{uuid.uuid4().hex[:8]}"
            common = ["--backend", "aws", "--endpoint-url", endpoint, "--name", name]
            log, completed, downloading = measure_with(common, aws_env(endpoint))
    else:
        log, completed, downloading = measure_with(["--backend", "local"], cli_env())
    done, published = worker_times(log)

    target = TARGETS[backend]
    t = Table(
        f"3. Completion latency, worker finished -> download started, {backend} backend "
        f"({len(clips)} jobs, worker in its own process)",
        ["interval (s)", "p50", "p95", "min", "max", "target", "result"],
    )

    def add(name: str, start: Times, end: Times, primary: bool = False) -> None:
        jobs = sorted(set(start) & set(end))
        if not jobs:
            t.add(name, "n/a", "", "", "", "", "")
            return
        values = [end[j] - start[j] for j in jobs]
        p50 = percentile(values, 50)
        tgt = f"p50 <= {target:g}" if primary else ""
        res = verdict(p50, target, higher_is_better=False) if primary else ""
        t.add(name, p50, percentile(values, 95), min(values), max(values), tgt, res)
        if len(jobs) < len(clips):
            t.notes.append(f"{name}: only {len(jobs)} of {len(clips)} jobs matched")

    publish_start = {j: s for j, (s, _) in published.items()}
    add("COMPLETED publish (worker) -> DOWNLOADING", publish_start, downloading, primary=True)
    add("  of which publish -> COMPLETED in journal", publish_start, completed)
    add("'job completed' log line -> DOWNLOADING", done, downloading)
    publish = [e - s for s, e in published.values()]
    if publish:
        ms = percentile(publish, 50) * 1000
        t.notes.append(
            "worker finished = the start of its COMPLETED publish (bench/probed_worker.py's "
            f"WorkerHooks; the publish call itself took p50 {ms:.1f} ms)"
        )
    else:
        t.notes.append("probed_worker.py logged no publish times")
    t.notes.append(
        "the worker's 'job <id> completed' line is written after the publish *and* the job "
        "message's delete, so it can even come after the client has reacted (negative values)"
    )
    return t


def measure(args: argparse.Namespace) -> list[Table]:
    backends = ["local", "aws"] if args.backend == "both" else [args.backend]
    tables = []
    with workdir(args.keep) as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "clips").mkdir()
        clips = [
            make_clip(
                tmp / "clips" / f"clip-{i:03}.mp4",
                1.0,
                "320x180",
                codec=SMALL,
                audio=("-c:a", "aac"),
                variant=i + 1,
            )
            for i in range(args.jobs)
        ]
        for backend in backends:
            tables.append(one_backend(backend, tmp / backend, clips, args.spacing))
    return tables


def main() -> None:
    print_tables(measure(parser().parse_args()))


if __name__ == "__main__":
    main()
