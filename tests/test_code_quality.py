"""The linters are part of the suite, so CI and a developer run the same checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_test_patches_a_private_name_of_the_package() -> None:
    """Tests reach the code through its public interface and hooks (``WorkerHooks``, the
    watcher's and the pipeline's subscribers); replacing a private function pins the
    tests to the code's insides. Fault injection into the standard library or boto3 is
    fine: those are not ours."""
    import ast

    tests = Path(__file__).parent
    found = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "setattr" or len(node.args) < 2:
                continue
            names = [a.value for a in node.args[:2] if isinstance(a, ast.Constant)]
            for name in (n for n in names if isinstance(n, str)):
                if name.startswith("_") or "._" in name:
                    found.append(f"{path.relative_to(tests)}:{node.lineno}: {name}")
    assert not found, "private names patched: " + ", ".join(found)
