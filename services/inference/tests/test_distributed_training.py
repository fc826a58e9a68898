"""Data-parallel training as a multi-GPU SLURM job runs it, here with two CPU ranks (gloo)."""

import json
import os
import subprocess
import sys

import pytest
from fedeploy_inference.registry import list_versions
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.synthetic import SyntheticSpec, generate
from fedeploy_inference.window_store import write_windows


@pytest.mark.slow
def test_two_ranks_train_together_and_rank_zero_publishes_once(settings):
    client = s3_client(settings)
    write_windows(client, settings.bucket, generate(SyntheticSpec(stations=2, days=20)))
    env = {
        **os.environ,
        "INFER_BUCKET": settings.bucket,
        "INFER_S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "INFER_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
    }
    # The same launcher line slurm_jobs writes for several ranks on one node.
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "fedeploy_inference",
            "train",
            "--epochs",
            "5",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    printed = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1, "only rank 0 publishes and reports"
    assert list_versions(client, settings.bucket, "station-forecast") == [printed[0]["version"]]
