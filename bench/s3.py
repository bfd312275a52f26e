"""Benchmark 5: the aws backend's transfers vs ``aws s3 cp``, and the client's peak memory.

    .venv/bin/python bench/s3.py                         # 64 MB and 256 MB files
    .venv/bin/python bench/s3.py --size-mb 256 1024      # the full run (1 GB)

Needs the AWS CLI as the baseline: ``aws`` on PATH (``.venv/bin/pip install awscli``
puts it in the venv). Without it the script says so and measures autotranscode alone.

A moto server runs in its own process on a free loopback port (moto keeps whole
objects in memory, about 3x their size, so it must not share a process with the
client being measured); everything uses fake credentials. Each transfer runs in a
child process: ours is this script in ``--child`` mode calling
``deploy.open_aws(...).store.upload/download`` (s3transfer, as the pipeline
does); the baseline is ``aws s3 cp`` against the same endpoint and bucket. Both are
timed as whole processes, minus the same command's time for a 1-byte object (start-up,
connecting, and for ours, looking up the deployment), so MB/s is the transfer itself.
Peak RSS is the child's ``ru_maxrss``, read by a small launcher process (``os.wait4``).
Targets: MB/s >= 1.0x ``aws s3 cp`` for upload and download; peak RSS <= 150 MB moving
a 1 GB file, flat in file size.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchlib import (
    Table,
    aws_env,
    fake_aws_environ,
    median,
    moto_server,
    print_tables,
    quiet_note,
    verdict,
    wait_for_quiet,
    workdir,
)
from phaseclock import PhaseClock

RATIO_TARGET = 1.0
RSS_TARGET_MB = 150.0
#: Peaks this close across file sizes count as flat (buffers, allocator noise; not the file).
FLAT_MB = 32.0
MB = 1024 * 1024
#: The untimed transfer that starts each round (see measure): big enough to take a second.
WARM_MB = 256
#: One transfer taking longer than this is reported as hung.
TIMEOUT = 1800.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--size-mb",
        type=int,
        nargs="+",
        default=[64, 256],
        metavar="MB",
        help="file sizes; speed ratios are taken at the largest (full run: 256 1024)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="rounds per size, alternating which tool goes first; keep it even (see measure)",
    )
    p.add_argument("--keep", type=Path, help="work in this folder and leave it (for inspection)")
    p.add_argument("--child", choices=["upload", "download"], help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--key", help=argparse.SUPPRESS)
    return p


# -- the measured client -------------------------------------------------------------------------


def backend(endpoint: str, name: str, state_dir: Path):  # type: ignore[no-untyped-def]
    from autotranscode.deploy import open_aws
    from autotranscode.settings import Settings

    settings = Settings(backend="aws", endpoint_url=endpoint, name=name, state_dir=state_dir)
    return open_aws(settings)


def child(args: argparse.Namespace) -> None:
    """One transfer through our S3Store, in its own process; prints its timings as JSON."""
    start = time.perf_counter()
    store = backend(args.endpoint, args.name, args.state_dir).store
    clock = PhaseClock()
    clock.watch(store._s3.meta.client.meta.events)
    ready = time.perf_counter()
    if args.child == "upload":
        store.upload(args.file, store.input_bucket, args.key)
    else:
        store.download(store.input_bucket, args.key, args.file)
    done = time.perf_counter()
    print(json.dumps({"setup": ready - start, "transfer": done - ready, **clock.phases()}))


# -- the parent ----------------------------------------------------------------------------------


class Run:
    def __init__(
        self,
        wall: float,
        rss_mb: float,
        inner: float | None = None,
        phases: dict[str, float] | None = None,
    ) -> None:
        self.wall, self.rss_mb, self.inner = wall, rss_mb, inner
        self.phases = phases or {}


#: Runs a command and writes its peak RSS (KB) to a file. Needed because Linux carries a
#: process's RSS high-water mark across fork and exec into the child's ru_maxrss: a child
#: of this (large) process would report at least this process's peak. The launcher is a
#: bare interpreter (-I -S), so its own ~10 MB is the floor it passes on instead.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(cmd: list[str], env: dict[str, str]) -> Run:
    """Run to completion; wall time, the command's peak RSS, and our child's own timing."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rss_file = tmp / "maxrss"
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(rss_file), *cmd]
        with (tmp / "out").open("w+b") as out, (tmp / "err").open("w+b") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                launcher, stdout=out, stderr=err, env=env, start_new_session=True
            )
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise RuntimeError(f"{' '.join(cmd[:4])} hung for {TIMEOUT:.0f} s") from None
            wall = time.perf_counter() - start
            out.seek(0)
            err.seek(0)
            text, error = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} exited {proc.returncode}: {error[-2000:]}")
        rss_mb = int(rss_file.read_text()) / 1024
    lines = text.strip().splitlines()
    if not (lines and lines[-1].startswith("{")):
        return Run(wall, rss_mb)
    timings = json.loads(lines[-1])
    phases = {k: float(timings[k]) for k in ("parts", "assemble") if k in timings}
    return Run(wall, rss_mb, float(timings["transfer"]), phases)


