"""The running client: its parts up between enter and exit, nothing left after, one per
state dir, and a start that fails half-way undone. Real local backend, ffmpeg and SQLite."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from autotranscode import settings as settings_mod
from autotranscode.errors import ConfigError
from autotranscode.journal import FileState
from autotranscode.procs import CRASHES_FOLDER
from autotranscode.service import Service, StateDirBusy, client_lock, serving
from autotranscode.settings import Settings

from conftest import Clip, check_output

WAIT = 60.0
WORKER_THREAD = re.compile(r"autotranscode-worker-\d+")


def local_settings(tmp_path: Path, **values: object) -> Settings:
    return settings_mod.build({"backend": "local", "state_dir": tmp_path / "state", **values})


def worker_threads() -> list[str]:
    """The in-process workers' own threads (each may run helpers of its own beside it)."""
    return sorted(t.name for t in threading.enumerate() if WORKER_THREAD.fullmatch(t.name))


def crash_record(s: Settings) -> Path:
    return s.state_dir / CRASHES_FOLDER / f"{os.getpid()}.log"


def test_the_parts_are_up_inside_and_stopped_after(tmp_path: Path, clips: dict[str, Clip]) -> None:
    s = local_settings(tmp_path, workers=2)
    out = tmp_path / "out"
    clip = clips["h264.mp4"]
    with Service(s, out) as service:
        assert worker_threads() == ["autotranscode-worker-1", "autotranscode-worker-2"]
        assert crash_record(s).exists(), "in place before any worker runs ffmpeg"
        pipe = service.pipeline
        pipe.start()
        fid = pipe.add(clip.path)
        assert pipe.wait([fid], timeout=WAIT)
        assert pipe.outcome(fid).state == FileState.CLEANED
    assert worker_threads() == []  # and the suite's leak check sees no other thread left
    assert not crash_record(s).exists()
    with pytest.raises(RuntimeError, match="not running"):
        service.pipeline  # noqa: B018 - a stopped service hands out no parts
    check_output(out / "h264.mp4", clip)
    # Started again on the same state dir, the journal it closed knows the file.
    with Service(s, out) as again:
        assert again.journal.get(fid).state == FileState.CLEANED  # type: ignore[union-attr]


def test_a_second_client_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    s = local_settings(tmp_path, workers=0)
    with Service(s, tmp_path / "out") as first:
        with pytest.raises(StateDirBusy, match="another autotranscode"):
            Service(s, tmp_path / "out2").__enter__()
        with pytest.raises(StateDirBusy), client_lock(s.state_dir):
            pass
        first.pipeline.start()  # the refusal took nothing from the first
        # Another state dir is another client.
        with Service(local_settings(tmp_path / "other", workers=0), tmp_path / "out3"):
            pass
    with Service(s, tmp_path / "out"):  # the lock went with the first
        pass


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workers": 1, "ffmpeg": "/nonexistent/ffmpeg"}, "not found"),  # after the journal
        ({"engine": "mediaconvert"}, "needs --backend aws"),  # after the workers are made
    ],
    ids=["no ffmpeg", "bad engine"],
)
def test_a_failure_while_starting_stops_what_had_started(
    tmp_path: Path, values: dict[str, object], message: str
) -> None:
    s = local_settings(tmp_path, **values)
    service = Service(s, tmp_path / "out")
    with pytest.raises(ConfigError, match=message):
        service.__enter__()
    assert worker_threads() == []
    assert not crash_record(s).exists()
    with pytest.raises(RuntimeError, match="not running"):
        service.journal  # noqa: B018
    with client_lock(s.state_dir):  # released
        pass
    with Service(local_settings(tmp_path, workers=0), tmp_path / "out") as ok:
        assert ok.journal.counts() == {}


def test_the_worker_service_alone_needs_no_lock_and_stops_its_workers(tmp_path: Path) -> None:
    """`autotranscode worker` beside a client on the same state dir (local queues)."""
    s = local_settings(tmp_path, workers=2)
    with Service(local_settings(tmp_path, workers=0), tmp_path / "out"), serving(s) as pool:
        assert len(pool.workers) == 2
        assert worker_threads() == ["autotranscode-worker-1", "autotranscode-worker-2"]
    assert worker_threads() == []
