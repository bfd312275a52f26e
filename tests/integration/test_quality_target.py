"""``--quality vmaf:N`` through the whole flow (local backend, real ffmpeg and libvmaf): a
CRF searched per file, the output's VMAF recorded, and checked here by a libvmaf run of
our own over every frame, not by the search's word."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from autotranscode.engines.tuning import SEARCH_SHARE, Tuning
from autotranscode.errors import TranscodeError
from autotranscode.journal import FileState
from autotranscode.media import presets, quality, runner
from autotranscode.media.probe import probe
from autotranscode.media.transcoder import find_ffmpeg, transcode
from autotranscode.service import Service
from autotranscode.settings import Settings

from conftest import FFMPEG, backend_settings

TARGET = 93.0
WAIT = 120
#: Two pictures that need different bit budgets for the same VMAF: a clean synthetic one,
#: and the same under heavy moving grain.
_SOURCES = {
    "clean.mkv": "testsrc2=size=320x240:rate=25:duration=2",
    "grain.mkv": "testsrc2=size=320x240:rate=25:duration=2,noise=alls=24:allf=t",
}


_GENERATE = (FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i")
_LOSSLESS = ("-c:v", "libx264", "-preset", "ultrafast", "-qp", "0")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("quality")
    for name, graph in _SOURCES.items():
        subprocess.run(
            [*_GENERATE, graph, *_LOSSLESS, str(root / name)],
            check=True,
        )
    return {name: root / name for name in _SOURCES}


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    s = backend_settings(request, tmp_path, "local")
    yield msgspec.structs.replace(s, preset=("web-720p",), quality=f"vmaf:{TARGET:g}")


def full_vmaf(output: Path, source: Path) -> float:
    """libvmaf over every frame of ``output`` against ``source`` (same size here)."""
    graph = (
        "[0:v]format=yuv420p,settb=1/1000,setpts=N[d];[1:v]format=yuv420p,settb=1/1000,"
        "setpts=N[r];[d][r]libvmaf"
    )
    run = subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-i",
            str(output),
            "-i",
            str(source),
            *("-lavfi", graph),
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(re.findall(r"VMAF score: ([0-9.]+)", run.stderr)[-1])


def test_a_vmaf_target_finds_a_crf_per_file_and_reaches_the_target(
    settings: Settings, sources: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with Service(settings, out) as service:
        service.pipeline.start()
        fids = {name: service.pipeline.add(path) for name, path in sources.items()}
        assert service.pipeline.wait(list(fids.values()), timeout=WAIT)  # type: ignore[arg-type]
        recorded = {}
        for name, fid in fids.items():
            assert fid and service.pipeline.outcome(fid).state == FileState.CLEANED
            [record] = service.journal.story.outputs_of(fid)
            recorded[name] = record
    crfs = {name: r.crf for name, r in recorded.items()}
    assert None not in crfs.values()
    # Grain costs bits: the same VMAF needs a lower CRF than the clean picture.
    assert crfs["grain.mkv"] < crfs["clean.mkv"], crfs  # type: ignore[operator]
    for name, record in recorded.items():
        assert record.path is not None and record.vmaf is not None
        measured = full_vmaf(Path(record.path), sources[name])
        assert measured >= TARGET - 1, (name, record, measured)
        assert abs(measured - record.vmaf) <= 1, (name, record, measured)


def test_the_search_reports_progress_and_measure_quality_scores_without_searching(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    """While the search runs the output's progress moves and its log says the round; an
    output of a preset that only measures gets a VMAF and no CRF."""
    src = sources["grain.mkv"]
    info = probe(src, detail=True)
    reports: list[float] = []
    said: list[str] = []
    targeted = presets.build("web-720p", {"extends": "web-720p", "quality": "vmaf:93"})

    def report(fraction: float, _speed: float | None) -> None:
        reports.append(fraction)

    tuning = Tuning(find_ffmpeg(), targeted, info, src, tmp_path, report, said.append)
    chosen = tuning.search()
    assert chosen.video_args != targeted.video_args  # the CRF searched for, not the preset's
    searching = list(reports)
    assert searching == sorted(searching) and 0 < searching[-1] <= SEARCH_SHARE
    assert any("round 1 of" in line for line in said), said
    tuning.progress(0.5, 1.0)
    assert reports[-1] == pytest.approx(SEARCH_SHARE + (1 - SEARCH_SHARE) * 0.5)

    measured = presets.build("web-720p", {"extends": "web-720p", "measure_quality": True})
    out = tmp_path / "out.mp4"
    transcode(find_ffmpeg(), measured, info, src, out)
    scores = Tuning(find_ffmpeg(), measured, info, src, tmp_path, report, said.append).scores(out)
    assert set(scores) == {"vmaf"} and 0 < scores["vmaf"] <= 100
    assert abs(scores["vmaf"] - full_vmaf(out, src)) <= 1
    assert not list(tmp_path.glob("quality-*"))  # the samples are gone


def test_samples_too_big_to_keep_raw_are_packed_losslessly_with_the_same_result(
    sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = sources["clean.mkv"]
    info = probe(src, detail=True)
    web = presets.CATALOG["web-720p"]
    raw = quality.search(find_ffmpeg(), web, info, src, tmp_path, TARGET)
    monkeypatch.setattr(quality, "MAX_RAW_BYTES", 0)  # as a 4K source's would be
    packed = quality.search(find_ffmpeg(), web, info, src, tmp_path, TARGET)
    assert packed.crf == raw.crf
    assert [(t.crf, t.size) for t in packed.trials] == [(t.crf, t.size) for t in raw.trials]
    # The same frames scored: libvmaf's threads may differ in the last digits, no more.
    assert all(abs(p.vmaf - r.vmaf) < 0.01 for p, r in zip(packed.trials, raw.trials, strict=True))


def test_a_cancel_stops_the_running_ffmpeg_of_a_search_and_of_a_score(
    sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that comes while a search's ffmpeg runs stops that ffmpeg (not only the
    next round), started as the encode's are (``runner.spawn``); a cancelled score is
    not a missing score but the job's cancel."""
    src = sources["grain.mkv"]
    info = probe(src, detail=True)
    cancel = threading.Event()
    started: list[subprocess.Popen[bytes]] = []
    spawn = runner.spawn

    def spawned(cmd: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc = spawn(cmd, **kwargs)
        started.append(proc)
        cancel.set()  # the cancel arrives while this ffmpeg runs
        return proc

    monkeypatch.setattr(runner, "spawn", spawned)
    web = presets.CATALOG["web-720p"]
    with pytest.raises(TranscodeError, match="cancelled"):
        quality.search(find_ffmpeg(), web, info, src, tmp_path, TARGET, cancel=cancel)
    [proc] = started  # and no ffmpeg after it
    assert proc.returncode not in (None, 0), "stopped, not left to finish"
    assert not Path(f"/proc/{proc.pid}").exists()
    assert not list(tmp_path.glob("quality-*"))

    measured = presets.build("web-720p", {"extends": "web-720p", "measure_quality": True})
    tuning = Tuning(find_ffmpeg(), measured, info, src, tmp_path, lambda *_: None, print, cancel)
    with pytest.raises(TranscodeError, match="cancelled"):
        tuning.scores(src)
    assert len(started) == 1


def test_a_picture_too_small_for_vmaf_is_encoded_at_the_presets_crf(tmp_path: Path) -> None:
    """libvmaf crashes (SIGSEGV) on a picture 16 px or less a side: a VMAF target on such
    a video is not searched (said in the file's log) and the output is made at the preset's
    own CRF, as without the target; a score of it is skipped in one line, never a crash."""
    src = tmp_path / "tiny.mp4"
    subprocess.run(
        [
            *(FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"),
            *("-i", "testsrc2=size=16x16:rate=25:duration=1", "-pix_fmt", "yuv420p", str(src)),
        ],
        check=True,
    )
    info = probe(src, detail=True)
    said: list[str] = []
    targeted = presets.build("web-720p", {"extends": "web-720p", "quality": "vmaf:93"})
    tuning = Tuning(find_ffmpeg(), targeted, info, src, tmp_path, lambda *_: None, said.append)
    assert tuning.search() == targeted
    assert any("not searched" in line and "16x16" in line for line in said), said
    out = tmp_path / "out.mp4"
    transcode(find_ffmpeg(), targeted, info, src, out)
    with pytest.raises(TranscodeError, match="too small"):
        quality.measure(find_ffmpeg(), targeted, info, src, out)
