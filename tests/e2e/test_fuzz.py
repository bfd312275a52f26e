"""Hostile bytes through ``transcode``: every file ends with a valid output or a one-line reason.

Three families, about 180 files in one batch (under a minute here):
- random bytes under every extension autotranscode takes by default;
- every test clip truncated at ten offsets;
- every test clip with bytes of its header flipped.

Whatever ffmpeg and PyAV make of them, the summary must name each file once, as ``ok`` with
an output that probes as media, or as ``FAILED`` with a reason on that one line; nothing may
print a traceback or an "internal error", and the command exits 0 or 1.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli, make_cli

from autotranscode.errors import ProbeError
from autotranscode.media.probe import DEFAULT_EXTENSIONS, probe

from conftest import Clip

SEED = 20261204
RANDOM_PER_EXTENSION = 3
TRUNCATIONS = 10
FLIPS = 3
#: The batch is large; give it time on a busy 2-core machine.
DEADLINE = 420.0


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    c = make_cli(request, tmp_path, "local")
    try:
        yield c
    finally:
        c.close()


def hostile_files(folder: Path, clips: dict[str, Clip]) -> list[Path]:
    rng = random.Random(SEED)
    made = []
    for n, ext in enumerate(DEFAULT_EXTENSIONS):
        for k in range(RANDOM_PER_EXTENSION):
            path = folder / f"random-{n:02d}-{k}{ext}"
            path.write_bytes(rng.randbytes(rng.choice((1, 17, 188, 4096, 65536, 300_000))))
            made.append(path)
    for name, clip in clips.items():
        data = clip.path.read_bytes()
        stem, ext = Path(name).stem.replace(" ", "_"), Path(name).suffix
        for k in range(TRUNCATIONS):
            cut = max(1, int(len(data) * rng.uniform(0.0, 0.98)))
            path = folder / f"cut-{stem}-{k}{ext}"
            path.write_bytes(data[:cut])
            made.append(path)
        for k in range(FLIPS):
            damaged = bytearray(data)
            for _ in range(8):
                at = rng.randrange(min(len(damaged), 4096))
                damaged[at] ^= 1 << rng.randrange(8)
            path = folder / f"flip-{stem}-{k}{ext}"
            path.write_bytes(bytes(damaged))
            made.append(path)
    return made


def test_hostile_bytes_end_as_valid_outputs_or_one_line_reasons(
    cli: Cli, tmp_path: Path, clips: dict[str, Clip]
) -> None:
    fuzz, out = tmp_path / "fuzz", tmp_path / "out"
    fuzz.mkdir()
    files = hostile_files(fuzz, clips)

    result = cli.run("transcode", fuzz, "--out", out, timeout=DEADLINE)
    report = f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    assert result.returncode in (0, 1), report
    for text in (result.stdout, result.stderr):
        assert "Traceback" not in text, report
        assert "internal error" not in text.lower(), report

    summary = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(ok|FAILED)\s+(\S.*?)(?: -> |: )(.*)$", line)
        if match:
            summary.setdefault(match.group(2), []).append((match.group(1), match.group(3)))
    for path in files:
        assert len(summary.get(path.name, [])) == 1, (path.name, report)
        verdict, detail = summary[path.name][0]
        assert detail.strip(), (path.name, report)
        if verdict == "ok":
            for name in detail.split(", "):
                output = out / name.split(" (same content as")[0]
                try:
                    info = probe(output)
                except ProbeError as exc:
                    pytest.fail(f"{path.name}: delivered {output.name}, which is not media: {exc}")
                assert info.duration is None or info.duration > 0, (path.name, info)
    assert re.search(r"\d+ done, \d+ failed", result.stdout), report
