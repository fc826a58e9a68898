"""`fedeploy bridge` without a bridge: what it asks for, and how it refuses bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from fedeploy.bridge.command import bridge_app

ENV = {
    "FEDEPLOY_BRIDGE_URL": "https://127.0.0.1:9",
    "FEDEPLOY_BRIDGE_USER": "fedeploy",
    "FEDEPLOY_BRIDGE_TOKEN": "opaque-token-canary",
}


def bridge(*args: str, script: str | None = None, env: dict[str, str] = ENV) -> Result:
    """`fedeploy bridge ARGS` with the script on stdin and `env` as its only environment."""
    return CliRunner().invoke(bridge_app, list(args), input=script, env=env)


def test_missing_connection_settings_are_named():
    result = bridge("status", "1", env={})
    assert result.exit_code == 2
    assert "FEDEPLOY_BRIDGE_URL" in result.output


def test_an_invalid_job_is_refused_before_any_request():
    result = bridge(
        *["submit", "-", "--name", "x", "--time", "5", "--workdir", "relative"],
        *["--env", "SLURM_X=1"],
        script="#!/bin/bash\ntrue\n",
    )
    assert result.exit_code == 3
    assert "the job is not valid" in result.output and "working_directory" in result.output
    assert "opaque-token-canary" not in result.output


def test_an_unreachable_bridge_is_a_clear_error():
    result = bridge("--timeout", "2", "--retries", "0", "status", "1")
    assert result.exit_code == 5
    # The first request asks which API versions the bridge serves.
    assert result.output.startswith(
        "error: GET https://127.0.0.1:9/openapi/v3: the bridge does not answer after 1 attempt"
    )
    pinned = bridge("--timeout", "2", "--retries", "0", "--api-version", "v0.0.42", "status", "1")
    assert pinned.exit_code == 5
    assert pinned.output.startswith(
        "error: GET https://127.0.0.1:9/slurm/v0.0.42/job/1: the bridge does not answer after 1 attempt"
    )


FIELD_CASES = Path(__file__).parents[1] / "integration" / "slurm" / "field-cases"


def test_a_directive_the_bridge_cannot_honour_is_refused_naming_its_line():
    script = (FIELD_CASES / "slurm-sbatch-directives.sh").read_text()
    result = bridge("submit", "-", "--workdir", "/scratch", script=script)
    assert result.exit_code == 3
    assert "script line 2 ('#SBATCH --array=1-3')" in result.output
    assert "job arrays are not supported" in result.output
    assert "Value error" not in result.output


def test_a_job_without_a_time_limit_says_where_to_give_one():
    result = bridge(
        "submit", "-", "--name", "x", "--workdir", "/scratch", script="#!/bin/bash\ntrue\n"
    )
    assert result.exit_code == 3
    assert "time_limit_minutes: missing (give --time or an #SBATCH line)" in result.output


def test_an_option_that_contradicts_a_directive_is_refused():
    result = bridge(
        *["submit", "-", "--cpus", "4", "--workdir", "/scratch"],
        script="#!/bin/bash\n#SBATCH -J n -t 10 --cpus-per-task=2\ntrue\n",
    )
    assert result.exit_code == 3
    assert "sets cpus=2 but the job spec gives cpus=4" in result.output


OK_SCRIPT = "#!/bin/bash\n#SBATCH --job-name=t --time=5 --chdir=/tmp\ntrue\n"


@pytest.mark.parametrize(
    ("options", "env", "words"),
    [
        (["--ca-file", "/nonexistent/ca.pem"], {}, "cannot read the CA file"),
        (["--ca-file", "/etc/hostname"], {}, "holds no PEM certificate"),
        ([], {"FEDEPLOY_BRIDGE_TOKEN": "t\u00f6ken-canary"}, "outside ASCII"),
        ([], {"FEDEPLOY_BRIDGE_TOKEN": "tok\nen-canary"}, "line break"),
        ([], {"FEDEPLOY_BRIDGE_USER": "fed eploy"}, "not a user name"),
        (["--timeout", "-1"], {}, "timeout must be a number of seconds above 0"),
        (["--timeout", "nan"], {}, "timeout must be a number of seconds above 0"),
        (
            [],
            {"FEDEPLOY_BRIDGE_URL": "https://admin:hunter2-canary@127.0.0.1:9"},
            "must not carry a user or password",
        ),
        ([], {"FEDEPLOY_BRIDGE_URL": "https://127.0.0.1:9/?x=1"}, "without a query"),
    ],
)
def test_bad_connection_settings_are_clear_errors_not_bugs(options, env, words, tmp_path):
    """Each once ended in 'internal error' (a traceback with --debug), was accepted silently, or
    echoed the password of the URL in the error."""
    result = bridge(*options, "--retries", "0", "status", "1", env=ENV | env)
    assert result.exit_code in (2, 3, 4), result.output
    assert words in result.output
    assert "canary" not in result.output
    assert "does not answer" not in result.output  # refused before any request


@pytest.mark.parametrize("wait", ["-5", "nan", "inf"])
def test_a_wait_that_is_not_a_finite_duration_is_refused(wait):
    result = bridge("--retries", "0", "submit", "-", "--wait", wait, script=OK_SCRIPT)
    assert result.exit_code == 3
    assert "--wait must be a number of seconds" in result.output


def test_a_binary_script_is_a_clear_error(tmp_path):
    binary = tmp_path / "a.out"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe")
    result = bridge("submit", str(binary))
    assert result.exit_code == 3
    assert "not UTF-8 text" in result.output


def test_an_env_variable_given_twice_differently_is_refused():
    result = bridge("submit", "-", "--env", "EPOCHS=5", "--env", "EPOCHS=50", script=OK_SCRIPT)
    assert result.exit_code == 3
    assert "--env EPOCHS is given twice with different values" in result.output


def test_an_out_of_range_directive_value_names_its_line():
    script = "#!/bin/bash\n#SBATCH --job-name=t --chdir=/tmp\n#SBATCH --time=100000000\ntrue\n"
    result = bridge("submit", "-", script=script)
    assert result.exit_code == 3
    assert "time_limit_minutes (script line 3 ('#SBATCH --time=100000000'))" in result.output
