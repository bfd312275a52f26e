"""The job a file's record asks for: the one place the pipeline's jobs are built.

It carries what a worker (or MediaConvert) needs and nothing it must look up: the stored
input, the output keys the journal holds, each preset's spec, the topic to answer on, and
in its metadata the file id (how a notice finds its file), this client and the content
hash the outputs are stamped with.
"""

from __future__ import annotations

import os

from .backends import Backend
from .errors import MediaError
from .journal import FileRecord
from .media import presets, recipe
from .media.probe import MediaInfo
from .messages import DetectedProperties, Input, Job, JobOutput


def job_for(
    record: FileRecord,
    names: dict[str, str],
    pipeline_id: str,
    backend: Backend,
    source: MediaInfo | None,
    catalog: presets.Catalog,
    chunk_seconds: float | None = None,
    chunk_scenes: bool = False,
) -> Job:
    """The job for ``record``: ``names``, the output keys (in preset order) -> file names;
    ``source``, a fresh probe of the upload, which spares the worker a probe of its own
    (None on a resume: the file may differ from what was uploaded, so the worker probes);
    ``chunk_seconds``: a long video is cut into chunks for many workers (``--chunk-seconds``),
    at scene changes where near with ``chunk_scenes`` (``--chunk-scenes``)."""
    assert record.job_id and record.input_key
    detected = DetectedProperties.of(source, record.size) if source else None
    wanted = [catalog.get(p) for p in record.presets]
    return Job(
        job_id=record.job_id,
        pipeline_id=pipeline_id,
        input=Input(bucket=backend.store.input_bucket, key=record.input_key, detected=detected),
        output_bucket=backend.store.output_bucket,
        outputs=tuple(
            JobOutput(
                key=key,
                preset_id=p.id,
                preset_spec=dict(p.spec) if p.spec is not None else None,
            )
            for key, p in zip(names, wanted, strict=True)
        ),
        topic=backend.topic.arn,
        user_metadata=_metadata(record, backend.client_id),
        chunk_seconds=chunk_seconds,
        chunk_scenes=True if chunk_seconds is not None and chunk_scenes else None,
    )


def _metadata(record: FileRecord, client_id: str | None) -> dict[str, str]:
    meta = {
        "fileId": record.id,
        # JSON holds text only: a name that is not UTF-8 goes with \xNN escapes.
        "source": os.fsencode(record.name).decode("utf-8", "backslashreplace")[:256],
    }
    if client_id:  # workers address the job's notifications to us (see Topic.publish)
        meta["clientId"] = client_id
    if record.content_hash:  # for workers to stamp the outputs with; none from an old release
        meta["contentHash"] = record.content_hash
    return meta


def check_presets(catalog: presets.Catalog, record: FileRecord, source: MediaInfo) -> None:
    """MediaError if no preset of ``record`` can make anything of ``source``; if only some
    cannot (an audio preset on a file without audio), the job is sent all the same: its
    answer says so of each of those, and the others are made."""
    problems = []
    for preset in map(catalog.get, record.presets):
        try:
            recipe.ffmpeg_args(preset, source, record.path, record.path)
        except MediaError as exc:
            problems.append(exc)
    if problems and len(problems) == len(record.presets):
        raise problems[0]
