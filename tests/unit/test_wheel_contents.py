"""The installed `fedeploy` wheel holds the runtime (fedeploy, components, policies) and no test
peer: the loopback servers are the `loopback` distribution (loopback/), used by tests only.

The wheel is built from a copy of the working tree, so no stale `build/lib` of this checkout (which
setuptools never cleans) can add or hide a file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("fedeploy", "components", "policies")
# What never goes into the copy: environments, build outputs, caches, git.
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    "node_modules",
    ".hypothesis",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".plan-out",
    ".tmp",
)


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The file names inside a fedeploy wheel freshly built from a copy of this tree."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    out = tmp / "out"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["--disable-pip-version-check", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}{built.stderr}"
    (wheel,) = out.glob("fedeploy-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.mark.slow
def test_the_wheel_holds_no_test_peer(wheel_names: list[str]) -> None:
    peers = [n for n in wheel_names if "loopback" in PurePosixPath(n).parts[:-1]]
    peers += [n for n in wheel_names if PurePosixPath(n).parts[0] in ("loopback", "tests")]
    assert not peers, f"test peers in the fedeploy wheel: {peers[:5]}"
    # The peers' own modules, wherever a move might put them.
    for module in ("enforcing_s3.py", "hostile_upstream.py", "sentinel_upstream.py"):
        assert not [n for n in wheel_names if n.endswith("/" + module)], module


@pytest.mark.slow
def test_the_wheel_holds_exactly_the_runtime_packages(wheel_names: list[str]) -> None:
    tops = {PurePosixPath(n).parts[0] for n in wheel_names}
    assert tops - {n for n in tops if n.endswith(".dist-info")} == set(RUNTIME_PACKAGES)
    modules = {
        path.relative_to(ROOT).as_posix()
        for package in RUNTIME_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    missing = sorted(modules - set(wheel_names))
    assert not missing, f"modules of the runtime packages missing from the wheel: {missing[:5]}"
    assert "fedeploy/py.typed" in wheel_names
    # The vendored custom resource schemas the plan validates HTTPRoutes with.
    assert "fedeploy/crd_schemas/httproute-gateway-v1.json" in wheel_names
