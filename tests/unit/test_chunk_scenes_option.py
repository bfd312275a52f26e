"""``--chunk-scenes``: a setting (flag, config file) and a job's ``chunkScenes``, a boolean
checked on receipt like every other field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autotranscode import settings
from autotranscode.errors import ConfigError, MessageError
from autotranscode.messages import Input, Job, JobOutput, parse_job

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


def test_chunk_scenes_travels_in_the_job_only_when_asked_for() -> None:
    job = _job(chunk_seconds=60.0, chunk_scenes=True)
    assert '"chunkScenes":true' in job.to_json()
    assert parse_job(job.to_json()) == job
    assert "chunkScenes" not in _job(chunk_seconds=60.0).to_json()  # an older worker's job


@pytest.mark.parametrize("wrong", ["true", 1, "yes", {}])
def test_a_chunk_scenes_that_is_not_a_boolean_is_refused(wrong: Any) -> None:
    body = json.loads(_job(chunk_seconds=60.0).to_json())
    body["chunkScenes"] = wrong
    with pytest.raises(MessageError):
        parse_job(json.dumps(body))


def test_chunk_scenes_is_a_setting_off_by_default(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("chunk-seconds = 60\nchunk-scenes = true\n")
    assert settings.build(settings.load_file(config)).chunk_scenes is True
    assert settings.build({}).chunk_scenes is False
    with pytest.raises(ConfigError, match="chunk-scenes"):
        settings.build({"chunk_scenes": "often"})
