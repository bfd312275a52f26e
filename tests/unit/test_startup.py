"""What every command pays before it does anything: the modules ``autotranscode`` loads."""

from __future__ import annotations

import json
import subprocess
import sys

#: Each loads only where it is used: the aws backend, `run`'s watcher, a terminal's
#: progress bars, a config file, the ctypes fallback for ffmpeg's death signal. pydantic
#: is not a dependency (its import alone was ~90 ms of every start) and must not creep back.
LATE = ("boto3", "botocore", "s3transfer", "watchdog", "rich", "tomllib", "ctypes", "pydantic")


def test_the_cli_starts_without_the_modules_only_some_commands_need() -> None:
    code = "import sys, json, autotranscode.cli; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
    )
    early = sorted({m.split(".")[0] for m in loaded} & set(LATE))
    assert early == []
