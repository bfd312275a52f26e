"""--help: each command lists the options it uses, in sections (its own, AWS, logging),
each setting's default as Settings has it, read when help is asked for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from autotranscode import settings as settings_mod
from autotranscode.cli import main
from autotranscode.media import presets

LOGGING = ["--quiet", "--verbose", "--log-format", "--log-file"]
AWS = ["--endpoint-url", "--region", "--profile", "--name", "--engine"]
#: Where each command's settings live, and who transcodes.
PLACES = ["--config", "--backend", "--state-dir"]
#: In place (``library``, ``--in-place``): how a source is replaced.
REPLACING = ["--replace", "--keep-originals", "--keep-days"]
MAKING = [
    *("--force", "--on-success", "--sidecars", "--in-place", *REPLACING),
    *("--preset", "--audio", "--quality", "--measure-quality", "--pattern", "--workers"),
    *("--chunk-seconds", "--chunk-scenes", "--hours", "--nice", "--ionice", "--ffmpeg"),
    *("--notify-url", "--on-done"),
]
DEPLOYMENT = ["--config", "--endpoint-url", "--region", "--profile", "--name"]

#: command -> {section: long options, in the order shown}
SHOWN: dict[str, dict[str, list[str]]] = {
    "run": {
        "Options": [
            *("--settle", "--poll", "--recursive", "--rescan"),
            *("--web", "--web-token", "--web-upload-limit"),
            *MAKING,
            *PLACES,
            "--help",
        ],
        "AWS options": AWS,
        "Logging options": LOGGING,
    },
    "transcode": {
        "Options": ["--out", "--recursive", "--dry-run", *MAKING, *PLACES, "--help"],
        "AWS options": AWS,
        "Logging options": LOGGING,
    },
    "library": {
        "Options": [
            *("--dry-run", "--preset", "--quality", "--measure-quality", *REPLACING),
            *("--force", "--pattern", "--workers"),
            *("--hours", "--nice", "--ionice"),
            *("--ffmpeg", "--notify-url", "--on-done", *PLACES, "--help"),
        ],
        "AWS options": AWS,
        "Logging options": LOGGING,
    },
    "retry": {
        "Options": ["--all-failed", "--workers", "--ffmpeg", *PLACES, "--help"],
        "AWS options": AWS,
        "Logging options": LOGGING,
    },
    "worker": {
        "Options": [
            "--workers",
            "--hours",
            "--nice",
            "--ionice",
            "--threads",
            "--ffmpeg",
            *PLACES,
            "--help",
        ],
        "AWS options": AWS[:-1],
        "Logging options": LOGGING,
    },
    "web": {
        "Options": [
            *("--web", "--web-token", "--drop", "--out", "--web-upload-limit"),
            *("--config", "--state-dir", "--help"),
        ],
        "Logging options": LOGGING,
    },
    "status": {
        "Options": ["--json", "--limit", "--stage", "--watch", "--config", "--state-dir", "--help"]
    },
    "journal check": {"Options": ["--config", "--state-dir", "--help"], "Logging options": LOGGING},
    "journal rebuild": {
        "Options": ["--out", "--force", *PLACES, "--help"],
        "Logging options": LOGGING,
    },
    "setup": {
        "Options": ["--kms-key", "--config", "--help"],
        "AWS options": AWS,
        "Logging options": LOGGING,
    },
    "cleanup": {
        "Options": [
            *("--s3", "--sqs", "--dry-run", "--older-than"),
            *("--state-dir", "--config", "--help"),
        ],
        "AWS options": AWS[:-1],
        "Logging options": LOGGING,
    },
    "teardown": {
        "Options": ["--yes", "--config", "--help"],
        "AWS options": AWS[:-1],
        "Logging options": LOGGING,
    },
    "iam-policy": {
        "Options": ["--role", "--kms-key", "--account", "--config", "--help"],
        "AWS options": AWS,
        "Logging options": LOGGING,
    },
}


def help_text(*command: str, env: dict[str, str] | None = None, unwrap: bool = True) -> str:
    result = CliRunner().invoke(main, [*command, "--help"], env=env)
    assert result.exit_code == 0, result.output
    # unwrapped: click breaks lines anywhere
    return re.sub(r"\s+", " ", result.output) if unwrap else result.output


def sections(text: str) -> dict[str, list[str]]:
    """Each "Title:" section of a help text with the long options it lists, in order."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if re.match(r"^[A-Z][\w ]*:$", line):
            current = found.setdefault(line[:-1], [])
        elif current is not None and re.match(r"^  \S", line):
            current += re.findall(r"(--[a-z][a-z0-9-]*)", line.split("  ")[1])[-1:]
    return found


@pytest.mark.parametrize("command", list(SHOWN))
def test_each_command_shows_only_the_options_it_uses_in_sections(command: str) -> None:
    shown = sections(help_text(*command.split(), unwrap=False))
    assert shown == SHOWN[command]


@pytest.mark.parametrize(
    ("command", "option"),
    [("status", "--preset"), ("teardown", "--pattern"), ("iam-policy", "--workers")],
)
def test_an_option_a_command_does_not_use_is_refused(command: str, option: str) -> None:
    result = CliRunner().invoke(main, [command, option, "1"])
    assert result.exit_code == 2
    assert f"No such option '{option}'" in result.output


@pytest.mark.parametrize("command", ["run", "transcode", "retry", "worker", "setup"])
def test_every_command_shows_the_settings_defaults(command: str) -> None:
    text = help_text(command)
    if "--preset" in SHOWN[command]["Options"]:
        assert f"[default: {presets.DEFAULT_PRESET}]" in text
    if "--workers" in SHOWN[command]["Options"]:
        assert f"[default: {settings_mod.DEFAULT_WORKERS}]" in text
    assert f"[default: {settings_mod.DEFAULT_NAME}]" in text
    assert text.count("--config") == 1


def test_workers_says_what_it_does_for_a_client_and_for_a_worker() -> None:
    client = help_text("run")
    assert "0: none, the jobs wait for `autotranscode worker` processes" in client
    worker = help_text("worker")
    assert "Jobs this process runs at once" in worker
    assert "rely on others" not in client + worker


def test_the_aws_commands_take_no_backend_option_in_help() -> None:
    for command in ("setup", "cleanup", "teardown", "iam-policy"):
        assert "--backend" not in help_text(command)


def test_the_exit_codes_are_in_the_top_level_help() -> None:
    text = help_text()
    assert "Exit status: 0 all done; 1 some files failed or were partly done; 2 bad usage" in text
    assert "3 a runtime error" in text and "130 Ctrl+C" in text


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


def test_library_takes_one_preset_from_flag_config_or_its_own_default(tmp_path: Path) -> None:
    """``library`` converts with hevc-1080p unless --preset or the config file names one;
    a config file's list of several is refused in one line (in place: one video preset)."""
    one, two = tmp_path / "one.toml", tmp_path / "two.toml"
    one.write_text('preset = "web-1080p"\n')
    two.write_text('preset = ["web-1080p", "poster"]\n')
    base = ["library", str(tmp_path), "--dry-run", "--state-dir", str(tmp_path / "state")]
    for extra, used in (([], "hevc-1080p"), (["--config", str(one)], "web-1080p")):
        result = CliRunner().invoke(main, [*base, *extra])
        assert result.exit_code == 0, result.output
        assert f"with {used} (an estimate" in result.output
    result = CliRunner().invoke(main, [*base, "--config", str(two)])
    assert result.exit_code == 2
    assert "--in-place: give exactly one video preset" in result.output
    assert not (tmp_path / "state").exists()