def make_file(path: Path, size_mb: int) -> Path:
    """Incompressible data, written in 16 MB blocks (so making it needs no memory)."""
    block = os.urandom(16 * MB)
    with path.open("wb") as fh:
        left = size_mb * MB
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
        fh.flush()
        os.fsync(fh.fileno())  # its writeback must not overlap the first timed transfer
    return path


#: The AWS CLI (v1 is a Python script) run with its main() timed in-process, as ours is:
#: interpreter start-up and imports are not part of a transfer's speed.
_AWS_TIMED = f"""
import json, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from awscli.clidriver import create_clidriver
from phaseclock import PhaseClock
start = time.perf_counter()
driver = create_clidriver()
clock = PhaseClock()
clock.watch(driver.session)
code = driver.main(sys.argv[1:])
print(json.dumps({{"transfer": time.perf_counter() - start, **clock.phases()}}))
sys.exit(code)
"""


def aws_cli() -> list[str] | None:
    """How to run ``aws``: its Python with main() timed, when it is a Python script, else as is."""
    aws = shutil.which("aws")
    if aws is None:
        return None
    script = Path(aws)
    if "/shims/" in aws:  # pyenv: find the real script behind the shim
        found = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            script = Path(found.stdout.strip())
    try:
        first = script.open("rb").readline().decode(errors="replace").strip()
    except OSError:
        return [aws]
    interpreter = first[2:].split() if first.startswith("#!") else []
    if interpreter and "python" in Path(interpreter[-1]).name:
        probe = subprocess.run([*interpreter, "-c", "import awscli.clidriver"], capture_output=True)
        if probe.returncode == 0:
            return [*interpreter, "-c", _AWS_TIMED]
    return [aws]


def measure(args: argparse.Namespace) -> list[Table]:
    """Each round waits for a quiet machine, makes one untimed warm-up transfer, then runs
    both tools, the first one alternating. On this VM the first transfer after a quiet
    period sent its parts ~30 % slower, whichever tool made it (256 MB, 2026-11-30); with
    both tools timed after the warm-up, rounds mostly agree within ~5 %, not ~15 %."""
    if args.rounds % 2:
        print(f"note: {args.rounds} rounds give one tool the first slot more often", flush=True)
    aws = aws_cli()
    with workdir(args.keep) as tmp_name:
        tmp = Path(tmp_name)
        with moto_server(tmp / "logs") as endpoint:
            return _measure(args, tmp, endpoint, aws)


