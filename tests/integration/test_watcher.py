"""The real Watcher on real temporary folders: what is reported, when, and how often."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from autotranscode import settings as settings_mod
from autotranscode.media.probe import ignored
from autotranscode.watcher import RESCAN_INTERVAL_SECONDS, Watcher

SETTLE = 0.3
#: Generous: a dropped file is normally reported well within 2 s.
DEADLINE = 10.0
#: How long to keep watching after the expected reports, to catch extra or late ones.
QUIET_CHECK = 0.8


@dataclass
class Reports:
    """What on_ready was called with, and each file's size at that moment."""

    paths: list[Path] = field(default_factory=list)
    sizes: dict[Path, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hook: Callable[[Path], None] | None = None

    def __call__(self, path: Path) -> None:
        with self.lock:
            self.paths.append(path)
            self.sizes[path] = path.stat().st_size
        if self.hook is not None:
            self.hook(path)

    def names(self) -> list[str]:
        with self.lock:
            return sorted(p.name for p in self.paths)

    def wait_for(self, *names: str, timeout: float = DEADLINE) -> list[str]:
        """Poll until every name was reported (or the deadline passes); returns what was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(names) <= set(self.names()):
                break
            time.sleep(0.05)
        return self.names()


StartWatcher = Callable[..., tuple[Watcher, Reports]]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "drop"
    path.mkdir()
    return path


@pytest.fixture
def start_watcher(folder: Path) -> Iterator[StartWatcher]:
    """Start a real Watcher; every one started is stopped at the end, whatever happens."""
    started: list[Watcher] = []

    def start(**kwargs: Any) -> tuple[Watcher, Reports]:
        reports = Reports()
        options: dict[str, Any] = {
            "matches": settings_mod.build({}).matches,
            "settle": SETTLE,
            **kwargs,
        }
        watcher = Watcher(options.pop("folder", folder), reports, **options)
        watcher.start()
        started.append(watcher)
        return watcher, reports

    try:
        yield start
    finally:
        for watcher in started:
            watcher.stop()


def _drop(path: Path, size: int = 2048) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_files_present_at_start_are_reported_once(
    folder: Path, start_watcher: StartWatcher
) -> None:
    _drop(folder / "a.mp4")
    _drop(folder / "b.MOV")
    _drop(folder / "Früh stück — 東京 clip.mkv")
    _, reports = start_watcher()
    expected = ["a.mp4", "b.MOV", "Früh stück — 東京 clip.mkv"]
    assert reports.wait_for(*expected) == sorted(expected)
    time.sleep(QUIET_CHECK)
    assert reports.names() == sorted(expected)
    assert all(p.parent == folder for p in reports.paths)


def test_an_idle_watcher_sleeps_until_a_file_comes(
    folder: Path, start_watcher: StartWatcher
) -> None:
    """With nothing settling, the check loop waits for an event instead of looking ten
    times a second (each wake-up costs CPU); a dropped file still wakes it."""
    watcher, reports = start_watcher()
    time.sleep(QUIET_CHECK)
    assert watcher.looks == 0, "the loop looked at an empty folder"
    _drop(folder / "late.mp4")
    assert reports.wait_for("late.mp4") == ["late.mp4"]
    assert watcher.looks > 0


def test_a_dropped_file_is_reported(folder: Path, start_watcher: StartWatcher) -> None:
    _, reports = start_watcher()
    path = _drop(folder / "late.mp4", 4096)
    assert reports.wait_for("late.mp4") == ["late.mp4"]
    assert reports.paths == [path]
    assert reports.sizes[path] == 4096
    time.sleep(QUIET_CHECK)
    assert reports.names() == ["late.mp4"]


@pytest.mark.skipif(sys.platform != "linux", reason="close-after-write events are inotify's")
def test_a_slowly_written_file_is_reported_only_when_complete(
    folder: Path, start_watcher: StartWatcher
) -> None:
    watcher, reports = start_watcher()
    assert watcher._closes_known, "on Linux the watcher must use inotify, which reports closes"
    writer_open = threading.Event()
    writer_open.set()
    premature: list[Path] = []
    reports.hook = lambda p: premature.append(p) if writer_open.is_set() else None

    path = folder / "slow.mp4"
    chunk = os.urandom(16 * 1024)
    with path.open("wb") as fh:
        for _ in range(6):
            fh.write(chunk)
            fh.flush()
            time.sleep(0.4)  # longer than the settle period: size alone would say "done"
        writer_open.clear()
    final = path.stat().st_size
    assert final == 6 * len(chunk)

    assert reports.wait_for("slow.mp4") == ["slow.mp4"]
    assert premature == []
    assert reports.sizes[path] == final
    time.sleep(QUIET_CHECK)
    assert reports.names() == ["slow.mp4"]


IGNORED = [".x.mp4", "a.mp4.part", "a.crdownload", "~$x.mp4", "b.mp4.tmp", "~lock.mov"]
NOT_MEDIA = ["notes.txt", "README", "archive.mp4.zip"]


def test_hidden_temporary_and_other_names_are_never_reported(
    folder: Path, start_watcher: StartWatcher
) -> None:
    for name in (".early.mp4", "early.mp4.part", "early.crdownload", "~$early.mp4", "early.txt"):
        _drop(folder / name)  # there before the start-up scan
    _, reports = start_watcher()
    for name in IGNORED + NOT_MEDIA:
        _drop(folder / name)
    _drop(folder / "z.mp4")  # dropped last: once it is reported, the others had their chance
    assert reports.wait_for("z.mp4") == ["z.mp4"]
    time.sleep(QUIET_CHECK)
    assert reports.names() == ["z.mp4"]


@pytest.mark.parametrize("name", IGNORED)
def test_ignored_names(name: str) -> None:
    assert ignored(name)


@pytest.mark.parametrize("name", ["clip.mp4", "a.b.mov", "part.mp4", "x~.mp4", "tmp.mkv"])
def test_not_ignored_names(name: str) -> None:
    assert not ignored(name)


def test_polling_still_reports_a_dropped_file(folder: Path, start_watcher: StartWatcher) -> None:
    _drop(folder / "before.mp4")
    _, reports = start_watcher(poll=True)
    assert reports.wait_for("before.mp4") == ["before.mp4"]
    _drop(folder / "after.mp4")
    _drop(folder / ".hidden.mp4")
    assert reports.wait_for("after.mp4") == ["after.mp4", "before.mp4"]
    time.sleep(QUIET_CHECK)
    assert reports.names() == ["after.mp4", "before.mp4"]


def test_a_file_moved_in_from_another_folder_is_reported(
    folder: Path, tmp_path: Path, start_watcher: StartWatcher
) -> None:
    """``mv ~/Downloads/clip.mp4 ~/Drop/``: the most common way to drop a file."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _drop(outside / "moved.mp4", 3000)
    _, reports = start_watcher()
    time.sleep(0.2)  # let the start-up scan pass, so the move is seen as an event
    os.rename(outside / "moved.mp4", folder / "moved.mp4")
    # A settled file is reported in well under a second; 3 s is still ten times that.
    assert reports.wait_for("moved.mp4", timeout=3.0) == ["moved.mp4"]
    assert reports.sizes[folder / "moved.mp4"] == 3000


def test_a_download_renamed_into_place_is_reported(
    folder: Path, start_watcher: StartWatcher
) -> None:
    """Browsers and copiers write ``x.part`` and rename it when done."""
    _, reports = start_watcher()
    partial = _drop(folder / "video.mp4.part", 5000)
    time.sleep(SETTLE + 0.2)  # the partial file is settled but must not be taken
    assert reports.names() == []
    os.rename(partial, folder / "video.mp4")
    assert reports.wait_for("video.mp4") == ["video.mp4"]
    assert reports.sizes[folder / "video.mp4"] == 5000
    time.sleep(QUIET_CHECK)
    assert reports.names() == ["video.mp4"]


def test_exclude_is_respected_when_recursive(folder: Path, start_watcher: StartWatcher) -> None:
    done = folder / "done"
    sub = folder / "sub"
    done.mkdir()
    sub.mkdir()
    _drop(done / "old-output.mp4")
    _drop(sub / "old-input.mp4")
    _, reports = start_watcher(recursive=True, exclude=(done,))
    assert reports.wait_for("old-input.mp4") == ["old-input.mp4"]
    _drop(done / "new-output.mp4")
    _drop(sub / "new-input.mp4")
    _drop(folder / "top.mp4")
    expected = ["new-input.mp4", "old-input.mp4", "top.mp4"]
    assert reports.wait_for(*expected) == expected
    time.sleep(QUIET_CHECK)
    assert reports.names() == expected
    assert folder / "sub" / "new-input.mp4" in reports.paths


def test_not_recursive_ignores_subfolders(folder: Path, start_watcher: StartWatcher) -> None:
    sub = folder / "sub"
    sub.mkdir()
    _drop(sub / "deep-old.mp4")
    _, reports = start_watcher()
    _drop(sub / "deep-new.mp4")
    _drop(folder / "top.mp4")
    assert reports.wait_for("top.mp4") == ["top.mp4"]
    time.sleep(QUIET_CHECK)
    assert reports.names() == ["top.mp4"]


def test_pattern_decides_what_matches(folder: Path, start_watcher: StartWatcher) -> None:
    _, reports = start_watcher(matches=settings_mod.build({"pattern": ("*.mov",)}).matches)
    _drop(folder / "a.mp4")
    _drop(folder / "b.MOV")
    assert reports.wait_for("b.MOV") == ["b.MOV"]
    time.sleep(QUIET_CHECK)
    assert reports.names() == ["b.MOV"]


def test_stop_is_prompt_and_final(folder: Path, start_watcher: StartWatcher) -> None:
    watcher, reports = start_watcher()
    watcher.stop()
    _drop(folder / "after-stop.mp4")
    time.sleep(SETTLE + QUIET_CHECK)
    assert reports.names() == []
    assert not [t for t in threading.enumerate() if t.name == "autotranscode-watcher"]


def test_a_stop_while_a_file_is_handed_on_is_not_lost(folder: Path) -> None:
    """Ctrl+C in ``run`` while the watcher hands a file to the pipeline: the stop came
    between the check loop's look at it and its next sleep, whose wake-up it then cleared,
    so the loop slept out the rescan interval (30 s) and ``run`` hung until then."""
    stopping: list[threading.Thread] = []

    def hand_on(path: Path) -> None:  # the pipeline's add, with a Ctrl+C meanwhile
        stopper = threading.Thread(target=watcher.stop, name="test-stopper")
        stopper.start()
        stopping.append(stopper)
        time.sleep(0.3)  # stop() sets its events now, while this hand-on is under way

    watcher = Watcher(folder, hand_on, matches=settings_mod.build({}).matches, settle=SETTLE)
    _drop(folder / "clip.mp4")
    watcher.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stopping, "the file was never handed on"
        stopping[0].join(RESCAN_INTERVAL_SECONDS / 3)
        assert not stopping[0].is_alive(), "stop() waited for the next rescan"
    finally:
        watcher.stop()


@dataclass
class Skips:
    """What on_skipped was called with."""

    seen: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, path: Path, kind: str) -> None:
        self.seen.append((path.name, kind))


