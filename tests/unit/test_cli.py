"""The command's quick exit: taken only when nothing is left to finish."""

from __future__ import annotations

import threading
from typing import NoReturn

import pytest

from autotranscode import cli


class _Exited(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _fake_os_exit(code: int) -> NoReturn:
    raise _Exited(code)


@pytest.fixture
def os_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.os, "_exit", _fake_os_exit)


@pytest.fixture
def only_main_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the command's process (the suite's own process has helper threads of its own)."""
    monkeypatch.setattr(cli.threading, "enumerate", lambda: [threading.main_thread()])


@pytest.mark.parametrize("code", [cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_INTERRUPTED])
def test_a_finished_command_exits_at_once_with_its_code(
    monkeypatch: pytest.MonkeyPatch,
    os_exit: None,
    only_main_thread: None,
    capsys: pytest.CaptureFixture[str],
    code: int,
) -> None:
    def main() -> None:
        print("summary line")
        raise SystemExit(code)

    monkeypatch.setattr(cli, "main", main)
    with pytest.raises(_Exited) as info:
        cli.entry()
    assert info.value.code == code
    assert capsys.readouterr().out == "summary line\n", "flushed before the exit"


def test_a_running_thread_gets_the_ordinary_exit(
    monkeypatch: pytest.MonkeyPatch, os_exit: None
) -> None:
    """os._exit would kill it mid-work; the interpreter's exit waits for it."""
    release = threading.Event()
    straggler = threading.Thread(target=release.wait, name="autotranscode-test-straggler")

    def main() -> None:
        straggler.start()
        raise SystemExit(cli.EXIT_OK)

    monkeypatch.setattr(cli, "main", main)
    try:
        with pytest.raises(SystemExit) as info:
            cli.entry()
        assert info.value.code == cli.EXIT_OK
    finally:
        release.set()
        straggler.join()


def test_a_daemon_thread_does_not_hold_the_exit(
    monkeypatch: pytest.MonkeyPatch, os_exit: None
) -> None:
    """The interpreter would not wait for it either."""
    daemon = threading.Thread(target=lambda: None, daemon=True)
    monkeypatch.setattr(cli.threading, "enumerate", lambda: [threading.main_thread(), daemon])
    monkeypatch.setattr(cli, "main", lambda: None)
    with pytest.raises(_Exited) as info:
        cli.entry()
    assert info.value.code == cli.EXIT_OK


def test_a_message_exit_gets_the_ordinary_exit(
    monkeypatch: pytest.MonkeyPatch, os_exit: None
) -> None:
    def main() -> None:
        raise SystemExit("a message, not a code")

    monkeypatch.setattr(cli, "main", main)
    with pytest.raises(SystemExit, match="a message"):
        cli.entry()
