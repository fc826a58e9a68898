"""`fedeploy bridge` without a bridge: what it asks for, and how it refuses bad input."""

from __future__ import annotations

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
