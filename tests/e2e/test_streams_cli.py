"""A user's view of the streams kept: every language by default, ``--audio first`` (or the
config file's ``audio``) for the first alone, and the file's log telling what was left out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import BACKENDS, Cli, open_cli

from autotranscode.media.probe import probe


@pytest.fixture(params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, request.param)


@pytest.fixture
def local_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


def test_every_language_by_default_and_the_first_alone_when_asked(
    cli: Cli, stream_clips: dict[str, Path], tmp_path: Path
) -> None:
    src = stream_clips["languages.mkv"]
    everything = cli.run("transcode", src, "-o", tmp_path / "all")
    assert everything.returncode == 0, everything.stderr
    first = cli.run("transcode", src, "-o", tmp_path / "first", "--audio", "first")
    assert first.returncode == 0, first.stderr

    kept = probe(tmp_path / "all" / "languages.mp4")
    assert [t.language for t in kept.audio_tracks] == ["eng", "fra"]
    assert [t.language for t in kept.subtitle_tracks] == ["eng"]
    alone = probe(tmp_path / "first" / "languages.mp4")
    assert [t.language for t in alone.audio_tracks] == ["eng"]


def test_the_config_file_chooses_the_audio_and_a_bad_value_is_one_line(
    local_cli: Cli, stream_clips: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('audio = "first"\n')
    done = local_cli.run(
        "transcode", stream_clips["languages.mkv"], "-o", tmp_path / "o", "--config", config
    )
    assert done.returncode == 0, done.stderr
    assert len(probe(tmp_path / "o" / "languages.mp4").audio_tracks) == 1

    config.write_text('audio = "some"\n')
    bad = local_cli.run(
        "transcode", stream_clips["languages.mkv"], "-o", tmp_path / "p", "--config", config
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "--audio: one of all, first, not 'some'" in bad.stderr