def _measure(
    args: argparse.Namespace, tmp: Path, endpoint: str, aws: list[str] | None
) -> list[Table]:
    name = f"b{uuid.uuid4().hex[:8]}"
    state = tmp / "state"
    logging.getLogger("autotranscode").setLevel(logging.ERROR)  # "setting up deployment"
    with fake_aws_environ(endpoint):
        be = backend(endpoint, name, state)  # creates the deployment: buckets, queues, topic
        bucket = be.store.input_bucket
        s3 = be.store._s3  # only to delete the objects between rounds (moto keeps them in RAM)
    env = aws_env(endpoint)
    # The CLI must not read a real profile or config: fake credentials from the environment only.
    env["AWS_CONFIG_FILE"] = str(tmp / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp / "no-aws-credentials")
    me = [sys.executable, str(Path(__file__).resolve())]

    def ours(kind: str, path: Path, key: str) -> Run:
        return run(
            [*me, "--child", kind, "--endpoint", endpoint, "--name", name,
             "--state-dir", str(state), "--file", str(path), "--key", key],
            env,
        )  # fmt: skip

    def theirs(kind: str, path: Path, key: str) -> Run:
        assert aws is not None
        src, dst = (str(path), f"s3://{bucket}/{key}")
        if kind == "download":
            src, dst = dst, src
        return run(
            [*aws, "s3", "cp", "--only-show-errors", src, dst, "--endpoint-url", endpoint], env
        )

    def delete(key: str) -> None:
        with fake_aws_environ(endpoint):
            s3.Object(bucket, key).delete()

    # Start-up: the same commands moving a 1-byte object, subtracted from the timings below.
    tiny = tmp / "tiny.bin"
    tiny.write_bytes(b"x")
    fixed: dict[tuple[str, str], list[Run]] = {}
    for who, fn in (("ours", ours), ("aws", theirs)):
        if who == "aws" and aws is None:
            continue
        for kind in ("upload", "download"):
            runs = fixed.setdefault((who, kind), [])
            for i in range(3):
                if kind == "upload":
                    runs.append(fn("upload", tiny, f"tiny-{who}-{i}"))
                else:
                    runs.append(fn("download", tmp / "tiny-back.bin", f"tiny-{who}-0"))

    results: dict[tuple[str, str, int], list[Run]] = {}
    busy: list[float] = []
    for size in args.size_mb:
        data = make_file(tmp / f"data-{size}.bin", size)
        key_src = f"source-{size}"
        warm = make_file(tmp / "warm.bin", min(size, WARM_MB))
        with fake_aws_environ(endpoint):
            be.store.upload(data, bucket, key_src)  # what both download
            be.store.upload(warm, bucket, "warm")
        # All uploads, then all downloads: moto's state (what it holds) is the same for both
        # tools within each phase; the order alternates round by round.
        for kind in ("upload", "download"):
            for r in range(args.rounds):
                busy.append(wait_for_quiet())
                with fake_aws_environ(endpoint):
                    if kind == "upload":
                        be.store.upload(warm, bucket, "warm-up")
                        delete("warm-up")
                    else:
                        be.store.download(bucket, "warm", tmp / "warm-back.bin")
                        (tmp / "warm-back.bin").unlink()
                order = [("ours", ours), ("aws", theirs)]
                if r % 2:
                    order.reverse()
                for who, fn in order:
                    if who == "aws" and aws is None:
                        continue
                    runs = results.setdefault((who, kind, size), [])
                    if kind == "upload":
                        key = f"up-{who}-{size}-{r}"
                        runs.append(fn("upload", data, key))
                        delete(key)
                        continue
                    back = tmp / f"back-{who}.bin"
                    runs.append(fn("download", back, key_src))
                    if back.stat().st_size != data.stat().st_size:
                        raise RuntimeError(f"{who} downloaded {back.stat().st_size} bytes")
                    back.unlink()
        delete(key_src)
        delete("warm")
        data.unlink()
        warm.unlink()
    return tables(args, results, fixed, aws, busy)


