"""A file's log: its place in the state dir, its lines made printable, its size bounded."""

from __future__ import annotations

from pathlib import Path

from autotranscode import filelog
from autotranscode.media.runner import FfmpegRun


def test_a_file_s_log_is_named_by_its_id_in_the_state_dir_s_logs_folder(tmp_path: Path) -> None:
    assert filelog.log_path(tmp_path, "0123abcd") == tmp_path / "logs" / "0123abcd.log"


def test_a_job_log_s_lines_are_timestamped_printable_and_ffmpeg_s_words_indented() -> None:
    joblog = filelog.JobLog("w\x1b[31m1", clock=lambda: 0.0)
    joblog.say("job j1 received\nfake line")
    joblog.ran(FfmpegRun("ffmpeg -i 'a b.mov' out.mp4", 0, "[info] one\n[info] two"))
    joblog.ran(FfmpegRun("ffmpeg -i x.mov y.mp4", 1, ""))
    assert joblog.text().splitlines() == [
        "1970-01-01T00:00:00.000Z w\\x1b[31m1: job j1 received\\nfake line",
        "1970-01-01T00:00:00.000Z w\\x1b[31m1: ffmpeg exited with status 0:"
        " ffmpeg -i 'a b.mov' out.mp4",
        "    [info] one",
        "    [info] two",
        "1970-01-01T00:00:00.000Z w\\x1b[31m1: ffmpeg exited with status 1: ffmpeg -i x.mov y.mp4",
        "    (ffmpeg said nothing)",
    ]


def test_a_log_too_long_keeps_its_beginning_and_end_in_whole_lines() -> None:
    lines = [f"line {n} ü" for n in range(100_000)]
    kept = filelog.bounded("\n".join(lines), 64 * 1024)
    assert len(kept.encode()) <= 64 * 1024 + 100
    out = kept.splitlines()
    marker = next(n for n, line in enumerate(out) if "left out" in line)
    assert out[:marker] == lines[:marker]
    assert out[marker + 1 :] == lines[len(lines) - len(out) + marker + 1 :]
    assert filelog.bounded("short", 10) == "short"
