"""`fedeploy bridge submit|status|cancel` against the real SLURM, configured by the environment."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fedeploy.bridge.command import bridge_app

pytestmark = pytest.mark.integration


@pytest.fixture
def env(slurm):  # type: ignore[no-untyped-def]
    return {
        "FEDEPLOY_BRIDGE_URL": slurm.endpoint,
        "FEDEPLOY_BRIDGE_USER": slurm.user,
        "FEDEPLOY_BRIDGE_TOKEN": slurm.token(),
        "FEDEPLOY_BRIDGE_CA": slurm.ca_file,
    }


def test_submit_waits_and_prints_the_final_status(env, job_dir, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\necho from-the-cli\n")
    result = CliRunner().invoke(
        bridge_app,
        [
            "submit",
            str(script),
            "--name",
            "cli",
            "--time",
            "5",
            "--workdir",
            str(job_dir),
            "--key",
            "cli-1",
            "--wait",
            "60",
            "--json",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["state"] == "COMPLETED" and status["idempotency_key"] == "cli-1"
    with open(status["stdout"]) as out:
        assert out.read() == "from-the-cli\n"
    assert env["FEDEPLOY_BRIDGE_TOKEN"] not in result.output


def test_status_and_cancel_of_a_running_job(env, job_dir):
    runner = CliRunner()
    submitted = runner.invoke(
        bridge_app,
        ["submit", "-", "--name", "cli-sleep", "--time", "5", "--workdir", str(job_dir)],
        input="#!/bin/bash\nsleep 120\n",
        env=env,
    )
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.strip()

    status = runner.invoke(bridge_app, ["status", job_id], env=env)
    assert status.exit_code == 0 and f"job {job_id} (cli-sleep) is" in status.output

    cancelled = runner.invoke(bridge_app, ["cancel", job_id, "--json"], env=env)
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.output)["state"] == "CANCELLED"


def test_a_failing_job_exits_with_the_job_failed_status(env, job_dir):
    result = CliRunner().invoke(
        bridge_app,
        [
            "submit",
            "-",
            "--name",
            "cli-fail",
            "--time",
            "5",
            "--workdir",
            str(job_dir),
            "--wait",
            "60",
        ],
        input="#!/bin/bash\nexit 4\n",
        env=env,
    )
    assert result.exit_code == 6
    assert "is FAILED, exit code 4" in result.output


def test_a_wrong_token_is_an_error_without_a_traceback(env):
    forged = {**env, "FEDEPLOY_BRIDGE_TOKEN": env["FEDEPLOY_BRIDGE_TOKEN"][:-4] + "AAAA"}
    result = CliRunner().invoke(bridge_app, ["status", "1"], env=forged)
    assert result.exit_code == 4
    assert result.output.startswith("error: slurmctld refused the token")
    assert forged["FEDEPLOY_BRIDGE_TOKEN"] not in result.output
