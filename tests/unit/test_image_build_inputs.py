"""The image tests' images are rebuilt when what they are built from changed (review left27,
finding 2: a tag built before a change passed the image test without testing it). Runs without
podman: the digest of the build inputs, and `built_image` with podman and the script stood in."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.images import conftest as images
from tests.images.build_inputs import INPUTS_LABEL, context_files, inputs_digest

IGNORE = """# Build context is the repository root: send only what the image installs.
*
!pkg/
!requirements/x-image.txt
**/__pycache__
**/*.pyc
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    files = {
        "services/x/Dockerfile": "FROM base\nCOPY requirements/x-image.txt pkg/ /src/\n",
        "services/x/Dockerfile.dockerignore": IGNORE,
        "pkg/a.py": "A = 1\n",
        "pkg/sub/b.py": "B = 1\n",
        "pkg/__pycache__/a.cpython-311.pyc": "compiled",
        "pkg/sub/c.pyc": "compiled",
        "requirements/x-image.txt": "httpx==0.28.1\n",
        "requirements/dev.txt": "pytest==8\n",
        "other/unrelated.py": "U = 1\n",
        "README.md": "readme\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def _digest(root: Path) -> str:
    return inputs_digest(
        root, root / "services/x/Dockerfile", root / "services/x/Dockerfile.dockerignore"
    )


def test_the_context_is_what_the_dockerignore_lets_through(tree: Path) -> None:
    found = context_files(tree, tree / "services/x/Dockerfile.dockerignore")
    assert found == ["pkg/a.py", "pkg/sub/b.py", "requirements/x-image.txt"]


@pytest.mark.parametrize(
    "changed",
    ["pkg/a.py", "pkg/sub/b.py", "pkg/new.py", "requirements/x-image.txt",
     "services/x/Dockerfile", "services/x/Dockerfile.dockerignore"],
)  # fmt: skip
def test_a_changed_input_changes_the_digest(tree: Path, changed: str) -> None:
    before = _digest(tree)
    with (tree / changed).open("a") as file:
        file.write("# changed\n")
    assert _digest(tree) != before


@pytest.mark.parametrize(
    "changed",
    ["other/unrelated.py", "README.md", "requirements/dev.txt",
     "pkg/__pycache__/a.cpython-311.pyc", "pkg/sub/c.pyc", "pkg/__pycache__/new.pyc"],
)  # fmt: skip
def test_an_unrelated_file_leaves_the_digest_alone(tree: Path, changed: str) -> None:
    before = _digest(tree)
    (tree / changed).parent.mkdir(parents=True, exist_ok=True)
    with (tree / changed).open("a") as file:
        file.write("# changed\n")
    assert _digest(tree) == before


def test_the_repositorys_images_take_their_code_and_lock() -> None:
    drill = context_files(ROOT, ROOT / "services/restore-drill/Dockerfile.dockerignore")
    assert "fedeploy/restore_drill/scratch.py" in drill and "fedeploy/errors.py" in drill
    assert not [name for name in drill if not name.startswith("fedeploy/")]
    assert not [name for name in drill if "__pycache__" in name or name.endswith(".pyc")]
    ingestion = context_files(ROOT, ROOT / "services/ingestion/Dockerfile.dockerignore")
    assert "requirements/ingestion-image.txt" in ingestion
    assert "services/ingestion/pyproject.toml" in ingestion


class _Podman:
    """podman on the script's storage, stood in: `labels` by tag; builds are recorded."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels, self.builds = labels, []

    def __call__(self, *args: str, check: bool = True, timeout: float = 300):
        if args[:2] == ("image", "inspect"):
            tag = args[-1]
            known = tag in self.labels
            return subprocess.CompletedProcess(args, 0 if known else 125, self.labels.get(tag, ""))
        assert args[0] == "build", args
        self.builds.append(args)
        label = args[args.index("--label") + 1]
        self.labels[args[args.index("--tag") + 1]] = label.split("=", 1)[1]
        return subprocess.CompletedProcess(args, 0, "", "")


def _built(monkeypatch, labels: dict[str, str]) -> tuple[_Podman, list[str]]:
    stand_in, scripts = _Podman(labels), []

    def script(argv, *, env, **_kwargs):
        scripts.append(env["FEDEPLOY_IMAGES"])
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(images, "podman", stand_in)
    monkeypatch.setattr(images.subprocess, "run", script)
    assert images.built_image("restore-drill", "ghcr.io/fedeploy/restore-drill:t") == (
        "ghcr.io/fedeploy/restore-drill:t"
    )
    return stand_in, scripts


def _tree_digest() -> str:
    folder = ROOT / "services/restore-drill"
    return inputs_digest(ROOT, folder / "Dockerfile", folder / "Dockerfile.dockerignore")


@pytest.mark.parametrize("label", [None, "", "0" * 64], ids=["missing", "unlabelled", "stale"])
def test_an_image_built_from_other_inputs_is_rebuilt_and_labelled(monkeypatch, label) -> None:
    tag = "ghcr.io/fedeploy/restore-drill:t"
    podman, scripts = _built(monkeypatch, {} if label is None else {tag: label})
    assert scripts == ["restore-drill"]
    (build,) = podman.builds
    assert f"{INPUTS_LABEL}={_tree_digest()}" in build and "--pull=never" in build
    assert podman.labels[tag] == _tree_digest()


def test_an_image_built_from_the_trees_inputs_is_kept(monkeypatch) -> None:
    podman, scripts = _built(monkeypatch, {"ghcr.io/fedeploy/restore-drill:t": _tree_digest()})
    assert scripts == [] and podman.builds == []
