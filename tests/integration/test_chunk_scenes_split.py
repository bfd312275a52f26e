"""``--chunk-scenes`` through a worker: the file's job carries ``chunkScenes``, the worker
that splits it cuts at the scene changes' keyframes, and the parts it sends carry neither
``chunkSeconds`` nor ``chunkScenes`` (a part is never split again)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from test_worker import detected, make_worker, send_job

from autotranscode.backends import Backend
from autotranscode.deploy import open_backend
from autotranscode.media.transcoder import find_ffmpeg
from autotranscode.messages import parse_job
from autotranscode.settings import Settings

from conftest import backend_settings, make_scene_clip

#: Scenes of 3.4, 3.72, 3.48, 2.6, 4.32 and 3.48 s at 25 frames a second.
SCENE_FRAMES = (85, 93, 87, 65, 108, 87)


@pytest.fixture
def local(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return backend_settings(request, tmp_path, "local")


@pytest.fixture
def backend(local: Settings) -> Iterator[Backend]:
    opened = open_backend(local)
    try:
        yield opened
    finally:
        opened.close()


def test_the_split_cuts_at_scene_changes_and_its_parts_do_not_ask_again(
    local: Settings, backend: Backend, tmp_path: Path
) -> None:
    clip = make_scene_clip(find_ffmpeg(), tmp_path / "scenes.mp4", SCENE_FRAMES, 25)
    job = send_job(backend, clip, detected=detected(clip))
    [sent] = backend.jobs.receive(wait=5)
    backend.jobs.delete(sent)
    chunked = msgspec.structs.replace(job, chunk_seconds=4.0, chunk_scenes=True)
    backend.jobs.send(chunked.to_json())
    [split] = backend.jobs.receive(wait=5)
    assert parse_job(split.body).chunk_scenes is True
    make_worker(local, backend).handle(split)
    parts = [parse_job(m.body) for m in backend.jobs.receive(wait=5, max_messages=10)]
    starts = sorted(p.part.start for p in parts if p.part is not None and p.part.kind == "chunk")
    # Plain cuts would be 0, 4, 8, 12, 16 and 18; 13.2 is outside 14.6's window of 1 s.
    assert starts == pytest.approx([0.0, 3.4, 7.12, 10.6, 14.0, 17.52])
    assert all(p.chunk_scenes is None and p.chunk_seconds is None for p in parts)
