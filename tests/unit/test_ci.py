"""CI runs what the README tells a user to run to test, and nothing else."""

from __future__ import annotations

import re

from conftest import REPO


def test_ci_runs_the_readmes_test_command_verbatim() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    marker = readme.index("Install and run the whole test suite")
    block = re.search(r"```sh\n(.*?)```", readme[marker:], re.S)
    assert block, "the README's test command block"
    commands = [line for line in block[1].splitlines() if line.strip()]
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ci = [line for line in script if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert ci == commands
