"""Run every benchmark in bench/ and print all their tables (optionally as Markdown too).

    .venv/bin/python bench/run_all.py                             # quick variants (~5 min)
    .venv/bin/python bench/run_all.py --full --markdown results.md  # full-size (~30 min)
    .venv/bin/python bench/run_all.py --only overhead throughput

Each table is a ratio against a baseline measured in the same run on the same
machine (bare ffmpeg, the settle period, ``aws s3 cp``). The Markdown starts with
the machine (nproc, CPU model, RAM, Python, ffmpeg) and the exact commands.
Benchmarks are run one after another, never concurrently; a benchmark that fails
is reported as such and the others still run.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

import chunking
import completion
import dashboard
import detection
import hashing
import overhead
import quality
import remux
import rescan
import s3
import throughput
from benchlib import Table, machine, print_tables

#: name -> (module, quick arguments, full-size arguments)
BENCHMARKS: dict[str, tuple[ModuleType, list[str], list[str]]] = {
    "overhead": (overhead, [], ["--seconds", "60", "--rounds", "5", "--web"]),
    "detection": (detection, [], ["--drops", "50"]),
    "completion": (completion, [], ["--jobs", "30"]),
    "throughput": (throughput, [], ["--rounds", "5"]),
    # Four rounds, each tool first in two: uploads are s3transfer on both sides, a few
    # percent apart, so the order must not favour either (see s3.measure).
    "s3": (s3, [], ["--size-mb", "256", "1024", "--rounds", "4"]),
    "hashing": (hashing, ["--size-mb", "256"], ["--size-mb", "1000", "--rounds", "5"]),
    "dashboard": (dashboard, ["--files", "2000"], ["--files", "10000"]),
    "quality": (quality, ["--seconds", "4", "--size", "640x360", "--long-seconds", "20"], []),
    "remux": (remux, ["--seconds", "10"], ["--seconds", "60", "--rounds", "3"]),
    "rescan": (rescan, ["--files", "5000"], ["--files", "20000"]),
    # Each worker pinned to one core: 1 vs 2 workers on a chunked file, and the model.
    "chunking": (chunking, ["--quick"], []),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--full", action="store_true", help="full-size variants (60 s clip, 1 GB file)")
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write Markdown here")
    return p


def command_line(name: str, argv: list[str]) -> str:
    return " ".join([".venv/bin/python", f"bench/{name}.py", *argv])


def markdown(facts: dict[str, str], commands: list[str], tables: list[Table]) -> str:
    lines = ["## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    lines += ["", "## Commands", "", "```sh", *commands, "```", "", "## Results", ""]
    for t in tables:
        lines += [t.markdown(), ""]
    return "\n".join(lines)


def main() -> None:
    args = parser().parse_args()
    facts = machine()
    print("machine:", "; ".join(f"{k}: {v}" for k, v in facts.items()))
    tables: list[Table] = []
    commands = []
    for name in args.only or list(BENCHMARKS):
        module, quick, full = BENCHMARKS[name]
        argv = full if args.full else quick
        commands.append(command_line(name, argv))
        print(f"\n== {command_line(name, argv)}", flush=True)
        start = time.monotonic()
        try:
            got = module.measure(module.parser().parse_args(argv))
        except Exception as exc:
            traceback.print_exc()
            failed = Table(f"{name}: failed", ["error"])
            failed.add(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            got = [failed]
        print_tables(got)
        print(f"({name}: {time.monotonic() - start:.0f} s)", flush=True)
        tables += got
    print("\n\n# All results")
    print_tables(tables)
    text = markdown(facts, commands, tables)
    if args.markdown:
        args.markdown.write_text(text + "\n")
        print(f"\nMarkdown written to {args.markdown}")
    else:
        print("\n" + text)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
