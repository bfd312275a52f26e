"""The watcher's full rescan (``--rescan``): files it took and that did not change cost a
stat and nothing more (never a read); a new or changed one becomes a candidate again."""

from __future__ import annotations

import os
import time
from pathlib import Path

from autotranscode.settings import Settings
from autotranscode.watcher import Watcher


def read_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_rescan_reads_no_file_and_finds_only_what_is_new_or_changed(tmp_path: Path) -> None:
    root = tmp_path / "library"
    files = []
    for show in range(3):
        folder = root / f"Show {show}" / "Season 1"
        folder.mkdir(parents=True)
        for ep in range(4):
            path = folder / f"ep{ep}.mkv"
            path.write_bytes(os.urandom(256 * 1024))
            files.append(path)
    old = time.time() - 600
    for path in files:
        os.utime(path, (old, old))
    watcher = Watcher(root, print, matches=Settings().matches, settle=0.0, recursive=True)
    watcher.rescan()
    time.sleep(0.15)  # the check loop's interval: then a file settled long ago is taken
    assert sorted(watcher._ready()) == sorted(files)

    before = read_bytes()
    watcher.rescan()
    assert read_bytes() - before < 64 * 1024  # folder listings, not a file's 256 KiB
    assert not watcher._candidates

    os.utime(files[5], (old + 1, old + 1))  # changed (its mtime): taken again
    new = root / "Show 1" / "Season 1" / "ep9.mkv"
    new.write_bytes(b"x")
    watcher.rescan()
    assert sorted(watcher._candidates) == sorted([files[5], new])
