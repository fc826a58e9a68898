"""What one changed path touches, decided from the path alone (plus the program's own files).

The rules, first match wins; each answer carries the words a reviewer reads in the report:

| path | touches |
|---|---|
| `<stacks>/Pulumi.<site>.yaml` | that site (deleted: the site is removed) |
| `tests/**`, `loopback/**` (the tests' peers), `services/<s>/tests/**`, `docs/**`, `*.md` | nothing |
| `charts/<c>/**` | every site whose plan releases chart `c` |
| `services/<s>/**` | every site whose rendered manifests run the image built from it |
| `policies/**` | every site: previews and the plan check them |
| `templates/**` | every site with a SLURM bridge (they render its node configuration) |
| `Pulumi.yaml`, `__main__.py`, `pyproject.toml` | every site |
| `images.lock.yaml` | every site: the image digests its releases are pinned to |
| a file the Pulumi program loads (import closure of `__main__.py`) | every site |
| any other file of `fedeploy/` or `components/` | every site: fedeploy's own code plans, reviews, deploys and verifies every site |
| `examples/`, `benchmarks/`, `scripts/`, `schemas/`, CI files, `Makefile`, licence | nothing |
| anything else | every site: an unknown path is assumed to matter |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from fedeploy.config.loader import STACK_FILE

Scope = Literal["stack", "chart", "service", "bridges", "every", "nothing"]

PROJECT_FILES = frozenset({"Pulumi.yaml", "__main__.py", "pyproject.toml"})
IMAGE_LOCK = "images.lock.yaml"
PROGRAM_PACKAGES = ("fedeploy", "components")
# Paths that never reach a stack: documentation, tooling, the pipelines themselves.
# loopback/ is the tests' stand-in peers (a package of its own): it serves tests only.
INERT_DIRS = frozenset(
    {
        "docs",
        "tests",
        "loopback",
        "examples",
        "benchmarks",
        "scripts",
        "schemas",
        ".github",
        ".gitlab",
        ".ci",
    }
)
INERT_FILES = frozenset(
    {
        "Makefile",
        ".gitignore",
        ".gitattributes",
        ".gitlab-ci.yml",
        ".editorconfig",
        ".pre-commit-config.yaml",
    }
)


@dataclass(frozen=True)
class Touch:
    """What a path touches: a scope, the name inside it (site, chart, service), and why."""

    scope: Scope
    name: str = ""
    why: str = ""


def classify(
    path: str, status: str, program_files: frozenset[str], stacks_dir: str = "stacks"
) -> Touch:
    """The Touch of one changed path; `program_files` are the paths the Pulumi program loads."""
    parts = PurePosixPath(path).parts
    top = parts[0] if parts else ""
    stacks_dir = str(PurePosixPath(stacks_dir))
    stack = _stack_name(path, stacks_dir)
    if stack is not None:
        return Touch(
            "stack", stack, "stack file deleted" if status == "D" else "stack file changed"
        )
    if top in INERT_DIRS or path.endswith(".md") or (top == "services" and "tests" in parts[2:3]):
        return Touch("nothing", why="documentation, tests or tooling")
    if top == "charts" and len(parts) > 2:
        return Touch("chart", parts[1], f"chart {parts[1]} changed")
    if top == "services" and len(parts) > 2:
        return Touch("service", parts[1], f"service {parts[1]} changed (its image)")
    if top == "policies":
        return Touch("every", why="the policy pack changed")
    if top == "templates":
        return Touch("bridges", why="the bridge templates changed")
    if path in PROJECT_FILES:
        return Touch("every", why=f"{path} (the Pulumi project) changed")
    if path == IMAGE_LOCK:
        return Touch("every", why="image digests changed (images.lock.yaml)")
    if path in program_files:
        return Touch("every", why="program code changed")
    if top in PROGRAM_PACKAGES:
        # The offline plan, `fedeploy diff`, this command and `fedeploy verify` decide what a
        # review shows and what a wave accepts for every site: a change there is never nothing.
        return Touch("every", why=f"fedeploy's own code changed ({top}/)")
    if top == stacks_dir or path in INERT_FILES or top.upper().startswith("LICENSE"):
        return Touch("nothing", why="not read by any stack")
    return Touch("every", why="unrecognised path, assumed to affect every site")


def _stack_name(path: str, stacks_dir: str) -> str | None:
    pure = PurePosixPath(path)
    if str(pure.parent) != stacks_dir:
        return None
    match = STACK_FILE.match(pure.name)
    return match["stack"] if match else None
