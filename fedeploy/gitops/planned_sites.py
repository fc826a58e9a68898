"""What the offline plan of a project tree says about each site: its exported contract, the
charts it releases and the images its rendered manifests run.

The plan runs as `python -m fedeploy.cli plan` inside the tree, with the tree first on the
import path: the base revision is planned by the base revision's own program, and Pulumi's
process-wide runtime state never mixes two revisions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RELEASE = "kubernetes:helm.sh/v3:Release"
POD_CONTAINER_KEYS = ("containers", "initContainers", "ephemeralContainers")
PLAN_TIMEOUT_S = 1800
# A recorded plan (--head-plan): `fedeploy plan --format json --out DIR > DIR/plan.json` of a
# revision, made where that revision's code ran. It is untrusted data: bounded, parsed, never run.
RECORDED_REPORT = "plan.json"
RECORDED_MAX_BYTES = 256 * 1024 * 1024
# Each JSON file's bound: a parse holds ~20 times its bytes (`[{},{},...]`). The example's plan.json
# is 58 KB for 7 sites and its largest resources.json 54 KB: 32 MiB leaves room for thousands.
RECORDED_MAX_JSON_BYTES = 32 * 1024 * 1024
SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a Pulumi stack name, no path


@dataclass(frozen=True)
class PlannedSite:
    """One site as its offline plan shows it."""

    outputs: dict[str, Any]
    charts: frozenset[str] = frozenset()
    images: frozenset[str] = frozenset()
    unrendered_releases: int = 0


@dataclass
class PlannedFederation:
    """Every site the plan reached, and what stopped it if anything did."""

    sites: dict[str, PlannedSite] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def plan_tree(
    tree: Path,
    stacks_dir: str = "stacks",
    python: str = sys.executable,
    recorded: Path | None = None,
) -> PlannedFederation:
    """Run the offline plan of every stack in `tree` and read what it recorded; with `recorded`,
    read that recorded plan (read_recorded_plan) instead of running the tree's program."""
    with tempfile.TemporaryDirectory(prefix="fedeploy-affected-plan-") as tmp:
        if recorded is None:
            out = Path(tmp)
            report, failure = run_plan_in_tree(tree, stacks_dir, out, python)
        else:
            out = recorded
            report, failure = read_recorded_plan(recorded)
        if report is None:
            return PlannedFederation(errors=[failure])
        planned = PlannedFederation(errors=[str(e) for e in report.get("errors", [])])
        try:
            for name, site in report.get("sites", {}).items():
                planned.sites[name] = _read_site(out / name, site.get("outputs") or {})
        except (OSError, ValueError, AttributeError, yaml.YAMLError) as err:
            return PlannedFederation(errors=[f"the plan in {out} cannot be read: {err}"])
        return planned


def read_recorded_plan(directory: Path) -> tuple[dict[str, Any] | None, str]:
    """The JSON report of a plan recorded in `directory` (its `plan.json` beside the files of
    `--out`), checked as untrusted data: regular files only, RECORDED_MAX_BYTES in all and
    RECORDED_MAX_JSON_BYTES a JSON file, a JSON object whose sites are stack names with a folder
    each. Returns (report, "") or (None, why). Its manifests are read by load_manifests."""
    total = 0
    for path in [directory, *directory.rglob("*")]:
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            return None, f"the recorded plan {directory} holds {path}, not a plain file"
        size = path.stat().st_size if path.is_file() else 0
        if path.suffix == ".json" and size > RECORDED_MAX_JSON_BYTES:
            return None, f"the recorded plan's {path} is over {RECORDED_MAX_JSON_BYTES} bytes"
        total += size
        if total > RECORDED_MAX_BYTES:
            return None, f"the recorded plan {directory} is over {RECORDED_MAX_BYTES} bytes"
    try:
        report = json.loads((directory / RECORDED_REPORT).read_text())
    except (OSError, ValueError) as err:
        return None, f"the recorded plan {directory} has no readable {RECORDED_REPORT}: {err}"
    sites = report.get("sites") if isinstance(report, dict) else None
    if not isinstance(sites, dict) or not isinstance(report.get("errors", []), list):
        return None, f"{directory / RECORDED_REPORT} is not the JSON report of `fedeploy plan`"
    for name, site in sites.items():
        if not SITE_NAME.fullmatch(name) or not isinstance(site, dict):
            return None, f"{directory / RECORDED_REPORT} names a site {name!r}: not a stack name"
        if not (directory / name).is_dir():
            return None, f"the recorded plan {directory} has no folder for site {name!r}"
    return report, ""


