"""Workers' scratch folders: one per worker, named by its process, so that a later start
can tell (and remove) the folders of workers that died, e.g. killed with -9.

Apart from ``worker`` so that module reads as what a worker does with a job.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..procs import pid_alive


def workdir_for(root: Path, name: str) -> Path:
    """A worker's scratch folder, named by its process so a restart can find dead ones."""
    return root / f"{os.getpid()}-{name}"


def clean_stale_workdirs(root: Path) -> None:
    """Remove the scratch folders of worker processes that died (e.g. killed with -9)."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        pid = entry.name.partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
