"""``autotranscode transcode`` on HDR and interlaced sources, as a user runs it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from cli_harness import Cli, open_cli

from autotranscode.media.probe import probe

from conftest import FFMPEG


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


def _interlaced_frames(path: Path) -> int:
    run = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", str(path), "-vf", "idet", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    tff, bff = re.findall(r"Multi frame detection: TFF:\s*(\d+)\s+BFF:\s*(\d+)", run.stderr)[-1]
    return int(tff) + int(bff)


def test_hdr_and_unflagged_interlaced_sources_come_out_right_and_the_log_says_why(
    cli: Cli, tmp_path: Path, colour_clips: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    sources = [colour_clips["hdr10.mp4"], colour_clips["interlaced unflagged.ts"]]

    result = cli.run("transcode", *sources, "--out", out)

    assert result.returncode == 0, result
    hdr = probe(out / "hdr10.mp4", detail=True)
    assert (hdr.color_primaries, hdr.color_transfer, hdr.color_space) == ("bt709",) * 3
    interlaced = out / "interlaced unflagged.mp4"
    assert probe(interlaced, detail=True).field_order == "progressive"
    assert _interlaced_frames(interlaced) == 0
    logs = "".join(p.read_text(encoding="utf-8") for p in (cli.state_dir / "logs").glob("*.log"))
    assert "idet: interlaced, top field first" in logs
    assert "interlaced source (tt): deinterlaced, a frame per frame" in logs
    assert "HDR10 (PQ) source tone-mapped to BT.709 SDR" in logs


def test_a_custom_preset_deinterlaces_at_double_rate(
    cli: Cli, tmp_path: Path, colour_clips: dict[str, Path]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[presets.sports]\nextends = "web-720p"\ndeinterlace = "double-rate"\n')
    out = tmp_path / "out"

    result = cli.run(
        "transcode", colour_clips["interlaced tff.ts"], "--out", out, "--config", config,
        "--preset", "sports",
    )  # fmt: skip

    assert result.returncode == 0, result
    [made] = list(out.iterdir())
    with av.open(str(made)) as container:
        assert sum(1 for p in container.demux(video=0) if p.size) == 100
    assert _interlaced_frames(made) == 0


def test_a_bad_deinterlace_value_is_one_line_in_our_words(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[presets.sports]\nextends = "web-720p"\ndeinterlace = "yes"\n')

    result = cli.run("presets", "show", "sports", "--config", config)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert 'deinterlace must be "frame-rate" or "double-rate"' in result.stderr
