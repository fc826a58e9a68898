"""One way to build the images: `make images` (scripts/build-images.sh) and the release pipelines
build the same Dockerfiles on the same default base, tagged with the charts' appVersion."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "scripts" / "build-images.sh").read_text()
PIPELINES = [
    ROOT / "examples" / "gitops" / "github" / "workflows" / "release.yml",
    ROOT / "examples" / "gitops" / "gitlab" / ".gitlab-ci.yml",
]


def _default_base(dockerfile: str) -> str:
    found = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", (ROOT / dockerfile).read_text(), re.M)
    assert len(found) == 1, dockerfile
    return found[0]


def test_both_cpu_images_default_to_the_same_python_base() -> None:
    # The script builds one base (pulled, or made by mmdebstrap) and passes it to both builds.
    assert _default_base("services/ingestion/Dockerfile") == _default_base(
        "services/inference/Dockerfile"
    )
    assert "s/^ARG PYTHON_IMAGE=//p" in SCRIPT


def test_the_pipelines_build_the_scripts_dockerfiles_without_another_base() -> None:
    assert '--file "services/$service/Dockerfile"' in SCRIPT
    for pipeline in PIPELINES:
        text = pipeline.read_text()
        # The Dockerfile is a matrix value: the CPU images' is the script's own "Dockerfile".
        assert re.search(
            r"services/(\$SERVICE|\$\{\{ matrix\.service \}\})/"
            r"(\$DOCKERFILE|\$\{\{ matrix\.dockerfile \}\})",
            text,
        ), pipeline
        for service in ("ingestion", "inference"):
            assert re.search(
                rf"\{{ ?(service|SERVICE): {service}, (dockerfile|DOCKERFILE): Dockerfile, ", text
            ), (pipeline, service)
        assert "PYTHON_IMAGE" not in text, f"{pipeline} overrides the Dockerfiles' base"
        assert "appVersion" in text


def test_every_build_context_has_its_ignore_file() -> None:
    # The context is the repository root: without it, .venv and build/ would be sent.
    for service in ("ingestion", "inference"):
        ignore = ROOT / "services" / service / "Dockerfile.dockerignore"
        lines = ignore.read_text().splitlines()
        assert "*" in lines and f"!services/{service}/pyproject.toml" in lines
    assert '--ignorefile "services/$service/Dockerfile.dockerignore"' in SCRIPT


def test_the_inference_image_takes_exactly_the_cpu_build_of_torch() -> None:
    dockerfile = (ROOT / "services" / "inference" / "Dockerfile").read_text()
    installs = re.findall(r"pip install [^\n]*", dockerfile)
    # torch comes from the image's lock only (its hash is the CPU wheel's), never by name.
    assert not [line for line in installs if "torch" in line], installs
    assert "-r /src/requirements.txt" in "".join(installs)
    lock = (ROOT / "requirements" / "inference-image.txt").read_text()
    assert re.search(r"^torch==2\.13\.0\+cpu \\$", lock, re.M)
    assert "nvidia-" in dockerfile  # the build refuses CUDA packages
