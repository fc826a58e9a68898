"""A published catalog whose controller_namespace is kube-system plans (Cilium's Gateway data
plane runs there) but with an advisory: every kube-system pod can then reach the auth proxy."""

from __future__ import annotations

import shutil
from pathlib import Path

from fedeploy.plan.run import run_plan
from tests.conftest import STACKS

ADVISORY = "exposure-kube-system"


def _stacks(tmp_path: Path, namespace: str) -> Path:
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    path = stacks / "Pulumi.ovh-gra.yaml"
    text = path.read_text()
    assert "controller_namespace: gateway-system" in text
    path.write_text(
        text.replace("controller_namespace: gateway-system", f"controller_namespace: {namespace}")
    )
    return stacks


def test_kube_system_as_the_controller_namespace_plans_with_an_advisory(tmp_path) -> None:
    report = run_plan(_stacks(tmp_path, "kube-system"), ["ovh-gra"], jobs=1, cache=None)
    assert not report.errors, report.errors
    _, findings = report.federation.checked["ovh-gra"]
    (found,) = [f for f in findings if f.rule == ADVISORY]
    assert found.enforcement == "advisory"
    assert "services.catalog.exposure.controller_namespace is kube-system" in found.message
    assert "every pod in kube-system" in found.message
    assert "auth proxy" in found.message


def test_a_namespace_of_its_own_gets_no_advisory(tmp_path) -> None:
    report = run_plan(_stacks(tmp_path, "gateway-system"), ["ovh-gra"], jobs=1, cache=None)
    assert not report.errors, report.errors
    _, findings = report.federation.checked["ovh-gra"]
    assert not [f for f in findings if f.rule == ADVISORY]
