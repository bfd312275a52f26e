"""What ``deploy/`` gives to run autotranscode as a service: the systemd units check out
with ``systemd-analyze verify``, and the Docker image's health check, run as Docker runs
it, passes against ``run --web`` and fails once it is stopped. (Docker itself is not on
the test machines: the image is not built here.)"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli, open_cli
from test_web_cli import free_port, served

from conftest import REPO

DEPLOY = REPO / "deploy"
INSTALLED = "/opt/autotranscode/bin/autotranscode"


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


@pytest.mark.parametrize("unit", ["autotranscode-run.service", "autotranscode-worker.service"])
def test_the_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (Debian's systemd; .ci/run installs it)"
    # The unit as installed, but running this checkout's command: verify checks it exists.
    here = shutil.which("autotranscode", path=str(Path(sys.executable).parent))
    assert here
    text = (DEPLOY / unit).read_text()
    assert INSTALLED in text
    (tmp_path / unit).write_text(text.replace(INSTALLED, here))
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stderr.strip(), result


def dockerfile_instruction(name: str) -> str:
    """An instruction of deploy/Dockerfile, its continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.search(rf"^{name} (.+)$", text, re.MULTILINE)
    assert found, name
    return found.group(1)


def test_the_images_health_check_passes_while_run_serves_and_fails_after(
    cli: Cli, tmp_path: Path
) -> None:
    check = json.loads(dockerfile_instruction("HEALTHCHECK").split(" CMD ", 1)[1])
    default = json.loads(dockerfile_instruction("CMD"))
    assert default[:1] == ["run"] and default[-2:] == ["--web", "0.0.0.0:8765"]
    port = free_port()
    check = [sys.executable if c == "python" else c.replace(":8765", f":{port}") for c in check]
    drop = tmp_path / "drop"
    drop.mkdir()
    # The image's command, on this machine's folders and a free port (token from the env,
    # as `docker run -e AUTOTRANSCODE_WEB_TOKEN` gives it: /healthz needs none).
    cli.env["AUTOTRANSCODE_WEB_TOKEN"] = "a-token"
    run = cli.start("run", "run", drop, tmp_path / "out", "--web", f"0.0.0.0:{port}")
    served(run)
    healthy = subprocess.run(check, capture_output=True, text=True, check=False, timeout=30)
    assert healthy.returncode == 0, healthy
    run.popen.send_signal(signal.SIGTERM)  # what `docker stop` sends
    assert run.wait_exit() == 0, run
    unhealthy = subprocess.run(check, capture_output=True, text=True, check=False, timeout=30)
    assert unhealthy.returncode != 0
