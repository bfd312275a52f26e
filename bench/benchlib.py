"""Shared helpers for the benchmarks in bench/: tables, machine facts, clips, processes, moto.

Not a benchmark itself. Each ``bench/<name>.py`` has ``measure(args) -> list[Table]``
and ``parser()``, so ``run_all.py`` can run them in one process and collect every
table; run alone, each prints its own tables.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Fake credentials: the benchmarks only ever talk to a local moto server.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# -- results -------------------------------------------------------------------------------------


@dataclass
class Table:
    """One result table: printed as aligned text, or as Markdown for BENCHMARKS.md."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        row = [_cell(c) for c in cells]
        self.rows.append(row + [""] * (len(self.headers) - len(row)))

    def text(self) -> str:
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
        lines = [self.title, "-" * len(self.title)]
        fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
        lines.append(fmt.format(*self.headers))
        lines += [fmt.format(*row) for row in self.rows]
        lines += [f"  * {n}" for n in self.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append(
            "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(self.headers))) + "|"
        )
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "pass" if ok else "MISS"


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100), like numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- the machine ---------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    load = "unknown"
    with contextlib.suppress(OSError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "ffmpeg": ffmpeg_version(),
        "autotranscode": source(),
        "load average at start": load,
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


def source() -> str:
    """Which autotranscode code is measured: its folder, and the git commit of this repo."""
    import autotranscode

    where = Path(autotranscode.__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(where)
    return f"{where} (repo at {head}{', src/ has uncommitted changes' if dirty else ''})"


def ffmpeg_version() -> str:
    try:
        out = subprocess.run(
            [ffmpeg(), "-hide_banner", "-version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"unavailable ({exc})"
    first = out.splitlines()[0] if out else ""
    return first.removeprefix("ffmpeg version ").split(" Copyright")[0]


def ffmpeg() -> str:
    from autotranscode.media.transcoder import find_ffmpeg

    return find_ffmpeg()


# -- a shared machine ----------------------------------------------------------------------------

#: Seconds to wait for other work on the machine to calm down before a measured round
#: (``BENCH_QUIET_WAIT=0`` disables waiting).
QUIET_WAIT = float(os.environ.get("BENCH_QUIET_WAIT", "120"))
#: "Quiet": the whole machine's CPUs busier than this fraction for no more than a second.
QUIET_BUSY = 0.15


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


def busy_fraction(seconds: float = 1.0) -> float:
    """How busy all CPUs were over the next ``seconds`` (0..1); 0 where /proc is missing."""
    try:
        t0, i0 = _cpu_times()
        time.sleep(seconds)
        t1, i1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1 - (i1 - i0) / max(t1 - t0, 1)


def wait_for_quiet() -> float:
    """Before a measured round: wait (up to QUIET_WAIT s) until other processes leave the CPUs
    nearly idle for two seconds in a row; returns the busy fraction seen last. On a shared
    machine this keeps other people's test runs out of most rounds (not all)."""
    deadline = time.monotonic() + QUIET_WAIT
    calm = 0
    busy = busy_fraction(0.5)
    while time.monotonic() < deadline:
        busy = busy_fraction(1.0)
        calm = calm + 1 if busy <= QUIET_BUSY else 0
        if calm >= 2:
            break
    return busy


def quiet_note(busy: Sequence[float]) -> str:
    """A table note on how busy the machine was (other processes) just before the rounds."""
    if not busy:
        return "no rounds"
    return (
        f"others' CPU use in the second before each round: {min(busy):.0%}-{max(busy):.0%} of "
        f"the machine (rounds wait up to {QUIET_WAIT:.0f} s for <= {QUIET_BUSY:.0%})"
    )


# -- media ---------------------------------------------------------------------------------------


def make_clip(
    dest: Path,
    seconds: float,
    size: str = "1920x1080",
    *,
    codec: Sequence[str] = ("-c:v", "prores_ks", "-profile:v", "1", "-pix_fmt", "yuv422p10le"),
    audio: Sequence[str] = ("-c:a", "pcm_s16le"),
    variant: int = 0,
) -> Path:
    """A clip from ffmpeg's lavfi sources; ``variant`` changes both picture and tone, so each
    variant is distinct content (autotranscode identifies files by content)."""
    video = f"testsrc2=size={size}:rate=25:duration={seconds}"
    tone = f"sine=frequency={440 + 7 * variant}:sample_rate=48000:duration={seconds}"
    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", video]
    cmd += ["-f", "lavfi", "-i", tone]
    if variant:
        cmd += ["-vf", f"hue=h={(variant * 37) % 360}"]
    cmd += [*codec, *audio, "-shortest", str(dest)]
    subprocess.run(cmd, check=True)
    return dest


# -- processes -----------------------------------------------------------------------------------


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The CLI's environment, free of the user's AUTOTRANSCODE_*/AWS_* settings and config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOTRANSCODE_", "AWS_"))}
    env["XDG_CONFIG_HOME"] = str(Path(tempfile.gettempdir()) / "autotranscode-bench-no-config")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def autotranscode(*args: str | Path) -> list[str]:
    """The CLI's argv; its modules are byte-compiled first, as an install leaves them (a
    checkout run with PYTHONDONTWRITEBYTECODE=1 would compile them in every measured run)."""
    _byte_compiled()
    return [sys.executable, "-m", "autotranscode", *map(str, args)]


@functools.cache
def _byte_compiled() -> None:
    import compileall

    import autotranscode

    compileall.compile_dir(Path(autotranscode.__file__).parent, quiet=1)


class Proc:
    """A long-running CLI process (``run``, ``worker``) logging to a file, stopped with Ctrl+C."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        logdir: Path,
        cpus: set[int] | None = None,
    ) -> None:
        """``cpus``: the only CPUs it may use, set before its exec (its children inherit it)."""
        self.name = name
        logdir.mkdir(parents=True, exist_ok=True)
        self.log = logdir / f"{name}.log"
        with self.log.open("wb") as fh:
            self.popen = subprocess.Popen(
                argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
            )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{self.text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not log {needle!r}:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def measured(
    cmd: Sequence[str | Path],
    env: dict[str, str] | None = None,
    stdin: Path | None = None,
    timeout: float = 1800.0,
) -> tuple[float, float]:
    """Run a command to completion: its wall seconds and CPU seconds (user + system of the
    process and every child it waited for, ffmpeg included). Killed, with its process
    group, after ``timeout`` (a hang is reported, not waited for forever)."""
    argv = [str(a) for a in cmd]
    with (
        (stdin or Path(os.devnull)).open("rb") as fh,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=fh, stdout=out, stderr=err, env=env, start_new_session=True
        )
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            err.seek(0)
            tail = (
                out.read().decode(errors="replace")[-1500:]
                + "\n--- stderr:\n"
                + err.read().decode(errors="replace")[-1500:]
            )
            why = f"killed after {timeout:.0f} s (hung?)" if wall >= timeout else "failed"
            raise RuntimeError(f"{' '.join(argv[:5])} {why}, exit {proc.returncode}: {tail}")
    return wall, usage.ru_utime + usage.ru_stime


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def wait_until(condition: object, what: str, timeout: float = 120.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


# -- logs and the journal ------------------------------------------------------------------------

#: logging's default asctime: local time with milliseconds after a comma.
_ASCTIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")


def log_time(line: str) -> float | None:
    """The epoch time of a log line that starts with ``%(asctime)s`` (millisecond precision)."""
    m = _ASCTIME.match(line)
    if m is None:
        return None
    whole = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()  # local time
    return whole + int(m.group(2)) / 1000


def journal_rows(state_dir: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:  # type: ignore[type-arg]
    """Rows from the journal, opened read-only (the running process owns it)."""
    db = state_dir / "journal.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        conn.close()


def event_times(state_dir: Path, state: str) -> dict[str, float]:
    """file path -> time of its first event in ``state``."""
    rows = journal_rows(
        state_dir,
        "SELECT f.path, MIN(e.at) FROM events e JOIN files f ON f.id = e.file_id"
        " WHERE e.state = ? GROUP BY f.path",
        (state,),
    )
    return {str(p): float(at) for p, at in rows}


def job_event_times(state_dir: Path, state: str) -> dict[str, float]:
    """job id -> time of its file's first event in ``state``."""
    rows = journal_rows(
        state_dir,
        "SELECT f.job_id, MIN(e.at) FROM events e JOIN files f ON f.id = e.file_id"
        " WHERE e.state = ? AND f.job_id IS NOT NULL GROUP BY f.job_id",
        (state,),
    )
    return {str(j): float(at) for j, at in rows}


# -- moto ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server(logdir: Path) -> Iterator[str]:
    """moto's server in its own process (it holds objects in memory, ~3x their size, so it
    must not share a process with a client whose memory we measure); yields its URL."""
    port = free_port()
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / "moto.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=cli_env(FAKE_AWS),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def aws_env(endpoint: str) -> dict[str, str]:
    """Environment for CLI subprocesses that must reach only the local moto server."""
    return cli_env({**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint})


@contextlib.contextmanager
def fake_aws_environ(endpoint: str) -> Iterator[None]:
    """The same, for boto3 in this process."""
    saved = {k: os.environ.get(k) for k in [*FAKE_AWS, "AWS_ENDPOINT_URL", "AWS_PROFILE"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update({**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- running one benchmark -----------------------------------------------------------------------


def print_tables(tables: Sequence[Table]) -> None:
    for t in tables:
        print()
        print(t.text())
    sys.stdout.flush()


def workdir(keep: Path | None) -> contextlib.AbstractContextManager[str]:
    """A scratch folder: a fresh temporary one, or ``keep`` (left in place for inspection)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return contextlib.nullcontext(str(keep))
    return tempfile.TemporaryDirectory(prefix="autotranscode-bench-")
