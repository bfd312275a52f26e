"""A remuxed output end to end on the local backend: the worker says "remuxed" and why, the
journal keeps it, and ``status`` (the model behind ``--json`` and the dashboard) and the
file's log tell it."""

from __future__ import annotations

from pathlib import Path

import msgspec

from autotranscode import status
from autotranscode.journal import FileState
from autotranscode.media import presets
from autotranscode.media.probe import probe, read_stamp
from autotranscode.media.transcoder import find_ffmpeg, transcode
from autotranscode.service import Service
from autotranscode.settings import build

from conftest import Clip

WAIT = 60


def test_our_output_dropped_back_in_is_remuxed_and_status_says_why(
    tmp_path: Path, clips: dict[str, Clip]
) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    ours = drop / "ours.mp4"
    web = presets.CATALOG["web-720p"]
    src = clips["h264.mp4"].path
    transcode(find_ffmpeg(), web, probe(src, detail=True), src, ours)
    first = read_stamp(ours)
    settings = build({"state_dir": tmp_path / "state", "preset": ("web-720p",), "workers": 1})
    with Service(settings, out) as service:
        service.pipeline.start()
        fid = service.pipeline.add(ours)
        assert fid and service.pipeline.wait([fid], timeout=WAIT)
        assert service.pipeline.outcome(fid).state == FileState.CLEANED
        record = service.journal.get(fid)
        assert record is not None
        report = status.file_status(service.journal, settings.state_dir, record)
    [made] = report.outputs
    assert made.status == "done" and made.action == "remuxed"
    assert made.note and made.note.startswith("already h264 high, 320x240, yuv420p")
    assert made.path and made.size == Path(made.path).stat().st_size
    raw = msgspec.json.decode(status.to_json(report))
    assert raw["outputs"][0]["action"] == "remuxed"
    assert report.log and "remuxed (streams copied)" in Path(report.log).read_text()
    # Stamped anew: the output says which source and preset made it.
    again = read_stamp(Path(made.path))
    assert again is not None and again.preset == presets.digest(web)
    assert first is None and again.source == record.content_hash
