"""What an output says about where it came from: its source's content hash and preset digest.

The journal is the record of what was done, but it can be lost or damaged; the outputs
themselves then still tell what they are, so a restart does not transcode again into
``name (1).mp4`` what OUT already holds, and ``journal rebuild`` can start a new journal
from OUT. Each format carries the stamp where it keeps such things:

- audio and video (MP4/MOV/M4A, Matroska/WebM, MP3): container metadata tags, written by
  ffmpeg (``recipe.ffmpeg_args``) and read back with PyAV (``media.read_stamp``);
- a JPEG picture: a COM (comment) segment right after its start marker, added here;
- a folder (HLS, thumbnails): a small hidden JSON file inside it, written here.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

#: Metadata tag names (MP4 keys, Matroska tags, ID3 TXXX frames).
SOURCE_TAG = "autotranscode_source"
PRESET_TAG = "autotranscode_preset"
#: The stamp of a folder output, inside it (hidden: players and listings pass it by).
SIDECAR = ".autotranscode.json"
#: A JPEG comment that is our stamp starts so; the rest is the sidecar's JSON.
_COM_PREFIX = b"autotranscode:"
_SOI = b"\xff\xd8"
_COM = 0xFE
_SOS = 0xDA
#: Markers that stand alone, without a length (RSTn, SOI, TEM).
_STANDALONE = frozenset({*range(0xD0, 0xD8), 0xD8, 0x01})


class Stamp(NamedTuple):
    """``source``: the content hash of the input (None when the job did not say it);
    ``preset``: ``presets.digest`` of the preset that made the output."""

    source: str | None
    preset: str

    def tags(self) -> dict[str, str]:
        tags = {PRESET_TAG: self.preset}
        if self.source:
            tags[SOURCE_TAG] = self.source
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Stamp | None:
        """From metadata, whatever case the container gave the names (Matroska: upper)."""
        lower = {str(k).lower(): str(v) for k, v in tags.items()}
        preset = lower.get(PRESET_TAG)
        if not preset:
            return None
        return cls(lower.get(SOURCE_TAG) or None, preset)


def write_sidecar(folder: Path, stamp: Stamp) -> None:
    (folder / SIDECAR).write_text(json.dumps(stamp.tags(), sort_keys=True) + "\n")


def read_sidecar(folder: Path) -> Stamp | None:
    try:
        data = json.loads((folder / SIDECAR).read_text())
    except (OSError, ValueError):
        return None
    return Stamp.from_tags(data) if isinstance(data, dict) else None


def write_jpeg_comment(path: Path, stamp: Stamp) -> None:
    """Insert a COM segment after the start marker (ffmpeg's image muxer writes no tags).

    The picture is rewritten beside itself and renamed over: never left half stamped.
    """
    data = path.read_bytes()
    if not data.startswith(_SOI):
        raise ValueError(f"{path.name} is not a JPEG")
    payload = _COM_PREFIX + json.dumps(stamp.tags(), sort_keys=True).encode()
    segment = bytes([0xFF, _COM]) + (len(payload) + 2).to_bytes(2, "big") + payload
    tmp = path.with_name(f".{path.name}.stamp")
    tmp.write_bytes(_SOI + segment + data[2:])
    os.replace(tmp, path)


def read_jpeg_comment(path: Path) -> Stamp | None:
    """Our COM segment among the header segments (those before the image data)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return None
    if not head.startswith(_SOI):
        return None
    pos = 2
    while pos + 4 <= len(head) and head[pos] == 0xFF:
        marker = head[pos + 1]
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == _SOS:
            return None
        length = int.from_bytes(head[pos + 2 : pos + 4], "big")
        body = head[pos + 4 : pos + 2 + length]
        if marker == _COM and body.startswith(_COM_PREFIX):
            try:
                data = json.loads(body[len(_COM_PREFIX) :])
            except ValueError:
                return None
            return Stamp.from_tags(data) if isinstance(data, dict) else None
        pos += 2 + length
    return None
