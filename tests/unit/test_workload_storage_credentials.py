"""On kubernetes and hpc sites, whose store is not fedeploy's to scope, each workload mounts the
key its owner scoped when the stack file names one (`storage.workload_credentials`), and the
plan's `storage-identity` advisory names every workload still on the site's keys, the
internet-facing asset endpoint first (second review of issue 27, finding 4)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from fedeploy.config.loader import check_stack_file
from fedeploy.errors import StackConfigError
from fedeploy.plan.run import run_plan
from tests.builders import edit_site
from tests.conftest import STACKS

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
WORKLOADS = ("assets", "ingestion", "inference", "catalog-backup", "catalog-drill")


def _plan(tmp_path: Path, stack: str, credentials: dict[str, str]) -> Any:
    """The report of `stack` planned with `storage.workload_credentials: credentials`."""
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    edit_site(
        stacks / f"Pulumi.{stack}.yaml",
        lambda site: site["storage"].update(workload_credentials=credentials),
    )
    report = run_plan(stacks, [stack], jobs=1)
    assert report.errors == [], report.errors
    return report


def _secrets(values: dict[str, Any]) -> dict[str, str]:
    """The storage Secret of each workload, from the site's release values by release name."""
    backup = values["catalog"]["backup"]
    return {
        "assets": values["catalog"]["assets"]["storage"]["existingSecret"],
        "ingestion": values["ingestion"]["storage"]["existingSecret"],
        "inference": values["inference"]["storage"]["existingSecret"],
        "catalog-backup": backup["existingSecret"],
        "catalog-drill": backup["drill"]["credentialsSecret"],
    }


def _advisories(report: Any, stack: str, rule: str) -> list[str]:
    return [f.message for f in report.sites[stack].findings if f.rule == rule]


@pytest.mark.parametrize("stack", ["cf-waw", "hpc-kajaani"])
def test_every_workload_on_the_sites_keys_is_named_the_asset_endpoint_first(
    example_report: Any, stack: str
) -> None:
    plan = example_report.federation.plans[stack]
    values = {r.inputs["name"]: r.inputs["values"] for r in plan.by_type(RELEASE)}
    assert set(_secrets(values).values()) == {"fedeploy-storage"}
    (message,) = _advisories(example_report, stack, "storage-identity")
    assert message.index("asset endpoint") < message.index("ingestion")
    for words in ("internet-facing", "inference", "catalog-backup", "catalog-drill"):
        assert words in message
    assert "storage.workload_credentials" in message


def test_a_scoped_key_is_mounted_by_its_workload_and_leaves_the_advisory(tmp_path: Path) -> None:
    report = _plan(tmp_path, "cf-waw", {"assets": "assets-read-only"})
    plan = report.federation.plans["cf-waw"]
    values = {r.inputs["name"]: r.inputs["values"] for r in plan.by_type(RELEASE)}
    secrets = _secrets(values)
    assert secrets.pop("assets") == "assets-read-only"
    assert set(secrets.values()) == {"fedeploy-storage"}
    # The Secret is the store owner's: fedeploy neither makes nor changes it.
    made = {s.inputs["metadata"]["name"] for s in plan.by_type(SECRET)}
    assert "assets-read-only" not in made and "fedeploy-storage" in made
    (message,) = _advisories(report, "cf-waw", "storage-identity")
    assert "internet-facing" not in message
    assert message.startswith("on this kubernetes site ingestion, inference")


def test_with_a_key_for_every_workload_no_pod_mounts_the_sites_keys(tmp_path: Path) -> None:
    credentials = {w: f"store-{w}" for w in WORKLOADS}
    report = _plan(tmp_path, "hpc-kajaani", credentials)
    plan = report.federation.plans["hpc-kajaani"]
    values = {r.inputs["name"]: r.inputs["values"] for r in plan.by_type(RELEASE)}
    assert _secrets(values) == credentials
    assert _advisories(report, "hpc-kajaani", "storage-identity") == []
    assert _advisories(report, "hpc-kajaani", "backup-identity") == []
    manifests = str([r.inputs for r in plan.by_type(RELEASE)])
    assert "'fedeploy-storage'" not in manifests


@pytest.mark.parametrize(
    ("credentials", "error"),
    [
        ({"catalog": "x"}, "workload_credentials.catalog"),
        ({"assets": "Not_A_Name"}, "workload_credentials.assets"),
    ],
)
def test_an_unknown_workload_or_a_bad_secret_name_is_refused(
    tmp_path: Path, credentials: dict[str, str], error: str
) -> None:
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    path = stacks / "Pulumi.cf-waw.yaml"
    edit_site(path, lambda site: site["storage"].update(workload_credentials=credentials))
    with pytest.raises(StackConfigError) as raised:
        check_stack_file(path)
    assert error in str(raised.value)