class _NoAliasLoader(yaml.SafeLoader):
    """yaml's safe loader that refuses anchors and aliases (a few bytes of aliases can expand to
    gigabytes); `fedeploy plan` never writes either."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases are refused in a planned manifest",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def load_manifests(text: str) -> Iterator[Any]:
    """The documents of a planned manifest file, anchors and aliases refused (yaml.YAMLError)."""
    return yaml.load_all(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)


def run_plan_in_tree(
    tree: Path, stacks_dir: str, out: Path, python: str = sys.executable
) -> tuple[dict[str, Any] | None, str]:
    """`fedeploy plan --format json --out OUT` of the tree's own program, run inside the tree.

    Returns the JSON report (each site's resources, outputs and manifests are then under
    `out/<site>/`), or None and why the plan gave no report (a crash, a timeout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(tree.resolve()), env.get("PYTHONPATH")) if p
    )
    # The tree's own charts and program, even where the caller chose another project with
    # FEDEPLOY_PROJECT_DIR (the base revision would otherwise be planned with today's charts).
    env["FEDEPLOY_PROJECT_DIR"] = str(tree.resolve())
    command = [
        python,
        "-m",
        "fedeploy.cli",
        "plan",
        "--stacks-dir",
        stacks_dir,
        "--format",
        "json",
        "--out",
        str(out),
    ]
    try:
        done = subprocess.run(
            command,
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=PLAN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"the offline plan of {tree} ran past {PLAN_TIMEOUT_S} s"
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = done.stderr.strip()[-1500:] or done.stdout.strip()[-1500:]
        return None, f"the offline plan of {tree} exited {done.returncode}: {tail}"
    return report, ""


def _read_site(site_out: Path, outputs: dict[str, Any]) -> PlannedSite:
    resources_file = site_out / "resources.json"
    resources = json.loads(resources_file.read_text()) if resources_file.is_file() else []
    charts = {
        str(r["inputs"]["chart"]).rstrip("/").rsplit("/", 1)[-1]
        for r in resources
        if r.get("type") == RELEASE and r.get("inputs", {}).get("chart")
    }
    releases = sum(1 for r in resources if r.get("type") == RELEASE)
    images: set[str] = set()
    manifest_files = sorted((site_out / "manifests").glob("*.yaml"))
    for manifest in manifest_files:
        for document in load_manifests(manifest.read_text()):
            images.update(image_name(ref) for ref in container_images(document))
    return PlannedSite(
        outputs=outputs,
        charts=frozenset(charts),
        images=frozenset(images),
        unrendered_releases=max(0, releases - len(manifest_files)),
    )


def container_images(node: Any) -> Iterator[str]:
    """Every container image a Kubernetes object (or any structure holding pod specs) names."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in POD_CONTAINER_KEYS and isinstance(value, list):
                for container in value:
                    if isinstance(container, dict) and isinstance(container.get("image"), str):
                        yield container["image"]
            else:
                yield from container_images(value)
    elif isinstance(node, list):
        for item in node:
            yield from container_images(item)


def image_name(reference: str) -> str:
    """The last path component of an image's repository: `ghcr.io/fedeploy/ingestion:0.1.0` -> `ingestion`."""
    repository = reference.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]
