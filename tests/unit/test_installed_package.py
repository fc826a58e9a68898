"""fedeploy installed as the pipelines install it (`pip install ".[deploy]"`, not editable) and
run in a project directory: the charts, templates and images.lock.yaml are the project's, not
files beside the installed package (where there are none)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "d" * 64


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package installed into a folder of its own, without its dependencies (the test's
    environment has them) and without build isolation (no download)."""
    target = tmp_path_factory.mktemp("site-packages")
    build = tmp_path_factory.mktemp("build")
    source = build / "fedeploy"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "node_modules", "__pycache__", "*.egg-info", "services"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
        + ["--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )
    assert not (target / "charts").exists()
    return target


@pytest.fixture
def project(tmp_path) -> Path:
    project = tmp_path / "federation"
    project.mkdir()
    for name in ("charts", "templates", "stacks"):
        shutil.copytree(ROOT / name, project / name)
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    return project


def _fedeploy(installed: Path, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    env.pop("FEDEPLOY_PROJECT_DIR", None)
    return subprocess.run(
        [sys.executable, "-c", "from fedeploy.cli import main; main()", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_installed_cli_plans_with_the_projects_charts_and_lock(installed, project) -> None:
    planned = _fedeploy(installed, project, "plan", "aws-dublin")
    assert planned.returncode == 0, planned.stderr
    assert "advisory [image-digest]" in planned.stdout
    # The pipeline's record step, with the installed CLI, into the project's lock.
    images = _fedeploy(installed, project, "images", "list").stdout.split()
    assert "ghcr.io/fedeploy/ingestion:0.1.0" in images
    recorded = _fedeploy(
        installed, project, "images", "record", *(f"{image}@{DIGEST}" for image in images)
    )
    assert recorded.returncode == 0, recorded.stderr
    assert (project / "images.lock.yaml").is_file()
    pinned = _fedeploy(installed, project, "plan", "aws-dublin")
    assert pinned.returncode == 0, pinned.stderr
    assert "image-digest" not in pinned.stdout


def test_the_project_dir_can_be_named(installed, project, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env_run = subprocess.run(
        [sys.executable, "-c", "from fedeploy.cli import main; main()", "images", "list"],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(installed), "FEDEPLOY_PROJECT_DIR": str(project)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert env_run.returncode == 0, env_run.stderr
    assert "ghcr.io/fedeploy/inference:0.1.0-cuda" in env_run.stdout.split()
