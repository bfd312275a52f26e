"""Scaling out: several ``worker`` processes share one job queue; each job is done once."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli, names, open_cli

from conftest import FFMPEG, Clip, check_output

JOBS = 20
WORKERS = 3
_DONE = re.compile(r"job ([0-9a-f]+) completed")


@pytest.fixture(scope="module")
def many_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    """Twenty tiny clips with distinct content (identity is content), made in one encode."""
    root = tmp_path_factory.mktemp("many")
    base = root / "base.mp4"
    subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25:duration=1",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(base),
        ],
        check=True,
    )
    out = []
    for i in range(JOBS):
        clip = root / f"clip{i:02d}.mp4"
        subprocess.run(
            [
                FFMPEG,
                "-hide_banner",
                "-loglevel",
                "error",
                "-i",
                str(base),
                "-c",
                "copy",
                "-metadata",
                f"comment=clip {i}",
                str(clip),
            ],
            check=True,
        )
        out.append(Clip(clip, 1.0, 120, True))
    return out


@pytest.fixture(params=["aws", "local"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, request.param)


def test_twenty_jobs_over_three_workers_each_done_once(
    cli: Cli, tmp_path: Path, many_clips: list[Clip]
) -> None:
    # aws: each worker with its own state dir, as on its own machine; local: one state dir.
    workers = [
        cli.start(
            f"worker{i}",
            "worker",
            state_dir=tmp_path / f"worker{i}" if cli.backend == "aws" else None,
        )
        for i in range(WORKERS)
    ]
    for w in workers:
        w.wait_for_log("waiting for jobs")
    out = tmp_path / "out"

    result = cli.run("transcode", *(c.path for c in many_clips), "-o", out, "--workers", "0")

    assert result.returncode == 0, (result, *map(str, workers))
    assert f"{JOBS} done, 0 failed" in result.stdout
    assert names(out) == sorted(c.path.stem + ".mp4" for c in many_clips)
    for clip in many_clips:
        check_output(out / (clip.path.stem + ".mp4"), clip)
    for w in workers:
        w.interrupt()
    for w in workers:
        assert w.wait_exit() == 0, w
    done = Counter(job for w in workers for job in _DONE.findall(w.stderr))
    assert len(done) == JOBS and set(done.values()) == {1}, done
    per_worker = [len(_DONE.findall(w.stderr)) for w in workers]
    assert sum(1 for n in per_worker if n) >= 2, f"one worker did everything: {per_worker}"
    cli.assert_no_leftovers()
