"""--help shows each setting's default as Settings has it, read when help is asked for."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from autotranscode import settings as settings_mod
from autotranscode.cli import main
from autotranscode.media import presets


def help_text(*command: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, [*command, "--help"], env=env)
    assert result.exit_code == 0, result.output
    return re.sub(r"\s+", " ", result.output)  # unwrapped: click breaks lines anywhere


@pytest.mark.parametrize("command", ["run", "transcode", "retry", "worker", "status", "setup"])
def test_every_command_shows_the_settings_defaults(command: str) -> None:
    text = help_text(command)
    assert f"[default: {presets.DEFAULT_PRESET}]" in text
    assert f"[default: {settings_mod.DEFAULT_WORKERS}]" in text
    assert f"[default: {settings_mod.DEFAULT_NAME}]" in text
    assert text.count("--config") == 1


def test_run_shows_the_settle_and_on_success_defaults() -> None:
    text = help_text("run")
    assert f"before it is taken [default: {settings_mod.DEFAULT_SETTLE_SECONDS}]" in text
    assert f"[default: {settings_mod.Settings().on_success}]" in text


def test_the_folders_shown_are_those_of_this_environment() -> None:
    """Short paths (nothing is made there): click wraps a long one mid-word."""
    text = help_text("status", env={"XDG_STATE_HOME": "/st", "XDG_CONFIG_HOME": "/cfg"})
    assert "[default: /st/autotranscode]" in text
    assert "[default: /cfg/autotranscode/config.toml]" in text


def test_presets_takes_the_same_config_option() -> None:
    assert "TOML config file [default:" in help_text("presets")
