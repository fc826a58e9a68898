"""Training and batch jobs built for SLURM: launch lines, resources, environment, identity."""

import pytest
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.slurm_jobs import JobResources, batch_job, job_environment, training_job

SETTINGS = InferenceSettings(
    bucket="site-a-data",
    s3_endpoint_url="http://127.0.0.1:9000",
    bridge_url="https://bridge:6820",
    bridge_user="svc",
    bridge_token="very-secret-token",
    bridge_partition="gpu",
)


def test_one_gpu_runs_one_process_under_srun():
    job = training_job(SETTINGS, JobResources(gpus=1), ["--epochs", "5"], python="/venv/bin/python")
    assert job.script.startswith("#!/bin/bash\nset -euo pipefail\n")
    assert "srun --ntasks=1 /venv/bin/python -m fedeploy_inference train --epochs 5" in job.script
    assert "torch.distributed.run" not in job.script
    assert job.gpus == 1 and job.partition == "gpu"


def test_several_gpus_start_torchrun_once_per_node_with_one_rank_per_gpu():
    job = training_job(SETTINGS, JobResources(nodes=2, gpus=4), python="python3")
    assert "srun --ntasks-per-node=1 python3 -m torch.distributed.run" in job.script
    assert "--nproc-per-node=4" in job.script and '--nnodes="$SLURM_NNODES"' in job.script
    assert '--rdzv-endpoint="$head:29500"' in job.script and "scontrol show hostnames" in job.script
    assert job.nodes == 2


def test_cpu_data_parallel_asks_for_processes_not_gpus():
    job = training_job(SETTINGS, JobResources(processes_per_node=2))
    assert "--nproc-per-node=2" in job.script and job.gpus == 0


def test_environment_carries_settings_but_never_the_bridge_token():
    env = job_environment(SETTINGS, {"AWS_ACCESS_KEY_ID": "k"})
    assert env["INFER_BUCKET"] == "site-a-data"
    assert env["INFER_S3_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert env["AWS_ACCESS_KEY_ID"] == "k" and "PATH" in env
    assert not any("BRIDGE" in k for k in env)
    assert "very-secret-token" not in repr(training_job(SETTINGS, JobResources()))


def test_idempotency_key_is_stable_and_ignores_secret_values():
    def job(secret, epochs="5"):
        return training_job(
            SETTINGS,
            JobResources(),
            ["--epochs", epochs],
            extra_environment={"AWS_SECRET_ACCESS_KEY": secret},
        )

    assert job("a").idempotency_key == job("b").idempotency_key
    assert job("a").idempotency_key != job("a", epochs="6").idempotency_key


def test_arguments_are_quoted_for_the_shell():
    job = training_job(SETTINGS, JobResources(), ["--note", "it's; rm -rf /"])
    assert "'it'\"'\"'s; rm -rf /'" in job.script


def test_batch_job_runs_the_batch_command_for_the_area_and_period():
    job = batch_job(
        SETTINGS,
        JobResources(partition="batch", time_limit_minutes=30),
        (5, 45, 15.5, 52),
        "2026-04-01T00:00:00Z",
        "2026-04-02T00:00:00Z",
    )
    assert (
        "-m fedeploy_inference batch --bbox 5,45,15.5,52 --start 2026-04-01T00:00:00Z" in job.script
    )
    assert job.partition == "batch" and job.time_limit_minutes == 30


def test_batch_job_refuses_several_processes():
    with pytest.raises(ValueError, match="nodes=2"):
        batch_job(SETTINGS, JobResources(nodes=2), (0, 0, 1, 1), "a", "b")


@pytest.mark.parametrize("field", ["time_limit_minutes", "nodes", "cpus", "memory_mb"])
def test_resources_below_their_minimum_are_refused_by_name(field):
    with pytest.raises(ValueError, match=field):
        JobResources(**{field: 0})