def test_what_is_no_regular_file_is_skipped_once_and_never_taken(
    folder: Path, start_watcher: StartWatcher
) -> None:
    """A FIFO, a socket, a folder or a dangling link with a media name: reported once to
    on_skipped (never to on_ready, whose caller would open it: a FIFO blocks that open)."""
    (folder / "at-start.mp4").symlink_to(folder / "nowhere.mp4")
    skips = Skips()
    _, reports = start_watcher(on_skipped=skips)
    os.mkfifo(folder / "live.mp4")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "sock.mkv"))
    try:
        (folder / "dangling.mov").symlink_to(folder / "gone.mov")
        (folder / "linked.mp4").symlink_to(_drop(folder / "real.bin"))  # a link to a file: fine
        _drop(folder / "after.mp4")
        assert reports.wait_for("after.mp4", "linked.mp4") == ["after.mp4", "linked.mp4"]
        time.sleep(QUIET_CHECK)
    finally:
        listener.close()
    assert reports.names() == ["after.mp4", "linked.mp4"]
    assert sorted(skips.seen) == [
        ("at-start.mp4", "a dangling link"),
        ("dangling.mov", "a dangling link"),
        ("live.mp4", "a FIFO"),
        ("sock.mkv", "a socket"),
    ]


def test_a_file_appended_in_bursts_is_reported_whole(
    folder: Path, start_watcher: StartWatcher
) -> None:
    """open, append, close, pause (twice the settle time), again: once the file grew after a
    pause, it is held 4x that pause, so at most the first piece is reported before the
    whole file (nothing told the first piece from a complete file yet)."""
    _, reports = start_watcher()
    path = folder / "reopen.mp4"
    chunk = os.urandom(8 * 1024)
    for _ in range(5):
        with path.open("ab") as fh:
            fh.write(chunk)
        time.sleep(2 * SETTLE)
    final = path.stat().st_size

    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and reports.sizes.get(path) != final:
        time.sleep(0.05)
    time.sleep(QUIET_CHECK)
    assert reports.sizes.get(path) == final
    assert len(reports.paths) <= 2, [p.name for p in reports.paths]


def test_an_exclude_holding_the_folder_excludes_nothing(
    tmp_path: Path, start_watcher: StartWatcher
) -> None:
    """``run media/drop media``: OUT holds DROP; its outputs land beside DROP, never in it,
    so excluding OUT must not exclude DROP's own files."""
    media = tmp_path / "media"
    drop = media / "drop"
    drop.mkdir(parents=True)
    _, reports = start_watcher(folder=drop, exclude=(media,))
    _drop(drop / "clip.mp4")
    _drop(media / "output.mp4")
    assert reports.wait_for("clip.mp4") == ["clip.mp4"]
    time.sleep(QUIET_CHECK)
    assert reports.names() == ["clip.mp4"]