def tables(
    args: argparse.Namespace,
    results: dict[tuple[str, str, int], list[Run]],
    fixed: dict[tuple[str, str], list[Run]],
    aws: list[str] | None,
    busy: list[float],
) -> list[Table]:
    big = max(args.size_mb)
    timed = all(r.inner is not None for runs in fixed.values() for r in runs)

    def seconds(runs: list[Run]) -> float:
        return median([(r.inner if timed and r.inner is not None else r.wall) for r in runs])

    def mbps(who: str, kind: str, size: int) -> float:
        net = seconds(results[(who, kind, size)]) - seconds(fixed[(who, kind)])
        return size / net if net > 0 else float("nan")

    speed = Table(
        f"5a. aws backend on moto: transfer speed ({args.rounds} rounds per size, "
        "alternating; moto server in its own process)",
        ["case", "size MB", "MB/s", "process s", "ratio", "target", "result"],
    )
    # Sub-second transfers are too short to judge: the verdict is for 256 MB and up.
    judged = {s for s in args.size_mb if s >= 256} or {big}
    for kind in ("upload", "download"):
        for size in args.size_mb:
            base = mbps("aws", kind, size) if aws else float("nan")
            if aws:
                wall = median([r.wall for r in results[("aws", kind, size)]])
                speed.add(f"{kind}: aws s3 cp", size, base, wall, 1.0)
            ours = mbps("ours", kind, size)
            ratio = ours / base if aws else float("nan")
            speed.add(
                f"{kind}: S3Store.{kind}",
                size,
                ours,
                median([r.wall for r in results[("ours", kind, size)]]),
                ratio,
                f">= {RATIO_TARGET:g}" if aws and size in judged else "",
                (verdict(ratio, RATIO_TARGET, higher_is_better=True) if aws else "no baseline")
                if size in judged
                else "",
            )
    for (who, kind, size), runs in sorted(results.items()):
        base_s = seconds(fixed[(who, kind)])
        each = [
            size / (x - base_s)
            for x in ((r.inner if timed and r.inner is not None else r.wall) for r in runs)
        ]
        label = "S3Store" if who == "ours" else "aws s3 cp"
        speed.notes.append(
            f"{kind} {size} MB, {label}: per round {', '.join(f'{v:.0f}' for v in each)} MB/s"
        )
    for size in args.size_mb:
        phased = {
            who: runs
            for (who, kind, s), runs in results.items()
            if kind == "upload" and s == size and all(r.phases for r in runs)
        }
        if not phased:
            continue
        speed.notes.append(
            f"upload {size} MB, median phases: "
            + "; ".join(
                f"{'S3Store' if who == 'ours' else 'aws s3 cp'} sent its parts at "
                f"{size / median([r.phases['parts'] for r in runs]):.0f} MB/s, then "
                f"CompleteMultipartUpload took {median([r.phases['assemble'] for r in runs]):.2f} s"
                for who, runs in sorted(phased.items(), reverse=True)
            )
        )
    how = (
        "the transfer call timed inside each process (S3Store.upload/download; the AWS CLI's "
        "main())"
        if timed
        else "whole-process wall time"
    )
    speed.notes.append(
        f"MB/s = size / (median {how} - the same for a 1-byte object); process s = median wall "
        "time of the whole child process, start-up included"
    )
    starts = ", ".join(f"{who} {kind} {seconds(runs):.3f} s" for (who, kind), runs in fixed.items())
    speed.notes.append(f"1-byte object times subtracted: {starts}")
    speed.notes.append(quiet_note(busy))
    speed.notes.append(
        f"each round starts with an untimed transfer of the same kind (the file's size, at most "
        f"{WARM_MB} MB): the first transfer after a quiet spell runs slow, whoever makes it"
    )
    if not aws:
        speed.notes.append(
            "`aws` not found on PATH: install it with `.venv/bin/pip install awscli`"
        )
    else:
        version = subprocess.run(["aws", "--version"], capture_output=True, text=True)
        speed.notes.append(f"baseline: {(version.stdout or version.stderr).strip()}")
    if big >= 512:
        speed.notes.append(
            "moto's cost per ranged GET grows with the object's size, so large downloads are "
            "server-bound, more so for clients with smaller parts (the CLI: 8 MB; ours: 16 MB)"
        )

    memory = Table(
        "5b. aws backend on moto: peak RSS of the client process (ru_maxrss)",
        ["case", *(f"{s} MB file" for s in args.size_mb), "target", "result"],
    )
    for kind in ("upload", "download"):
        for who in ("ours", "aws"):
            if who == "aws" and not aws:
                continue
            peaks = [max(r.rss_mb for r in results[(who, kind, s)]) for s in args.size_mb]
            label = f"{kind}: {'S3Store' if who == 'ours' else 'aws s3 cp'}"
            if who == "ours":
                worst = max(peaks)
                flat = max(peaks) - min(peaks) <= FLAT_MB
                ok = worst <= RSS_TARGET_MB and flat
                memory.add(
                    label,
                    *(f"{p:.0f} MB" for p in peaks),
                    f"<= {RSS_TARGET_MB:.0f} MB, flat",
                    "pass" if ok else "MISS",
                )
            else:
                memory.add(label, *(f"{p:.0f} MB" for p in peaks))
    memory.notes.append(
        f"flat: the peaks differ by at most {FLAT_MB:.0f} MB across file sizes (bounded by "
        "transfer buffers, not growing with the file)"
    )
    if big < 1024:
        memory.notes.append("the target is for a 1 GB file: run with --size-mb 256 1024")
    return [speed, memory]


def main() -> None:
    args = parser().parse_args()
    if args.child:
        child(args)
        return
    print_tables(measure(args))


if __name__ == "__main__":
    main()
