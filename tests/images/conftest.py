"""Fixtures of the image tests: the images built once per session (or reused when their tag
exists in the script's storage), podman on that storage, the charts rendered with the example
federation's values (tests/charts/conftest.py), and loopback peers.

Without podman, and outside CI, the tests skip; with FEDEPLOY_REQUIRE_INTEGRATION=1 they fail.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fedeploy.charts import render_chart
from loopback import MosquittoBroker, PostgresServer, SeaweedS3
from tests.charts.conftest import CHARTS_DIR, NAMESPACE, SITES
from tests.conftest import unavailable
from tests.images.build_inputs import INPUTS_LABEL, inputs_digest
from tests.images.chart_run import ChartContainer, chart_command, podman_run_args, storage_secret
from tests.peers import peer_fixture

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-images.sh"


def podman(
    *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """podman on the build script's storage and containers.conf; `check`: a failure raises
    AssertionError with podman's and the container's output (never the arguments: they may
    hold the loopback store's keys)."""
    done = subprocess.run(
        [str(SCRIPT), "--podman", *args], capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode:
        raise AssertionError(
            f"podman {args[0]} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return done


@contextmanager
def chart_container(
    name: str, chart: ChartContainer, env: dict[str, str], secrets: dict[str, Path], image: str
) -> Iterator[Callable[[], str]]:
    """`image` run detached as `name` the way the chart runs it (`podman_run_args`: `env`, and
    `secrets` as the Secret volumes; `chart_command`), removed on the way out. Yields a function
    that returns the container's log so far (its stdout, then its stderr)."""
    podman("run", "--detach", "--name", name, *podman_run_args(chart, env, secrets),
           *chart_command(chart, image))  # fmt: skip

    def logs() -> str:
        done = podman("logs", name, check=False)
        return done.stdout + done.stderr

    try:
        yield logs
    finally:
        podman("rm", "--force", name, check=False)


def app_version(chart: str) -> str:
    for line in (CHARTS_DIR / chart / "Chart.yaml").read_text().splitlines():
        if line.startswith("appVersion:"):
            return line.split(":", 1)[1].strip().strip('"')
    raise AssertionError(f"charts/{chart}/Chart.yaml has no appVersion")


def _inputs_label(tag: str) -> str | None:
    """The build-inputs digest `tag` is labelled with; None: no such image (or no podman)."""
    done = podman(
        "image", "inspect", "--format", f'{{{{index .Labels "{INPUTS_LABEL}"}}}}', tag, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


def built_image(name: str, tag: str, *, timeout: float = 3600) -> str:
    """`tag`, built by scripts/build-images.sh (FEDEPLOY_IMAGES=`name`, from services/`name`/)
    unless it is labelled with the digest of the tree's build inputs (`inputs_digest`): a tag
    built from other inputs (older code, another lock) is rebuilt, then labelled."""
    folder = ROOT / "services" / name
    more = (folder / "package-lock.json",) if name == "browser" else ()  # its dist's source

    def digest() -> str:
        return inputs_digest(ROOT, folder / "Dockerfile", folder / "Dockerfile.dockerignore", more)

    if _inputs_label(tag) != digest():
        built = subprocess.run(
            [str(SCRIPT)],
            capture_output=True,
            text=True,
            env={**os.environ, "FEDEPLOY_IMAGES": name},
            timeout=timeout,
        )
        if built.returncode:
            unavailable(f"scripts/build-images.sh ({name}) failed:\n{built.stderr[-4000:]}")
        # The same image with the label (no layer added); the digest taken after the build,
        # which may have made context files (the browser's dist).
        with tempfile.TemporaryDirectory(prefix="label-") as context:
            (Path(context) / "Containerfile").write_text(f"FROM {tag}\n")
            podman(
                "build", "--quiet", "--pull=never", "--label", f"{INPUTS_LABEL}={digest()}",
                "--tag", tag, "--file", f"{context}/Containerfile", context,
            )  # fmt: skip
    return tag


class Images:
    """Each service's image tag (its chart's appVersion); `images[service]` is `built_image`'s,
    once per session."""

    def __init__(self) -> None:
        self.ready: dict[str, str] = {}

    def __getitem__(self, service: str) -> str:
        if service not in self.ready:
            tag = f"ghcr.io/fedeploy/{service}:{app_version(service)}"
            self.ready[service] = built_image(service, tag)
        return self.ready[service]


@pytest.fixture(scope="session")
def images() -> Images:
    """The built images, by service (built once per session, or reused)."""
    return Images()


@pytest.fixture(scope="session")
def manifests() -> Callable[[str, str], list[dict[str, Any]]]:
    """`manifests(chart, site)`: the chart rendered with that example site's values."""
    cache: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def render(chart: str, site: str) -> list[dict[str, Any]]:
        if (chart, site) not in cache:
            cache[chart, site] = render_chart(
                CHARTS_DIR / chart, SITES[site][chart], chart, NAMESPACE
            )
        return cache[chart, site]

    return render


broker = peer_fixture(MosquittoBroker, "mosquitto")
s3 = peer_fixture(SeaweedS3, "seaweedfs")
postgres = peer_fixture(PostgresServer, "postgres", teardown="remove")


@pytest.fixture(scope="session")
def storage_keys(s3: SeaweedS3) -> Iterator[dict[str, Path]]:
    """The loopback store's keys as the charts take them: the storage Secret's volume, holding
    the shared credentials file fedeploy writes (`podman_run_args(..., secrets)`)."""
    with storage_secret(s3.endpoint.access_key_id, s3.endpoint.secret_access_key) as secrets:
        yield secrets
