"""A chunked job's messages: ``chunkSeconds`` and ``part`` checked on receipt (a forged or
oversized part is refused before anything is read), a part checked against its stored plan,
and the client's sum of the parts' progress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autotranscode import settings
from autotranscode.engines.plans import Plan, PlannedChunk, check_part
from autotranscode.errors import ConfigError, MessageError
from autotranscode.media.probe import MediaInfo
from autotranscode.messages import MAX_CHUNKS, Input, Job, JobOutput, Part, parse_job
from autotranscode.parts import PartsProgress

TOPIC = "arn:aws:sns:us-east-1:123456789012:autotranscode-notifications"


def _job(**overrides: Any) -> Job:
    values: dict[str, Any] = {
        "job_id": "job-0001",
        "pipeline_id": "pipe-1",
        "input": Input(bucket="in", key="inputs/abc/clip.mp4"),
        "output_bucket": "out",
        "outputs": (JobOutput(key="outputs/job-0001/clip.web-720p.mp4", preset_id="web-720p"),),
        "topic": TOPIC,
    }
    values.update(overrides)
    return Job(**values)


def _body(part: dict[str, Any] | None = None, **fields: Any) -> str:
    data: dict[str, Any] = json.loads(_job().to_json())
    if part is not None:
        data["part"] = part
    data.update(fields)
    return json.dumps(data)


def test_a_part_keeps_the_file_s_job_id_and_names_itself() -> None:
    chunk = _job(part=Part(kind="chunk", index=7, count=9, start=35.0, end=40.0))
    rest = _job(part=Part(kind="rest", count=9))
    assert parse_job(chunk.to_json()) == chunk
    assert (chunk.job_id, chunk.task, rest.task) == ("job-0001", "job-0001-c0007", "job-0001-rest")
    assert '"jobId":"job-0001"' in chunk.to_json()  # queues find a file's parts by its id
    assert _job(chunk_seconds=60.0).to_json().count('"chunkSeconds":60.0') == 1
    assert "chunkSeconds" not in _job().to_json() and "part" not in _job().to_json()


@pytest.mark.parametrize(
    ("part", "fields"),
    [
        ({"kind": "chunk", "index": 9, "count": 9}, {}),  # index past the count
        ({"kind": "chunk", "index": -1, "count": 9}, {}),
        ({"kind": "chunk", "index": 0, "count": MAX_CHUNKS + 1}, {}),
        ({"kind": "chunk", "index": 0, "count": 0}, {}),
        ({"kind": "chunk", "index": 1, "count": 9, "start": 10.0, "end": 5.0}, {}),
        ({"kind": "chunk", "index": 1, "count": 9, "start": -5.0}, {}),
        ({"kind": "chunk", "index": 1, "count": 9, "start": 1e12}, {}),
        ({"kind": "rest", "index": 3, "count": 9}, {}),  # only chunks have an index
        ({"kind": "join", "count": 9, "start": 3.0}, {}),
        ({"kind": "split", "count": 9}, {}),
        ({"kind": "chunk", "count": 9, "redo": 1000}, {}),
        ("c0001", {}),
        (None, {"chunkSeconds": 1.0}),
        (None, {"chunkSeconds": 4000}),
        (None, {"chunkSeconds": "60"}),
    ],
)
def test_forged_parts_and_chunk_lengths_are_refused(part: Any, fields: dict[str, Any]) -> None:
    with pytest.raises(MessageError):
        parse_job(_body(part, **fields))


def test_a_part_writes_only_beside_its_job_s_outputs() -> None:
    elsewhere = (JobOutput(key="outputs/other-job/clip.web-720p.mp4", preset_id="web-720p"),)
    body = _body({"kind": "rest", "count": 2}, outputs=[json.loads(elsewhere[0].to_json())])
    with pytest.raises(MessageError, match="outside"):
        parse_job(body)
    parse_job(_body(outputs=[json.loads(elsewhere[0].to_json())]))  # a whole job: as before


def test_a_part_must_be_one_its_stored_plan_made() -> None:
    plan = Plan(
        chunks=(PlannedChunk(0, 0.0, 5.0), PlannedChunk(1, 5.0, None)),
        chunked=(0,),
        source=MediaInfo(duration=10.0, format_name="mov,mp4"),
        chunk_seconds=5.0,
    )
    check_part(Part(kind="chunk", index=1, count=2, start=5.0), plan)
    check_part(Part(kind="rest", count=2), plan)
    for forged in (
        Part(kind="chunk", index=1, count=2, start=4.0),
        Part(kind="chunk", index=1, count=2, start=5.0, end=9.0),
        Part(kind="chunk", index=0, count=2, start=0.0),  # the plan's first chunk ends at 5
        Part(kind="join", count=3),
    ):
        with pytest.raises(MessageError):
            check_part(forged, plan)


def test_a_chunked_file_s_progress_is_the_mean_of_its_parts() -> None:
    progress = PartsProgress()
    assert progress.heard("f", "c0000", "5", 0.5, "host:1/w0") == (
        pytest.approx(0.1),
        "5 parts: 0 done, c0000 on host:1/w0, 4 waiting",
    )
    progress.heard("f", "c0001", "5", 1.0, "host:2/w1")
    fraction, line = progress.heard("f", "c0000", "5", 1.0, "host:1/w0")
    assert fraction == pytest.approx(0.4) and line == "5 parts: 2 done, 3 waiting"
    for n in range(2, 9):  # a part beyond the count it said is not taken
        fraction, line = progress.heard("f", f"c000{n}", "5", 0.5, "h")
    assert fraction == pytest.approx(0.7)
    assert line == "5 parts: 2 done, c0002 on h, c0003 on h, c0004 on h"
    assert progress.heard("g", "rest", "bogus", 0.5, None)[1] == "1 parts: 0 done, rest on ?"
    assert progress.heard("f", "join", "5", 0.25, "h") == (0.25, "5 parts done; joining on h")
    progress.forget("f")
    assert progress.heard("f", "c0000", "2", 0.0, "h")[0] == 0.0


def test_chunk_seconds_is_a_setting_bounded_like_the_job_field(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("chunk-seconds = 60\n")
    assert settings.build(settings.load_file(config)).chunk_seconds == 60.0
    assert settings.build({}).chunk_seconds is None  # off unless asked for
    for wrong in (1, 4000, "often"):
        with pytest.raises(ConfigError, match="chunk"):
            settings.build({"chunk_seconds": wrong})
