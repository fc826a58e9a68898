"""Each built image on its own, run as its chart runs it: the user it runs as, that it writes
nothing outside /tmp, and that every console script it installs answers --help."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.images.chart_run import container_of, podman_run_args, referenced_env, storage_secret
from tests.images.conftest import podman

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Which workload of which example site each image's checks take their settings from.
WORKLOADS = {
    "ingestion": ("hpc", "StatefulSet", "ingestion-stream"),
    "inference": ("kubernetes", "Deployment", "inference"),
}
SCRIPTS = {"ingestion": "fedeploy-ingest", "inference": "fedeploy-infer"}
_SCRIPTS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted(e.name for e in m.entry_points(group='console_scripts') "
    "if e.value.startswith(('fedeploy', 'fedeploy_')))))"
)
_IDENTITY = "import os, pathlib; print(os.getuid(), os.getgid(), os.environ.get('HOME'))"


# Stand-in storage keys, in the storage Secret's file as the chart mounts it.
STAND_IN_KEYS = ("AKIDIMAGECHECK0001", "image/check+secret-0001")


def _run_as_chart(manifests, images, service: str, *command: str, entrypoint: str) -> str:
    site, kind, name = WORKLOADS[service]
    chart = container_of(manifests(service, site), kind, name)
    with storage_secret(*STAND_IN_KEYS) as secrets:
        args = podman_run_args(chart, dict.fromkeys(referenced_env(chart), "0"), secrets)
        done = podman(
            "run", "--rm", *args, "--entrypoint", json.dumps([entrypoint]), images[service],
            *command,
        )  # fmt: skip
    return done.stdout


_CREDENTIALS = (
    "import boto3; c = boto3.Session().get_credentials(); "
    "print(c.method, c.access_key, c.secret_key == __import__('sys').argv[1])"
)


@pytest.mark.parametrize("service", sorted(WORKLOADS))
def test_boto3_in_the_image_reads_the_keys_from_the_mounted_file(
    service, images, manifests
) -> None:
    """As the chart runs it (its user, its mounts, its environment: no key variables), the
    image's boto3 finds the storage keys in the shared credentials file."""
    out = _run_as_chart(
        manifests, images, service, "-c", _CREDENTIALS, STAND_IN_KEYS[1], entrypoint="python"
    )
    assert out.split() == ["shared-credentials-file", STAND_IN_KEYS[0], "True"], out


@pytest.mark.parametrize("service", sorted(WORKLOADS))
def test_the_image_runs_as_the_charts_user(service, images, manifests) -> None:
    uid, gid, home = _run_as_chart(
        manifests, images, service, "-c", _IDENTITY, entrypoint="python"
    ).split()
    assert (uid, gid) == ("10001", "10001")
    # A home the read-only root cannot hold would break the first library that caches there.
    assert home.startswith("/tmp") or home == "/", home


@pytest.mark.parametrize("service", sorted(WORKLOADS))
def test_every_console_script_answers_help(service, images, manifests) -> None:
    scripts = json.loads(
        _run_as_chart(manifests, images, service, "-c", _SCRIPTS, entrypoint="python")
    )
    assert SCRIPTS[service] in scripts, scripts
    for script in scripts:
        out = _run_as_chart(manifests, images, service, "--help", entrypoint=script)
        assert "usage" in out.lower(), (script, out)


def _changes(image: str, command: str) -> list[str]:
    """What `podman diff` reports after `sh -c command` ran as 10001 on a writable root."""
    name = f"fedeploy-diff-{uuid.uuid4().hex[:8]}"
    podman(
        "run", "--name", name, "--user", "10001:10001", "--passwd=false", "--network", "host",
        "--mount", "type=tmpfs,destination=/tmp,tmpfs-mode=1777",
        "--entrypoint", json.dumps(["sh", "-c"]), image, command,
    )  # fmt: skip
    try:
        return sorted(podman("diff", name).stdout.splitlines())
    finally:
        podman("rm", "-f", name, check=False)


@pytest.mark.parametrize("service", sorted(WORKLOADS))
def test_the_image_writes_nothing_outside_tmp(service, images) -> None:
    """Without --read-only, importing the service and its --help change nothing but what
    podman itself changes for any container (mount points in /etc; compared with `true`)."""
    script = SCRIPTS[service]
    package = "fedeploy_ingestion.cli" if service == "ingestion" else "fedeploy_inference.cli"
    baseline = _changes(images[service], "true")
    changes = _changes(images[service], f"python -c 'import {package}' && {script} --help")
    assert changes == baseline, sorted(set(changes) - set(baseline))


_IMPORT_ALL = (
    "import importlib, pkgutil, sys; package = importlib.import_module(sys.argv[1]); "
    "[importlib.import_module(m.name) for m in pkgutil.walk_packages(package.__path__, "
    "sys.argv[1] + '.') if not m.name.endswith('.__main__')]; print('ok')"
)


@pytest.mark.parametrize("service", sorted(WORKLOADS))
def test_every_module_of_the_service_imports(service, images, manifests) -> None:
    """A dependency the package imports but does not declare is missing from the image only."""
    out = _run_as_chart(
        manifests, images, service, "-c", _IMPORT_ALL, f"fedeploy_{service}", entrypoint="python"
    )
    assert out.strip() == "ok"
