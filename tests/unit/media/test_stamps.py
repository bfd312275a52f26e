"""Stamps and preset digests, on bytes and folders made here."""

from __future__ import annotations

import re
from pathlib import Path

from autotranscode.media import presets
from autotranscode.media.stamps import (
    Stamp,
    read_jpeg_comment,
    read_sidecar,
    write_jpeg_comment,
    write_sidecar,
)

#: The smallest JPEG-shaped bytes the reader walks: SOI, an APP0 segment, SOS, data, EOI.
JPEG = b"\xff\xd8\xff\xe0\x00\x04ab\xff\xda\x00\x02\x00\x11\x22\xff\xd9"


def test_a_jpeg_comment_round_trips_and_the_picture_bytes_stay(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    path.write_bytes(JPEG)
    stamp = Stamp("ab" * 32, "0123456789abcdef")

    write_jpeg_comment(path, stamp)

    assert read_jpeg_comment(path) == stamp
    data = path.read_bytes()
    assert data.startswith(b"\xff\xd8\xff\xfe") and data.endswith(JPEG[2:])
    assert [p.name for p in tmp_path.iterdir()] == ["p.jpg"]


def test_an_unstamped_jpeg_has_no_stamp(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    path.write_bytes(JPEG)
    assert read_jpeg_comment(path) is None
    path.write_bytes(b"not a jpeg")
    assert read_jpeg_comment(path) is None


def test_a_sidecar_round_trips(tmp_path: Path) -> None:
    stamp = Stamp(None, "0123456789abcdef")
    write_sidecar(tmp_path, stamp)
    assert read_sidecar(tmp_path) == stamp
    assert read_sidecar(tmp_path / "missing") is None


def test_tags_are_read_whatever_their_case() -> None:
    tags = {"AUTOTRANSCODE_SOURCE": "aa", "AUTOTRANSCODE_PRESET": "bb", "ENCODER": "x"}
    assert Stamp.from_tags(tags) == Stamp("aa", "bb")
    assert Stamp.from_tags({"encoder": "x"}) is None


def test_the_digest_follows_what_changes_the_output_only() -> None:
    base = presets.CATALOG["web-720p"]
    digest = presets.digest(base)
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert presets.digest(presets.build("mine", {"extends": "web-720p"})) == digest
    assert presets.digest(presets.build("mine", {"extends": "web-720p", "crf": 30})) != digest
    assert len({presets.digest(p) for p in presets.CATALOG.values()}) == len(presets.CATALOG)
