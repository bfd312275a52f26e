"""What the CLI says and how it ends, as a user sees it: errors in our words, exit codes,
state dirs never made by a reader, the region and account of the aws commands, log lines
for services (-q, -v, json, a log file) and shell completion."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli, Proc, names, open_cli, wait_until

from conftest import Clip

ACCOUNT = "123456789012"
#: No credentials and no region anywhere: neither in the environment nor in a file.
NO_AWS = {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


def one_error_line(stderr: str) -> str:
    """The single line a failed command printed, without its ``error: ``."""
    assert "Traceback" not in stderr
    [line] = stderr.splitlines()
    assert line.startswith("error: "), stderr
    return line.removeprefix("error: ")


# --- errors in our words, exit codes --------------------------------------------------------------


def test_a_bad_number_is_said_in_our_words(cli: Cli, clips: dict[str, Clip]) -> None:
    result = cli.run("transcode", clips["h264.mp4"].path, "--workers", "-1")
    assert result.returncode == 2, result
    assert one_error_line(result.stderr) == "--workers: a whole number from 0 to 64, not -1"


def test_quiet_and_verbose_together_is_a_usage_error(cli: Cli, clips: dict[str, Clip]) -> None:
    result = cli.run("transcode", clips["h264.mp4"].path, "-q", "-v")
    assert result.returncode == 2, result
    assert "Error: -q and -v ask for opposite things: give one of them" in result.stderr


def start_run(cli: Cli, *extra: str) -> tuple[Proc, Path, Path]:
    drop, out = cli.tmp / "drop", cli.tmp / "out"
    drop.mkdir(exist_ok=True)
    proc = cli.start("run", "run", drop, out, "--settle", "0.3", *extra)
    return proc, drop, out


def test_run_exits_130_after_ctrl_c_and_0_after_sigterm(cli: Cli) -> None:
    proc, _, _ = start_run(cli)
    proc.wait_for_log("watching")
    assert proc.stop() == 130, proc

    proc, _, _ = start_run(cli)
    proc.wait_for_log("watching")
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait_exit() == 0, proc
    assert "Traceback" not in proc.stderr


# --- state dirs: status and retry read, never make ------------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["retry", "--all-failed"]])
def test_a_mistyped_state_dir_is_said_and_not_made(cli: Cli, command: list[str]) -> None:
    typo = cli.tmp / "sate"
    result = cli.run(*command, state_dir=typo)
    assert result.returncode == 2, result
    assert one_error_line(result.stderr) == (
        f"state dir {typo} does not exist: nothing has run with it yet (check --state-dir or "
        "AUTOTRANSCODE_STATE_DIR)"
    )
    assert not typo.exists()
    assert result.stdout == ""


def test_retry_of_a_file_unknown_or_done_says_so(cli: Cli, clips: dict[str, Clip]) -> None:
    clip = cli.tmp / "clip.mp4"
    shutil.copyfile(clips["h264.mp4"].path, clip)
    assert cli.run("transcode", clip, "-o", cli.tmp / "out").returncode == 0

    done = cli.run("retry", clip)
    assert done.returncode == 2, done
    assert one_error_line(done.stderr) == (
        f"{clip}: done already, nothing to retry (`transcode --force` makes it again)"
    )

    unknown = cli.run("retry", cli.tmp / "other.mp4")
    assert unknown.returncode == 2, unknown
    assert one_error_line(unknown.stderr) == (
        f"{cli.tmp / 'other.mp4'}: not in the journal of {cli.state_dir} (never taken there)"
    )
    assert names(cli.tmp / "out") == ["clip.mp4"], "nothing was transcoded again"


# --- the aws commands: backend, region and account ------------------------------------------------


def iam_policy(cli: Cli, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """The resources of the worker policy iam-policy prints, run with no AWS credentials."""
    result = cli.run(
        "iam-policy",
        "--role",
        "worker",
        "--name",
        "studio",
        *args,
        common=False,
        env={**NO_AWS, **(env or {})},
    )
    assert result.returncode == 0, result
    policy = json.loads(result.stdout)
    return [arn for statement in policy["Statement"] for arn in statement["Resource"]]


def test_iam_policy_is_printed_offline_with_account_and_region(cli: Cli) -> None:
    """No credentials, no --backend aws: the aws commands are on aws by themselves."""
    arns = iam_policy(cli, "--account", ACCOUNT, "--region", "eu-west-1")
    assert f"arn:aws:sqs:eu-west-1:{ACCOUNT}:studio-jobs" in arns
    assert f"arn:aws:s3:::studio-in-{ACCOUNT}-eu-west-1/inputs/*" in arns


def test_the_region_comes_from_the_aws_chain(cli: Cli) -> None:
    from_env = iam_policy(cli, "--account", ACCOUNT, env={"AWS_DEFAULT_REGION": "eu-west-3"})
    assert f"arn:aws:sns:eu-west-3:{ACCOUNT}:studio-notifications" in from_env

    config = cli.tmp / "aws-config"
    config.write_text("[default]\nregion = ap-south-1\n")
    from_file = iam_policy(cli, "--account", ACCOUNT, env={"AWS_CONFIG_FILE": str(config)})
    assert f"arn:aws:sns:ap-south-1:{ACCOUNT}:studio-notifications" in from_file


@pytest.mark.parametrize(
    "command",
    [
        ["iam-policy", "--role", "client", "--account", ACCOUNT],
        ["setup"],
        ["teardown", "--yes"],
        ["worker", "--backend", "aws"],
    ],
    ids=lambda c: c[0],
)
def test_no_region_is_one_line_saying_what_to_do(cli: Cli, command: list[str]) -> None:
    result = cli.run(*command, common=False, env=NO_AWS)
    assert result.returncode == 2, result
    assert one_error_line(result.stderr) == (
        "no AWS region: pass --region, or set AWS_DEFAULT_REGION (or region in the profile's "
        "~/.aws/config)"
    )


def test_iam_policy_without_account_or_credentials_says_what_to_give(cli: Cli) -> None:
    result = cli.run(
        "iam-policy", "--role", "client", "--region", "eu-west-1", common=False, env=NO_AWS
    )
    assert result.returncode == 2, result
    assert one_error_line(result.stderr).startswith(
        "the policy names the deployment's account: pass --account ID (no credentials needed "
        "then), or give AWS credentials"
    )


def test_an_account_id_is_checked(cli: Cli) -> None:
    result = cli.run("iam-policy", "--role", "client", "--account", "12", common=False, env=NO_AWS)
    assert result.returncode == 2, result
    assert one_error_line(result.stderr) == "--account '12': an AWS account id is 12 digits"


# --- log lines for services -----------------------------------------------------------------------


def json_lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_run_logs_json_to_a_log_file(cli: Cli, clips: dict[str, Clip]) -> None:
    """Start-up line at INFO, then a line per stage with the file and stage as fields; a
    hostile name is shown literally, escaped once; nothing on stderr."""
    log = cli.tmp / "run.log"
    proc, drop, out = start_run(cli, "--log-format", "json", "--log-file", str(log))
    wait_until(lambda: log.exists() and "watching" in log.read_text(), "the start-up line")
    hostile = "\x1b[31mred\nline.mp4"
    shutil.copyfile(clips["h264.mp4"].path, drop / hostile)
    wait_until(lambda: names(out) == ["_[31mred_line.mp4"], "the output", procs=(proc,))
    wait_until(lambda: '"stage": "done"' in log.read_text(), "the done line", procs=(proc,))
    assert proc.stop() == 130, proc

    lines = json_lines(log)
    [first] = [line for line in lines if line["message"].startswith("watching")]
    assert (first["level"], first["logger"]) == ("INFO", "autotranscode.cli.files")
    assert first["message"].startswith(f"watching {drop} -> {out} (local backend)")
    assert {"time", "level", "logger", "message"} <= set(first)
    shown_name = "\\x1b[31mred\\nline.mp4"
    stages = [line["stage"] for line in lines if line.get("file") == shown_name]
    assert stages[0] == "queued" and stages[-1] == "done", lines
    done = next(line for line in lines if line.get("stage") == "done")
    assert done["message"].startswith(f"{shown_name}: done -> _[31mred_line.mp4 ("), done
    # The job id joins a client's lines to its worker's, whichever process that was.
    [record] = cli.status()["recent"]
    assert done["job_id"] == record["job_id"] and record["job_id"], (done, record)
    worker_lines = [line for line in lines if line["logger"] == "autotranscode.engines.worker"]
    assert worker_lines and all(line.get("job_id") == record["job_id"] for line in worker_lines[1:])
    assert "\x1b" not in log.read_text()
    assert proc.stderr.strip().splitlines() == [
        "stopping (Ctrl+C again to quit at once; unfinished files resume next start)"
    ], "log lines go to the file only"


def test_quiet_logs_errors_only(cli: Cli, clips: dict[str, Clip], broken: dict[str, Path]) -> None:
    good = cli.run("transcode", clips["h264.mp4"].path, "-o", cli.tmp / "out")
    assert good.returncode == 0 and "INFO" in good.stderr, good
    quiet = cli.run("transcode", clips["mjpeg.avi"].path, broken["notes.mp4"], "-q", "-o", "q")
    assert quiet.returncode == 1, quiet
    [line] = quiet.stderr.splitlines()
    assert " ERROR notes.mp4: failed: " in line, quiet.stderr
    assert "1 done, 1 failed" in quiet.stdout


def test_an_unwritable_log_file_is_one_line(cli: Cli, clips: dict[str, Clip]) -> None:
    log = cli.tmp / "no such folder" / "x.log"
    result = cli.run("transcode", clips["h264.mp4"].path, "--log-file", log)
    assert result.returncode == 2, result
    assert one_error_line(result.stderr).startswith(f"--log-file {log} cannot be opened (")


# --- shell completion ----------------------------------------------------------------------------


def complete(cli: Cli, *words: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash would offer for the last of ``words`` (click's completion protocol)."""
    line = ["autotranscode", *words]
    result = cli.run(
        common=False,
        env={
            "_AUTOTRANSCODE_COMPLETE": "bash_complete",
            "COMP_WORDS": " ".join(line),
            "COMP_CWORD": str(len(line) - 1),
            **(env or {}),
        },
    )
    assert result.returncode == 0, result
    return [item.split(",", 1)[1] for item in result.stdout.splitlines()]


def test_preset_names_complete_with_the_config_files_own(cli: Cli) -> None:
    assert complete(cli, "run", "--preset", "web") == ["web-720p", "web-1080p", "webm-vp9"]
    config = cli.tmp / "config.toml"
    config.write_text('[presets.phone]\nextends = "web-720p"\nheight = 480\n')
    custom = complete(cli, "transcode", "--preset", "p", env={"AUTOTRANSCODE_CONFIG": str(config)})
    assert sorted(custom) == ["phone", "poster"]
    assert complete(cli, "sta") == ["status"]


def test_completion_prints_the_shell_code(cli: Cli) -> None:
    for shell in ("bash", "zsh", "fish"):
        result = cli.run("completion", shell, common=False)
        assert result.returncode == 0, result
        assert "_AUTOTRANSCODE_COMPLETE=" in result.stdout.replace(" ", ""), result.stdout
