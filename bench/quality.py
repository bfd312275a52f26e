"""Benchmark 7: the VMAF target (``--quality vmaf:N``), what it saves and what it costs.

    .venv/bin/python bench/quality.py                    # (a) 4 sources of 10 s, (b) 60 s 1080p
    .venv/bin/python bench/quality.py --only a --seconds 5

(a) Size at equal quality: for each source, the fixed ``web-720p`` preset against the
same preset with a VMAF target; each output's size and its VMAF, measured here over every
frame (libvmaf, vmaf_v0.6.1, against the source scaled to the output's size as the encode
scales it), not the search's sampled word. HandBrakeCLI's "Fast 720p30" joins when
``HandBrakeCLI`` is on the PATH. The sources are lavfi pictures with different kinds of
noise and motion (no camera footage ships in a package here): grain over moving bars,
a counter under patterned noise, smooth gradients under fine grain, a still chart with faint noise.

(b) The search's cost: the CRF search on a 60 s 1080p clip (moving test picture under
temporal noise, H.264 with a keyframe every second as cameras write it) against the full
encode at the CRF it chose, in the same run; goal ≤ 25 %. The sampled VMAF every output
records (``measure``) is timed beside it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import time
from pathlib import Path

from benchlib import Table, ffmpeg, print_tables, quiet_note, verdict, wait_for_quiet, workdir

from autotranscode.media import presets, quality, video
from autotranscode.media.probe import probe
from autotranscode.media.transcoder import transcode

TARGET_COST = 0.25
#: name -> lavfi graph (size and duration filled in).
SOURCES = {
    "grain over moving bars": "testsrc2=size={size}:rate=25:duration={d},noise=alls=14:allf=t",
    "counter, patterned noise": "testsrc=size={size}:rate=25:duration={d},noise=alls=20:allf=p",
    # ``gradients`` offers float RGB (gbrapf32le) first: ``noise`` straight after it adds
    # its noise to the floats' bytes and leaves white noise (PSNR ~11 dB against the clean
    # picture, VMAF ~15 for any encode). Converted to 8-bit first, as the other sources are.
    "gradients, fine grain": "gradients=size={size}:rate=25:duration={d}:speed=0.02,"
    "format=yuv420p,noise=alls=8:allf=t+u",
    "still chart, faint noise": "smptehdbars=size={size}:rate=25:duration={d},noise=alls=3:allf=t",
}
_NOWHERE = ("-f", "null", "-")
#: Near-lossless H.264 sources, a keyframe a second (as cameras write them).
SOURCE_CODEC = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "8", "-g", "25")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", choices=["a", "b"], help="one part")
    p.add_argument("--seconds", type=float, default=10.0, help="(a) length of each source")
    p.add_argument("--size", default="1280x720", help="(a) source size")
    p.add_argument("--target", type=float, default=93.0, help="VMAF target")
    p.add_argument("--long-seconds", type=float, default=60.0, help="(b) clip length")
    p.add_argument("--keep", type=Path, help="work in this folder and leave it")
    return p


def _make(dest: Path, graph: str, codec: tuple[str, ...] = SOURCE_CODEC) -> Path:
    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", graph]
    subprocess.run([*cmd, *codec, "-pix_fmt", "yuv420p", str(dest)], check=True)
    return dest


def full_vmaf(preset: presets.Preset, src: Path, output: Path) -> float:
    """libvmaf over every frame of ``output`` against ``src`` through the encode's filters."""
    source = probe(src, detail=True)
    size = preset.output_size(source)
    assert size is not None
    chain = ",".join(video.filter_chain(preset, source, size))
    graph = (
        f"[0:v]scale={size[0]}:{size[1]},format=yuv420p,settb=1/1000,setpts=N[d];"
        f"[1:v]{chain},settb=1/1000,setpts=N[r];[d][r]libvmaf=n_threads=2"
    )
    run = subprocess.run(
        [ffmpeg(), "-hide_banner", "-i", str(output), "-i", str(src), "-lavfi", graph, *_NOWHERE],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(re.findall(r"VMAF score: ([0-9.]+)", run.stderr)[-1])


def _encode(preset: presets.Preset, src: Path, dst: Path) -> None:
    transcode(ffmpeg(), preset, probe(src, detail=True), src, dst)


def size_at_equal_quality(args: argparse.Namespace, tmp: Path) -> Table:
    base = presets.CATALOG["web-720p"]
    handbrake = shutil.which("HandBrakeCLI")
    t = Table(
        f"7a. Size at equal quality: {args.seconds:g} s {args.size} sources, web-720p at its "
        f"fixed CRF vs --quality vmaf:{args.target:g}",
        ["source", "output", "CRF", "MB", "VMAF (every frame)", "size vs fixed"],
    )
    busy = []
    for n, (name, graph) in enumerate(SOURCES.items()):
        src = _make(tmp / f"a{n}.mkv", graph.format(size=args.size, d=args.seconds))
        info = probe(src, detail=True)
        busy.append(wait_for_quiet())
        fixed = tmp / f"a{n}-fixed.mp4"
        _encode(base, src, fixed)
        choice = quality.search(ffmpeg(), base, info, src, tmp, args.target)
        tuned = tmp / f"a{n}-vmaf.mp4"
        _encode(quality.with_crf(base, choice.crf), src, tuned)
        fixed_size, tuned_size = fixed.stat().st_size, tuned.stat().st_size
        t.add(
            name,
            "web-720p (fixed)",
            quality.crf_of(base),
            fixed_size / 1e6,
            full_vmaf(base, src, fixed),
            1.0,
        )
        t.add(
            "", f"vmaf:{args.target:g} ({len(choice.trials)} trials)", choice.crf,
            tuned_size / 1e6, full_vmaf(base, src, tuned), tuned_size / fixed_size,
        )  # fmt: skip
        if handbrake:
            hb = tmp / f"a{n}-hb.mp4"
            subprocess.run(
                [handbrake, "-i", str(src), "-o", str(hb), "--preset", "Fast 720p30"],
                capture_output=True,
                check=True,
            )
            hb_size = hb.stat().st_size
            t.add(
                "",
                "HandBrakeCLI Fast 720p30",
                21,
                hb_size / 1e6,
                full_vmaf(base, src, hb),
                hb_size / fixed_size,
            )
    if not handbrake:
        t.notes.append("HandBrakeCLI is not installed here: its column is left out")
    t.notes.append(quiet_note(busy))
    return t


def search_cost(args: argparse.Namespace, tmp: Path) -> Table:
    base = presets.CATALOG["web-720p"]
    graph = (
        f"testsrc2=size=1920x1080:rate=30:duration={args.long_seconds},hue=H=t/3,"
        "noise=alls=5:allf=t,scroll=h=0.002:v=0.001"
    )
    codec = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-g", "30")
    src = _make(tmp / "long.mp4", graph, codec)
    info = probe(src, detail=True)
    wait_for_quiet()
    start = time.monotonic()
    choice = quality.search(ffmpeg(), base, info, src, tmp, args.target)
    searched = time.monotonic() - start
    wait_for_quiet()
    start = time.monotonic()
    out = tmp / "long-out.mp4"
    _encode(quality.with_crf(base, choice.crf), src, out)
    encoded = time.monotonic() - start
    start = time.monotonic()
    sampled = quality.measure(ffmpeg(), base, info, src, out)
    measured = time.monotonic() - start
    ratio = searched / encoded
    t = Table(
        f"7b. Cost of the CRF search, {args.long_seconds:g} s 1080p -> web-720p "
        f"(vmaf:{args.target:g})",
        ["step", "s", "vs full encode", "target", "result"],
    )
    t.add("full encode at the chosen CRF", encoded, 1.0)
    t.add(
        f"search ({len(choice.trials)} rounds, {len(quality.windows(info.duration))} samples "
        f"of {quality.SAMPLE_SECONDS:g} s)",
        searched, ratio, f"<= {TARGET_COST:g}", verdict(ratio, TARGET_COST, higher_is_better=False),
    )  # fmt: skip
    t.add("sampled VMAF of the output (every output records it)", measured, measured / encoded)
    tried = ", ".join(f"crf {x.crf:g} -> {x.vmaf:.2f}" for x in choice.trials)
    t.notes.append(
        f"trials: {tried}; chosen crf {choice.crf:g}; output's sampled VMAF {sampled:.2f}"
    )
    return t


def measure(args: argparse.Namespace) -> list[Table]:
    tables = []
    with workdir(args.keep) as tmp_name:
        tmp = Path(tmp_name)
        if args.only in (None, "a"):
            tables.append(size_at_equal_quality(args, tmp))
        if args.only in (None, "b"):
            tables.append(search_cost(args, tmp))
    return tables


def main() -> None:
    print_tables(measure(parser().parse_args()))


if __name__ == "__main__":
    main()
