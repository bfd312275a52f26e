"""A kill -9 campaign: ``run`` killed ten times at random moments over one batch, then let finish.

Every kill lands wherever it lands (an upload, a transcode, a download, a rename, idle), with
default settings, on the local backend where in-process workers die with ``run``. A restart
after each kill resumes the batch. In the end every clip has exactly one output of the right
duration, nothing is left in the store or the queues, and no ffmpeg ever outlived a kill.

The moments come from a seeded generator; the seed is printed, and ``KILL_CAMPAIGN_SEED``
replays a campaign.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import PART_SUFFIX, Cli, make_cli, names, wait_until
from test_crash_resume import all_cleaned, assert_nothing_outlives, kill_alone, states

from conftest import FFMPEG, Clip, check_output

KILLS = 10
#: Each run lives this long (seconds, uniform) before its kill: from before its start-up scan
#: to well into a transcode.
LIFETIME = (0.2, 1.6)
FINISH_DEADLINE = 180.0

#: Six 720p sources with different content (and so different identities), each a couple of
#: seconds of transcoding here: long enough for kills to land inside transcodes, short enough
#: for CI.
_SOURCES = {
    "a testsrc2.mov": "testsrc2=size=1280x720:rate=25:duration={d}",
    "b smpte.mp4": "smptebars=size=1280x720:rate=25:duration={d}",
    "c cellauto.mkv": "cellauto=size=1280x720:rate=25:rule=110:seed=1,trim=duration={d}",
    "d rgb.avi": "rgbtestsrc=size=1280x720:rate=25:duration={d}",
    "e testsrc.mov": "testsrc=size=1280x720:rate=25:duration={d}",
    "f hd bars.mp4": "smptehdbars=size=1280x720:rate=25:duration={d}",
}
_CODECS = {
    ".mov": ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p", "-c:a", "pcm_s16le"],
    ".mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    ".mkv": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    ".avi": ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p", "-c:a", "pcm_s16le"],
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    folder = tmp_path_factory.mktemp("campaign-media")
    made = {}
    for n, (name, video) in enumerate(_SOURCES.items()):
        duration = 3.0 + n % 3  # 3, 4 or 5 s: different lengths, checked on the outputs
        path = folder / name
        subprocess.run(
            [
                *(FFMPEG, "-hide_banner", "-loglevel", "error", "-y"),
                *("-f", "lavfi", "-i", video.format(d=duration)),
                *("-f", "lavfi", "-i", f"sine=frequency={300 + 50 * n}:duration={duration}"),
                *_CODECS[path.suffix],
                *("-shortest", str(path)),
            ],
            check=True,
        )
        made[name] = Clip(path, duration, 720, True)
    return made


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    c = make_cli(request, tmp_path, "local")
    try:
        yield c
    finally:
        c.close()


def test_ten_kills_at_random_moments_still_deliver_every_file_once(
    cli: Cli, tmp_path: Path, batch: dict[str, Clip]
) -> None:
    seed = int(os.environ.get("KILL_CAMPAIGN_SEED", time.time_ns() % 1_000_000))
    print(f"KILL_CAMPAIGN_SEED={seed}")
    rng = random.Random(seed)
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    for name, clip in batch.items():
        (drop / name).write_bytes(clip.path.read_bytes())
    state = cli.state_dir

    history = []
    for k in range(KILLS):
        run = cli.start(f"run-{k}", "run", drop, out)
        time.sleep(rng.uniform(*LIFETIME))
        if run.popen.poll() is not None:
            pytest.fail(f"run exited by itself before kill {k + 1}\n{run}")
        kill_alone(run)
        history.append(dict(sorted(states(state).items())))
        assert_nothing_outlives(state)
    print("states after each kill:", *history, sep="\n  ")

    final = cli.start("run-final", "run", drop, out)
    final.wait_for_log("watching")
    wait_until(
        lambda: all_cleaned(state, len(batch)),
        "every file to be CLEANED after the campaign",
        timeout=FINISH_DEADLINE,
        procs=(final,),
        interval=0.2,
    )
    cli.assert_no_leftovers()
    assert final.stop() == 130, final  # run's exit status after Ctrl+C
    assert "Traceback" not in final.stderr, final

    wanted = sorted(Path(name).stem + ".mp4" for name in batch)
    assert names(out) == wanted, (names(out), history)
    assert not [n for n in names(out) if n.startswith(".") or PART_SUFFIX in n]
    for name, clip in batch.items():
        check_output(out / (Path(name).stem + ".mp4"), clip, max_height=720)
    cli.assert_no_leftovers()
