"""Shared fixtures: S3 on loopback (moto's threaded server), a small synthetic data set, a
model trained on it once per session, and uvicorn run in a thread."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import pyarrow as pa
import pytest
import torch
import uvicorn
from fedeploy_inference.hourly import StationSeries, to_hourly
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.synthetic import SyntheticSpec, generate
from fedeploy_inference.training import TrainConfig, TrainingResult, train

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request

# Small enough to train in about a second on 2 cores, long enough for several fronts.
SMALL_SPEC = SyntheticSpec(stations=3, days=60)
SMALL_TRAINING = TrainConfig(epochs=30)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, with dummy credentials in the environment."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def settings(s3_endpoint: str) -> InferenceSettings:
    """Settings on a fresh bucket of its own."""
    values = InferenceSettings(
        bucket=f"t-{uuid.uuid4().hex[:12]}",
        s3_endpoint_url=s3_endpoint,
        device="cpu",
        poll_seconds=0.1,
    )
    s3_client(values).create_bucket(Bucket=values.bucket)
    return values


@dataclass(frozen=True)
class SmallData:
    """The small synthetic set as windows and as hourly series."""

    windows: list
    series: dict[str, StationSeries]


@pytest.fixture(scope="session")
def small_data() -> SmallData:
    windows = list(generate(SMALL_SPEC))
    return SmallData(windows, to_hourly(pa.concat_tables([t for _, t in windows])))


@pytest.fixture(scope="session")
def trained(small_data: SmallData) -> TrainingResult:
    """A model trained once per session on the small set."""
    return train(small_data.series, SMALL_TRAINING, torch.device("cpu"))


def unavailable(reason: str) -> None:
    """Skip for a missing peer, or fail where CI requires every integration test to run."""
    if os.environ.get("FEDEPLOY_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"FEDEPLOY_REQUIRE_INTEGRATION=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def stac_api(tmp_path_factory) -> Iterator[str]:
    """stac-fastapi-pgstac with transactions over a fresh pgstac database; its URL."""
    try:
        from loopback import PeerUnavailable, PostgresServer, StacApiServer
    except ImportError as error:
        unavailable(f"the loopback harness cannot be imported: {error}")
    root = tmp_path_factory.mktemp("catalog")
    try:
        postgres = PostgresServer(root / "pg").start()
    except PeerUnavailable as error:
        unavailable(str(error))
    try:
        api = StacApiServer(postgres.create_database("inference"), root / "api").start()
        try:
            yield api.url
        finally:
            api.stop()
    finally:
        postgres.remove()


@pytest.fixture
def skip_or_fail():
    """`unavailable` for tests (test modules cannot import conftest in importlib mode)."""
    return unavailable


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[object]:
    """The bridge engineer's one-node SLURM (scripts/slurm_cluster.py) behind its TLS bridge."""
    import importlib.util
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    root_dir = Path(__file__).resolve().parents[3]
    name = "fedeploy_slurm_cluster"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            name, root_dir / "scripts" / "slurm_cluster.py"
        )
        if spec is None or spec.loader is None:
            unavailable("scripts/slurm_cluster.py is missing")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    reason = module.missing_prerequisites()
    if reason:
        unavailable(reason)
    # Outside pytest's root-only tmp dir: munge, slurm and the job user must reach it.
    root = Path(tempfile.mkdtemp(prefix="fedeploy-infer-slurm-"))
    cluster = module.LocalSlurm(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def job_python() -> Iterator[str]:
    """An interpreter SLURM's job user can run that imports this environment's packages.

    The shared venv's interpreter may live under /root (pyenv), which the job user cannot
    enter: a venv of the system's Python 3.11 adds this environment's site-packages instead.
    """
    import shutil
    import subprocess
    import sys
    import sysconfig
    import tempfile
    from pathlib import Path

    system_python = Path("/usr/bin/python3")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not system_python.exists():
        unavailable("/usr/bin/python3 is missing: the SLURM job user needs an interpreter")
    found = subprocess.run(
        [
            str(system_python),
            "-c",
            "import sys; print(f'python{sys.version_info[0]}.{sys.version_info[1]}')",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if found != version:
        unavailable(f"/usr/bin/python3 is {found}, this environment {version}: no shared ABI")
    root = Path(tempfile.mkdtemp(prefix="fedeploy-job-python-"))
    root.chmod(0o755)
    venv = root / "venv"
    subprocess.run([str(system_python), "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = sysconfig.get_paths()["purelib"]
    (venv / "lib" / version / "site-packages" / "shared-environment.pth").write_text(
        f"import site; site.addsitedir({site_packages!r})\n"
    )
    yield str(venv / "bin" / "python")
    shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _listening(config: uvicorn.Config) -> Iterator[int]:
    """Runs the server of `config` (port 0) in a thread until the block ends; yields its port.
    Fails if it has not started within 20 s."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture
def listening() -> Callable[[uvicorn.Config], AbstractContextManager[int]]:
    """`with listening(config) as port:` runs a uvicorn server on loopback for the block."""
    return _listening
