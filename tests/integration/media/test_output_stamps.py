"""Every catalog preset's output carries its source's content hash and its preset digest,
read back from the output itself (PyAV tags, a JPEG comment, a folder's sidecar)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autotranscode import outbox
from autotranscode.media import presets
from autotranscode.media.probe import probe, read_stamp
from autotranscode.media.stamps import Stamp
from autotranscode.media.transcoder import find_ffmpeg, transcode

from conftest import Clip

SOURCE = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("preset_id", sorted(presets.CATALOG))
def test_every_catalog_output_carries_its_stamp(
    preset_id: str, clips: dict[str, Clip], tmp_path: Path
) -> None:
    preset = presets.CATALOG[preset_id]
    clip = clips["h264.mp4"]
    stamp = Stamp(SOURCE, presets.digest(preset))
    out = tmp_path / f"o{preset.extension}"

    transcode(find_ffmpeg(), preset, probe(clip.path), clip.path, out, stamp=stamp)

    assert read_stamp(out) == stamp


def test_a_job_without_a_content_hash_stamps_the_digest_alone(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    preset = presets.CATALOG["web-720p"]
    clip = clips["h264.mp4"]
    out = tmp_path / "o.mp4"
    stamp = Stamp(None, presets.digest(preset))

    transcode(find_ffmpeg(), preset, probe(clip.path), clip.path, out, stamp=stamp)

    assert read_stamp(out) == stamp


def test_an_output_is_found_under_its_name_or_a_numbered_variant(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    preset = presets.CATALOG["audio-aac"]
    clip = clips["tone.m4a"]
    digest = presets.digest(preset)
    made = tmp_path / "made.m4a"
    transcode(find_ffmpeg(), preset, probe(clip.path), clip.path, made, stamp=Stamp(SOURCE, digest))
    out = tmp_path / "out"
    out.mkdir()
    shutil.copyfile(clip.path, out / "tone.m4a")  # the name is taken by a file not ours
    shutil.copyfile(made, out / "tone (2).m4a")

    assert outbox.already_delivered(out, [("tone.m4a", digest)], SOURCE) == [out / "tone (2).m4a"]
    assert outbox.already_delivered(out, [("tone.m4a", digest)], "f" * 32) is None
    other = presets.digest(presets.CATALOG["audio-mp3"])
    assert outbox.already_delivered(out, [("tone.m4a", other)], SOURCE) is None
