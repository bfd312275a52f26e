"""What a library is made of, before and after: the done files by codec and resolution,
as they came in (the sources' probe facts) and as they went out (each output's preset and
picture size), for ``status`` and the dashboard.

Two grouped queries over the journal, whatever its size: SQLite groups the rows by codec
and picture size, and only those few groups come back to be named here.
"""

from __future__ import annotations

import msgspec

from .db import Database
from .errors import ConfigError
from .media import presets
from .story import CURRENT

#: Named resolutions by the height of a 16:9 picture of the same width or height, largest
#: first (a 1920x800 film is 1080p, as its player would say).
_CLASSES = ((1800, "2160p"), (1200, "1440p"), (900, "1080p"), (600, "720p"), (400, "480p"))
#: What a file or an output without a picture is listed as.
NO_PICTURE = "no picture"

#: (codec, resolution) -> [files, bytes], while they are added up.
_Shelves = dict[tuple[str, str], list[int]]


class Shelf(msgspec.Struct, frozen=True):
    """Files of one codec and resolution class, and their bytes in all."""

    codec: str
    resolution: str
    files: int
    bytes: int


class Library(msgspec.Struct, frozen=True):
    """``before``: the done (and partly done) files' sources; ``after``: their outputs;
    each with the most files first."""

    before: list[Shelf]
    after: list[Shelf]


def resolution(width: object, height: object) -> str:
    """``1080p`` and the like; ``no picture`` for sound alone."""
    if not isinstance(height, int) or not height:
        return NO_PICTURE
    tall = max(height, (width * 9 // 16) if isinstance(width, int) else 0)
    for least, name in _CLASSES:
        if tall >= least:
            return name
    return "SD"


def library(db: Database, catalog: presets.Catalog = presets.DEFAULT_CATALOG) -> Library:
    """The journal's library (``db``: the journal's database). ``catalog``: where the
    outputs' presets are looked up for their codecs (one not found is named by its id)."""
    done = f"f.state = 'CLEANED' AND {CURRENT.replace('files.', 'f.')}"
    before = db.query(
        "SELECT json_extract(f.media, '$.video_codec'), json_extract(f.media, '$.audio_codec'),"
        " json_extract(f.media, '$.width'), json_extract(f.media, '$.height'),"
        f" COUNT(*), SUM(f.size) FROM files AS f WHERE {done} GROUP BY 1, 2, 3, 4"
    )
    after = db.query(
        "SELECT o.preset, o.width, o.height, COUNT(*), COALESCE(SUM(o.size), 0)"
        " FROM outputs AS o JOIN files AS f ON f.id = o.file_id"
        f" WHERE o.status = 'done' AND {done} GROUP BY 1, 2, 3"
    )
    shelves: _Shelves = {}
    for video, audio, width, height, n, size in before:
        codec = video if isinstance(video, str) else audio if isinstance(audio, str) else None
        _add(shelves, codec or "unknown", resolution(width, height), n, size)
    first = _sorted(shelves)
    shelves = {}
    for preset_id, width, height, n, size in after:
        _add(shelves, _output_codec(catalog, str(preset_id)), resolution(width, height), n, size)
    return Library(before=first, after=_sorted(shelves))


def _output_codec(catalog: presets.Catalog, preset_id: str) -> str:
    try:
        preset = catalog.get(preset_id)
    except ConfigError:  # a custom preset this config no longer defines
        return f"preset {preset_id}"
    if preset.kind in ("video", "hls"):
        return presets.codec_name(preset.video_codec) or preset.kind
    if preset.kind == "audio":
        return presets.codec_name(preset.audio_codec) or preset.kind
    return preset.kind  # pictures: a poster, thumbnails


def _add(shelves: _Shelves, codec: str, res: str, n: int, size: object) -> None:
    shelf = shelves.setdefault((codec, res), [0, 0])
    shelf[0] += int(n)
    shelf[1] += int(size) if isinstance(size, int) else 0


def _sorted(shelves: _Shelves) -> list[Shelf]:
    found = [Shelf(codec, res, n, size) for (codec, res), (n, size) in shelves.items()]
    return sorted(found, key=lambda s: (-s.files, -s.bytes, s.codec, s.resolution))
