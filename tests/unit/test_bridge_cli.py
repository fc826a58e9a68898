"""`fedeploy bridge` without a bridge: what it asks for, and how it refuses bad input."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fedeploy.bridge.cli import bridge_app

ENV = {
    "FEDEPLOY_BRIDGE_URL": "https://127.0.0.1:9",
    "FEDEPLOY_BRIDGE_USER": "fedeploy",
    "FEDEPLOY_BRIDGE_TOKEN": "opaque-token-canary",
}


def test_missing_connection_settings_are_named():
    result = CliRunner().invoke(bridge_app, ["status", "1"], env={})
    assert result.exit_code == 2
    assert "FEDEPLOY_BRIDGE_URL" in result.output


def test_an_invalid_job_is_refused_before_any_request():
    result = CliRunner().invoke(
        bridge_app,
        [
            "submit",
            "-",
            "--name",
            "x",
            "--time",
            "5",
            "--workdir",
            "relative",
            "--env",
            "SLURM_X=1",
        ],
        input="#!/bin/bash\ntrue\n",
        env=ENV,
    )
    assert result.exit_code == 3
    assert "the job is not valid" in result.output and "working_directory" in result.output
    assert "opaque-token-canary" not in result.output


def test_an_unreachable_bridge_is_a_clear_error():
    result = CliRunner().invoke(
        bridge_app, ["--timeout", "2", "--retries", "0", "status", "1"], env=ENV
    )
    assert result.exit_code == 5
    assert result.output.startswith(
        "error: GET https://127.0.0.1:9/slurm/v0.0.38/job/1: the bridge does not answer after 1 attempt"
    )


FIELD_CASES = Path(__file__).parents[1] / "integration" / "slurm" / "field-cases"


def test_a_directive_the_bridge_cannot_honour_is_refused_naming_its_line():
    script = (FIELD_CASES / "slurm-sbatch-directives.sh").read_text()
    result = CliRunner().invoke(
        bridge_app, ["submit", "-", "--workdir", "/scratch"], input=script, env=ENV
    )
    assert result.exit_code == 3
    assert "script line 2 ('#SBATCH --array=1-3')" in result.output
    assert "job arrays are not supported" in result.output
    assert "Value error" not in result.output


def test_a_job_without_a_time_limit_says_where_to_give_one():
    result = CliRunner().invoke(
        bridge_app,
        ["submit", "-", "--name", "x", "--workdir", "/scratch"],
        input="#!/bin/bash\ntrue\n",
        env=ENV,
    )
    assert result.exit_code == 3
    assert "time_limit_minutes: missing (give --time or an #SBATCH line)" in result.output


def test_an_option_that_contradicts_a_directive_is_refused():
    result = CliRunner().invoke(
        bridge_app,
        ["submit", "-", "--cpus", "4", "--workdir", "/scratch"],
        input="#!/bin/bash\n#SBATCH -J n -t 10 --cpus-per-task=2\ntrue\n",
        env=ENV,
    )
    assert result.exit_code == 3
    assert "sets cpus=2 but the job spec gives cpus=4" in result.output
