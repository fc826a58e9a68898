"""Training and batch prediction as SLURM jobs through the bridge, on the real one-node SLURM:
each job writes its result to storage."""

import io
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fedeploy_inference.bridge_submit import to_bridge_spec
from fedeploy_inference.registry import list_versions
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.slurm_jobs import JobResources, batch_job, training_job
from fedeploy_inference.synthetic import SyntheticSpec, generate
from fedeploy_inference.window_store import write_windows

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RESOURCES = JobResources(partition="debug", time_limit_minutes=10, cpus=2, memory_mb=1024)


def _job_dir(cluster, name):
    path = cluster.jobs_dir / name
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, cluster.user, cluster.user)
    return path


def _environment(job_dir):
    # moto accepts any credentials; a real store gets them from the caller's Secret.
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "HOME": str(job_dir),
        "MPLCONFIGDIR": str(job_dir / "matplotlib"),
        "OMP_NUM_THREADS": "2",
    }


def _run(cluster, job):
    from fedeploy.bridge.client import BridgeClient

    with BridgeClient(
        cluster.endpoint, cluster.user, cluster.token(), ca_file=cluster.ca_file
    ) as bridge:
        job_id = bridge.submit(to_bridge_spec(job))
        status = bridge.wait(job_id, timeout=300, check=False)
    log = next(iter(sorted(Path(job.working_directory).glob("*.out"))), None)
    assert status.succeeded, f"{status.describe()}\n{log.read_text()[-3000:] if log else ''}"
    return status


def test_training_and_batch_jobs_through_the_bridge_write_to_storage(
    settings, slurm_cluster, job_python
):
    client = s3_client(settings)
    write_windows(client, settings.bucket, generate(SyntheticSpec(stations=2, days=20)))
    job_dir = _job_dir(slurm_cluster, f"train-{settings.bucket}")
    job = training_job(
        settings,
        RESOURCES,
        ["--epochs", "5"],
        python=job_python,
        working_directory=str(job_dir),
        extra_environment=_environment(job_dir),
    )
    _run(slurm_cluster, job)
    assert len(list_versions(client, settings.bucket, settings.model_name)) == 1

    batch_dir = _job_dir(slurm_cluster, f"batch-{settings.bucket}")
    job = batch_job(
        settings,
        RESOURCES,
        (0, 40, 20, 55),
        "2026-01-18T00:00:00Z",
        "2026-01-18T06:00:00Z",
        python=job_python,
        working_directory=str(batch_dir),
        extra_environment=_environment(batch_dir),
    )
    _run(slurm_cluster, job)
    keys = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=settings.bucket, Prefix="forecasts/")["Contents"]
    ]
    assert len(keys) == 1
    table = pq.read_table(
        io.BytesIO(client.get_object(Bucket=settings.bucket, Key=keys[0])["Body"].read())
    )
    assert table.num_rows > 0
    assert table["issued_at"][0].as_py() >= datetime(2026, 1, 18, tzinfo=UTC)
