"""Benchmark: chunked transcoding (``--chunk-seconds``, issue 19) on a 2-core machine, each
worker pinned to one core, and the model of a 2-hour file on many workers.

    .venv/bin/python bench/chunking.py --quick    # 20 s clip, chunks of 5 s (~3 min)
    .venv/bin/python bench/chunking.py            # 60 s 1080p clip, chunks of 10 s (~10 min)

The source: 1080p25 H.264 at about 20 Mbit/s (testsrc2 with temporal noise, so the encoder
works as on camera footage and a rate cap binds), a keyframe every 2 s, AAC stereo.

1. **The real pipeline**: ``autotranscode worker --workers 1`` processes on the local
   backend, each pinned to ONE core (``os.sched_setaffinity`` before exec; ffmpeg inherits
   it) with ``--threads 1`` (with one allowed CPU ffmpeg and x264 would pick one encoder
   thread anyway: ``av_cpu_count`` and x264's CPU count read the affinity mask), and a
   ``transcode --workers 0`` client
   sharing their state dir (unpinned: it hashes, submits and waits). Timed from the
   client's start to its exit (output delivered): one worker vs two, chunked, the same
   pinning, alternating which goes first; and the unchunked whole-file encode on one
   worker. Target: two workers >= 1.8x faster than one (the ratio of one run's pair).
2. **The media level**, pinned with ``taskset`` to core 0, ``threads=1`` explicitly: the
   split (the keyframe index, ``chunks.chunk_plan``), each chunk (``chunk_command``), the
   rest (``rest_command``: the audio), the join (``join_command`` and ``verify_join``) and
   the whole-file command; the pipeline's time less these is its own overhead (per file,
   from the whole-file run, and per chunk).
3. **The model** (``model``): a 2-hour 1080p source on 1, 8, 32, 128 workers, from the
   measured rates and a stated S3 throughput, checked against the 1- and 2-worker runs.
4. **Rate caps at the joins**: a VBV-capped preset (web-720p: maxrate 4000k, bufsize
   8000k) whole and chunked on the same source: average and peak 1-second video bitrate,
   overall and in the seconds around each join.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import math
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
from benchlib import (
    Proc,
    Table,
    autotranscode,
    cli_env,
    ffmpeg,
    measured,
    median,
    print_tables,
    quiet_note,
    verdict,
    wait_for_quiet,
    workdir,
)

from autotranscode.media import chunks, join, presets, transcoder, video
from autotranscode.media.probe import probe

TARGET = 1.8
#: The model's file: two hours.
MODEL_SECONDS = 2 * 3600.0
MODEL_WORKERS = (1, 8, 32, 128)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 s clip, chunks of 5 s")
    p.add_argument("--seconds", type=float, default=60.0, help="clip length (quick: 20)")
    p.add_argument("--chunk-seconds", type=float, default=10.0, help="chunk size (quick: 5)")
    p.add_argument("--preset", default="web-1080p", help="the scaled encode's preset")
    p.add_argument("--vbv-preset", default="web-720p", help="a rate-capped preset")
    p.add_argument("--rounds", type=int, default=1, help="pairs of 1- and 2-worker runs")
    p.add_argument("--s3-mbytes", type=float, default=100.0, help="model: S3 MB/s per worker")
    p.add_argument(
        "--source-mbits", type=float, default=20.0, help="model: the 2-hour source's Mbit/s"
    )
    p.add_argument("--keep", type=Path, help="work in this folder and leave it (for inspection)")
    return p


# -- the source ----------------------------------------------------------------------------------


def make_source(dest: Path, seconds: float) -> Path:
    """1080p25 H.264 with motion and grain at about 20 Mbit/s (a camera file's rate; the
    model's source), a keyframe every 2 s (50 frames), AAC stereo."""
    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=25:duration={seconds}"]
    cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    cmd += ["-vf", "noise=alls=10:allf=t", "-c:v", "libx264", "-preset", "ultrafast"]
    cmd += ["-crf", "23", "-maxrate", "20M", "-bufsize", "40M"]
    cmd += ["-g", "50", "-keyint_min", "50", "-sc_threshold", "0"]
    cmd += ["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", "-ac", "2", "-shortest"]
    subprocess.run([*cmd, str(dest)], check=True)
    return dest


# -- 1. the real pipeline ------------------------------------------------------------------------


@contextlib.contextmanager
def ffmpeg_affinities(roots: Sequence[int]) -> Iterator[dict[int, set[int]]]:
    """Every ffmpeg seen under ``roots`` while the block runs -> the CPUs it was allowed."""
    seen: dict[int, set[int]] = {}
    done = threading.Event()

    def children(pid: int) -> list[int]:
        found = []
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                text = (task / "children").read_text().split()
                found += [int(x) for x in text]
        return found

    def watch() -> None:
        while not done.is_set():
            stack = list(roots)
            while stack:
                pid = stack.pop()
                kids = children(pid)
                stack += kids
                with contextlib.suppress(OSError):
                    if pid not in seen and "ffmpeg" in Path(f"/proc/{pid}/comm").read_text():
                        seen[pid] = os.sched_getaffinity(pid)
            done.wait(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield seen
    finally:
        done.set()
        t.join()


@dataclass
class PipelineRun:
    wall: float
    ffmpegs: int
    pinned: bool


def pipeline(
    clip: Path, tmp: Path, tag: str, workers: int, preset: str, chunk_seconds: float | None
) -> PipelineRun:
    """``workers`` pinned worker processes and a client: seconds from the client's start to
    its exit with the output in OUT."""
    state, out = tmp / f"state-{tag}", tmp / f"out-{tag}"
    env = cli_env()
    procs = [
        Proc(
            f"worker{n}-{tag}",
            autotranscode(
                "worker",
                *("--backend", "local", "--state-dir", state, "--workers", "1", "--threads", "1"),
            ),
            env,
            tmp / "logs",
            {n},
        )
        for n in range(workers)
    ]
    try:
        for p in procs:
            p.wait_for("waiting for jobs")
        argv = autotranscode(
            "transcode",
            clip,
            *("--out", out, "--state-dir", state, "--backend", "local", "--workers", "0"),
            *("--preset", preset),
            *(("--chunk-seconds", f"{chunk_seconds:g}") if chunk_seconds else ()),
        )
        with ffmpeg_affinities([p.popen.pid for p in procs]) as seen:
            wall, _ = measured(argv, env)
    finally:
        for p in procs:
            p.stop()
    made = out / f"{clip.stem}{presets.CATALOG[preset].extension}"
    if not made.exists():
        raise RuntimeError(f"no output at {made}")
    pinned = all(len(cpus) == 1 for cpus in seen.values())
    return PipelineRun(wall, len(seen), pinned)


# -- 2. the media level --------------------------------------------------------------------------


def pinned(cmd: Sequence[str], core: int = 0) -> float:
    """Wall seconds of ``cmd`` allowed on ``core`` only."""
    wall, _ = measured(["taskset", "-c", str(core), *cmd])
    return wall


@contextlib.contextmanager
def pinned_here(core: int = 0) -> Iterator[None]:
    """This process on ``core`` only for a while (the keyframe index is read in-process)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@dataclass
class MediaCosts:
    """The media steps of one chunked file and its whole encode, on one core."""

    seconds: float  # the source's
    chunk_count: int
    split: float
    chunk_walls: list[float]
    chunk_lengths: list[float]
    rest: float
    join: float  # ffmpeg's concat and mux
    verify: float  # verify_join's packet read
    whole: float
    output_bytes: int
    source_bytes: int
    two_core: float  # the same steps by two pinned runners, chunks then rest, then the join
    whole_path: Path
    joined_path: Path
    planned: list[chunks.Chunk]

    @property
    def one_core(self) -> float:
        return self.split + sum(self.chunk_walls) + self.rest + self.join + self.verify

    @property
    def encode_rate(self) -> float:
        """Chunk encode seconds per source second (one core)."""
        return sum(self.chunk_walls) / sum(self.chunk_lengths)


def media_costs(clip: Path, tmp: Path, preset_id: str, chunk_seconds: float) -> MediaCosts:
    ff = ffmpeg()
    preset = presets.CATALOG[preset_id]
    info = probe(clip)
    with pinned_here(0):
        start = time.perf_counter()
        planned = chunks.chunk_plan(clip, info, chunk_seconds)
        split = time.perf_counter() - start
    folder = tmp / "media"
    folder.mkdir(exist_ok=True)
    paths = [folder / f"c{c.index:04d}.mkv" for c in planned]
    rest_path = folder / "rest.mkv"
    lengths = [c.length(info.duration) or 0.0 for c in planned]

    def chunk_cmd(n: int) -> list[str]:
        return chunks.chunk_command(ff, preset, info, clip, paths[n], planned[n], threads=1)

    rest_cmd = chunks.rest_command(ff, preset, info, clip, rest_path)
    walls = [pinned(chunk_cmd(n)) for n in range(len(planned))]
    rest = pinned(rest_cmd)
    joined = folder / f"joined{preset.extension}"
    join_cmd = join.join_command(ff, preset, info, paths, rest_path, joined, chunks=planned)
    join_wall = pinned(join_cmd)
    with pinned_here(0):
        start = time.perf_counter()
        join.verify_join(joined, info, chunks.expected_frames(planned), chunks=planned)
        verify = time.perf_counter() - start
    whole_path = folder / f"whole{preset.extension}"
    one = video.threaded(preset, 1)
    whole = pinned(transcoder.command(ff, one, info, clip, whole_path))
    two = two_runners(
        [chunk_cmd(n) for n in range(len(planned))] + [rest_cmd],
        lambda: join.join_command(ff, preset, info, paths, rest_path, joined, chunks=planned),
        lambda: chunks.chunk_plan(clip, info, chunk_seconds),
    )
    return MediaCosts(
        seconds=info.duration or 0.0,
        chunk_count=len(planned),
        split=split,
        chunk_walls=walls,
        chunk_lengths=lengths,
        rest=rest,
        join=join_wall,
        verify=verify,
        whole=whole,
        output_bytes=joined.stat().st_size,
        source_bytes=clip.stat().st_size,
        two_core=two,
        whole_path=whole_path,
        joined_path=joined,
        planned=planned,
    )


def two_runners(cmds: list[list[str]], join_cmd: object, split: object) -> float:
    """The split, then ``cmds`` in order by two runners pinned to cores 0 and 1, then the
    join: wall seconds (the media level's 2-worker time, no queue or store)."""
    assert callable(join_cmd) and callable(split)
    start = time.perf_counter()
    with pinned_here(0):
        split()
    queue = list(cmds)
    lock = threading.Lock()

    def runner(core: int) -> None:
        while True:
            with lock:
                if not queue:
                    return
                cmd = queue.pop(0)
            pinned(cmd, core)

    threads = [threading.Thread(target=runner, args=(core,)) for core in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pinned(join_cmd())
    return time.perf_counter() - start


# -- 3. the model --------------------------------------------------------------------------------


@dataclass
class Rates:
    """What the model is made of: per source second unless said, one core per worker."""

    encode: float  # chunk encode s per source s
    rest: float  # rest (audio) s per source s
    split_mbytes: float  # keyframe index: MB of source read per second (it reads every packet)
    join: float  # join (concat, mux, verify) s per source s
    per_chunk: float  # s a chunk costs beyond its encode (queue, store, check, progress)
    per_file: float  # s a file costs beyond its media steps (hash, submit, probe, deliver)
    out_mbits: float  # the output's Mbit/s
    source_mbits: float  # the source's Mbit/s (model: assumed)
    s3_mbytes: float  # MB/s one worker moves to or from S3 (assumed)

    def transfer(self, seconds: float, mbits: float) -> float:
        return seconds * mbits / 8 / self.s3_mbytes


def schedule(jobs: Sequence[float], workers: int) -> float:
    """Makespan of ``jobs`` taken in queue order by ``workers`` (each the next free)."""
    free = [0.0] * workers
    end = 0.0
    for j in jobs:
        start = heapq.heappop(free)
        heapq.heappush(free, start + j)
        end = max(end, start + j)
    return end


def model(
    r: Rates, seconds: float, workers: int, chunk_seconds: float, aws: bool, rest_first: bool
) -> float:
    """Seconds for a file of ``seconds`` cut into chunks of ``chunk_seconds``: per file +
    split + the chunks and the rest on ``workers`` (queue order) + join, with transfers on
    aws (the split and the rest download the source, a chunk reads its range and uploads
    its chunk, the join downloads every chunk and uploads the output)."""
    n = max(1, math.ceil(seconds / chunk_seconds - 1e-9))
    lengths = [min(chunk_seconds, seconds - i * chunk_seconds) for i in range(n)]
    src = r.transfer(seconds, r.source_mbits) if aws else 0.0
    chunk_jobs = [
        c * r.encode
        + r.per_chunk
        + (r.transfer(c, r.source_mbits) + r.transfer(c, r.out_mbits) if aws else 0.0)
        for c in lengths
    ]
    rest = seconds * r.rest + src
    jobs = [rest, *chunk_jobs] if rest_first else [*chunk_jobs, rest]
    join_s = seconds * r.join + (2 * r.transfer(seconds, r.out_mbits) if aws else 0.0)
    split = seconds * r.source_mbits / 8 / r.split_mbytes
    return r.per_file + split + src + schedule(jobs, workers) + join_s


def whole_model(r: Rates, seconds: float, aws: bool) -> float:
    """One worker, no chunks: download, encode (at the chunks' rate), upload."""
    xfer = r.transfer(seconds, r.source_mbits) + r.transfer(seconds, r.out_mbits)
    return r.per_file + seconds * r.encode + (xfer if aws else 0.0)


def best_chunk(
    r: Rates, seconds: float, workers: int, aws: bool, rest_first: bool
) -> tuple[float, float]:
    """The chunk size (2 s steps: the keyframes, 2 s to 3600 s) with the least time."""
    sizes = [float(s) for s in range(2, 3601, 2)]
    times = {s: model(r, seconds, workers, s, aws, rest_first) for s in sizes}
    size = min(sizes, key=lambda s: (round(times[s], 1), -s))  # ties: fewer chunks
    return size, times[size]


def model_tables(r: Rates) -> list[Table]:
    m = Table(
        "Chunked transcoding model: a 2-hour 1080p source, one core per worker",
        [
            "workers",
            "best chunk s (local)",
            "local min",
            "best chunk s (aws)",
            "aws min",
            "aws, 60 s chunks",
            "aws, rest first, best",
            "speed-up (aws)",
        ],
    )
    whole = whole_model(r, MODEL_SECONDS, aws=True)
    for w in MODEL_WORKERS:
        c_l, t_l = best_chunk(r, MODEL_SECONDS, w, aws=False, rest_first=False)
        c_a, t_a = best_chunk(r, MODEL_SECONDS, w, aws=True, rest_first=False)
        _, t_f = best_chunk(r, MODEL_SECONDS, w, aws=True, rest_first=True)
        t_60 = model(r, MODEL_SECONDS, w, 60.0, aws=True, rest_first=False)
        m.add(
            w,
            f"{c_l:.0f}",
            f"{t_l / 60:.1f}",
            f"{c_a:.0f}",
            f"{t_a / 60:.1f}",
            f"{t_60 / 60:.1f}",
            f"{t_f / 60:.1f}",
            f"{whole / t_a:.1f}x",
        )
    m.notes.append(
        f"whole file on one worker (aws, no chunks): {whole / 60:.1f} min; the rest (audio) "
        f"alone: {MODEL_SECONDS * r.rest / 60:.1f} min + its source download "
        f"{r.transfer(MODEL_SECONDS, r.source_mbits) / 60:.1f} min: the floor once W is large"
    )
    m.notes.append(
        f"rates (measured, one core): encode {r.encode:.3f} s/s, rest {r.rest:.4f} s/s, "
        f"split {r.split_mbytes:.0f} MB/s, join {r.join:.5f} s/s, {r.per_chunk:.2f} s per chunk, "
        f"{r.per_file:.2f} s per file; output {r.out_mbits:.1f} Mbit/s"
    )
    m.notes.append(
        f"assumed: source {r.source_mbits:g} Mbit/s, S3 {r.s3_mbytes:g} MB/s per worker each "
        f"way; the rest is queued last, as the split sends it (last column: first)"
    )
    return [m]


# -- 4. rate caps at the joins -------------------------------------------------------------------


def per_second_kbits(path: Path) -> list[float]:
    """The video stream's kbit in each second of its presentation time."""
    buckets: dict[int, int] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0 or packet.time_base is None:
                continue
            second = int(float(packet.pts * packet.time_base))
            buckets[second] = buckets.get(second, 0) + packet.size
    first = min(buckets)
    return [buckets.get(s, 0) * 8 / 1000 for s in range(first, max(buckets) + 1)]


def vbv_encodes(clip: Path, tmp: Path, preset_id: str, chunk_seconds: float) -> VbvPair:
    """``preset_id`` whole and chunked (ffmpeg's own threads, unpinned)."""
    ff = ffmpeg()
    preset = presets.CATALOG[preset_id]
    info = probe(clip)
    folder = tmp / f"vbv-{preset_id}"
    folder.mkdir(exist_ok=True)
    whole = folder / f"whole{preset.extension}"
    measured(transcoder.command(ff, preset, info, clip, whole))
    planned = chunks.chunk_plan(clip, info, chunk_seconds)
    paths = [folder / f"c{c.index:04d}.mkv" for c in planned]
    for c, path in zip(planned, paths, strict=True):
        measured(chunks.chunk_command(ff, preset, info, clip, path, c))
    joined = folder / f"joined{preset.extension}"
    measured(join.join_command(ff, preset, info, paths, None, joined, chunks=planned))
    return VbvPair(preset_id, whole, joined, planned, "unpinned, ffmpeg's threads")


@dataclass
class VbvPair:
    preset_id: str
    whole: Path
    joined: Path
    planned: list[chunks.Chunk]
    how: str


def vbv_table(pairs: Sequence[VbvPair], seconds: float) -> Table:
    t = Table(
        f"Rate caps at the joins: whole vs chunked, {seconds:.0f} s, video kbit/s in "
        "1-second windows",
        [
            "preset (maxrate/bufsize)",
            "chunks",
            "encode",
            "average",
            "peak 1 s",
            "peak at joins",
            "median at joins",
            "seconds > maxrate",
        ],
    )
    for pair in pairs:
        preset = presets.CATALOG[pair.preset_id]
        cap = preset.max_bitrate_k or math.inf
        cuts = [int(c.start) for c in pair.planned[1:]]
        near = {s for cut in cuts for s in (cut - 1, cut)}
        for name, path in (("whole", pair.whole), ("chunked", pair.joined)):
            k = per_second_kbits(path)
            at = [k[s] for s in sorted(near) if 0 <= s < len(k)]
            t.add(
                f"{pair.preset_id} ({preset.max_bitrate_k}k/{2 * (preset.max_bitrate_k or 0)}k)",
                len(pair.planned),
                f"{name} ({pair.how})",
                f"{sum(k) / len(k):.0f}",
                f"{max(k):.0f}",
                f"{max(at):.0f}",
                f"{median(at):.0f}",
                sum(1 for x in k if x > cap),
            )
    t.notes.append(
        "at joins: the second before and the second starting at each cut (a chunk starts "
        "with a keyframe and x264's VBV buffer 90 % full, so its first second may spend more)"
    )
    return t


# -- the run -------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> list[Table]:
    if args.quick:
        args.seconds, args.chunk_seconds = 20.0, 5.0
    with workdir(args.keep) as tmp_name:
        tmp = Path(tmp_name)
        clip = make_source(tmp / "talk.mp4", args.seconds)
        source_mbits = clip.stat().st_size * 8 / 1e6 / args.seconds
        busy: list[float] = []
        one: list[PipelineRun] = []
        two: list[PipelineRun] = []
        for i in range(args.rounds):
            order = (1, 2) if i % 2 == 0 else (2, 1)
            for w in order:
                busy.append(wait_for_quiet())
                run = pipeline(clip, tmp, f"{i}-{w}w", w, args.preset, args.chunk_seconds)
                (one if w == 1 else two).append(run)
        busy.append(wait_for_quiet())
        whole_run = pipeline(clip, tmp, "whole", 1, args.preset, None)
        busy.append(wait_for_quiet())
        costs = media_costs(clip, tmp, args.preset, args.chunk_seconds)
        busy.append(wait_for_quiet())
        pairs = [
            VbvPair(
                args.preset,
                costs.whole_path,
                costs.joined_path,
                costs.planned,
                "1 core, threads=1",
            ),
            vbv_encodes(clip, tmp, args.vbv_preset, args.chunk_seconds),
        ]
        vbv = vbv_table(pairs, args.seconds)
    per_round = [a.wall / b.wall for a, b in zip(one, two, strict=True)]
    ratio = median(per_round)
    t = Table(
        f"Chunked transcoding, {args.seconds:.0f} s 1080p H.264 -> {args.preset}, chunks of "
        f"{args.chunk_seconds:g} s ({costs.chunk_count}), local backend, each worker "
        f"pinned to one core",
        ["case", "wall s", "vs 1 worker", "target", "result"],
    )
    t.add("whole file, 1 worker (no chunks)", whole_run.wall, "", "", "")
    t.add("chunked, 1 worker", median([r.wall for r in one]), 1.0, "", "")
    t.add(
        "chunked, 2 workers",
        median([r.wall for r in two]),
        f"{ratio:.2f}x faster",
        f">= {TARGET:.1f}x",
        verdict(ratio, TARGET, higher_is_better=True),
    )
    t.add("media level, 1 core (no queue, no store)", costs.one_core, "", "", "")
    media_ratio = costs.one_core / costs.two_core
    t.add("media level, 2 cores", costs.two_core, f"{media_ratio:.2f}x faster", "", "")
    t.notes.append(
        "per-round ratios: " + ", ".join(f"{x:.3f}" for x in per_round) + "; ffmpegs seen "
        f"per run {[r.ffmpegs for r in one + two]}, each allowed on one CPU: "
        f"{all(r.pinned for r in one + two + [whole_run])}"
    )
    t.notes.append(
        "wall: the transcode client's start to its exit (output in OUT); workers started "
        "before and warm; the client itself is not pinned"
    )
    t.notes.append(quiet_note(busy))
    per_file = whole_run.wall - costs.whole
    per_chunk = (median([r.wall for r in one]) - costs.one_core - per_file) / costs.chunk_count
    c = Table(
        "Chunked transcoding: the steps on one core (media level, threads=1)",
        ["step", "wall s", "per source s", "note"],
    )
    s = costs.seconds
    c.add(
        "split (keyframe index)",
        costs.split,
        f"{costs.split / s:.5f}",
        f"every packet read, none decoded: {costs.source_bytes / 1e6 / costs.split:.0f} MB/s",
    )
    c.add(
        f"chunk encodes ({costs.chunk_count})",
        sum(costs.chunk_walls),
        f"{costs.encode_rate:.3f}",
        f"{1 / costs.encode_rate:.2f}x realtime; each {min(costs.chunk_walls):.1f}-"
        f"{max(costs.chunk_walls):.1f} s",
    )
    c.add("rest (audio)", costs.rest, f"{costs.rest / s:.4f}", f"{s / costs.rest:.0f}x realtime")
    join_mb = costs.output_bytes / 1e6
    c.add(
        "join (concat + mux)",
        costs.join,
        f"{costs.join / s:.5f}",
        f"{join_mb / costs.join:.0f} MB/s of output",
    )
    c.add("join check (verify_join)", costs.verify, f"{costs.verify / s:.5f}", "")
    c.add("whole-file encode", costs.whole, f"{costs.whole / s:.3f}", "the same pinning")
    c.add("pipeline overhead per file", per_file, "", "whole run less its encode")
    c.add("pipeline overhead per chunk", per_chunk, "", "1-worker run less steps, per file")
    rates = Rates(
        encode=costs.encode_rate,
        rest=costs.rest / s,
        split_mbytes=costs.source_bytes / 1e6 / costs.split,
        join=(costs.join + costs.verify) / s,
        per_chunk=max(per_chunk, 0.0),
        per_file=per_file,
        out_mbits=costs.output_bytes * 8 / 1e6 / s,
        source_mbits=args.source_mbits,
        s3_mbytes=args.s3_mbytes,
    )
    check = Table(
        "Chunked transcoding model checked against this run (local backend, no transfers)",
        ["case", "measured s", "model s", "model / measured"],
    )
    local = Rates(**{**rates.__dict__, "source_mbits": source_mbits})
    for w, runs in ((1, one), (2, two)):
        got = median([r.wall for r in runs])
        predicted = model(local, s, w, args.chunk_seconds, aws=False, rest_first=False)
        check.add(f"{w} worker{'s' if w > 1 else ''}", got, predicted, f"{predicted / got:.3f}")
    check.notes.append(
        "the 1-worker case is fitted (its overhead per chunk comes from it); the 2-worker "
        "case is the check"
    )
    return [t, c, check, *model_tables(rates), vbv]


def main() -> None:
    print_tables(measure(parser().parse_args()))


if __name__ == "__main__":
    main()
