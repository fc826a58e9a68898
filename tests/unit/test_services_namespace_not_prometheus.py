"""The services' namespace is fedeploy's (created, labelled restricted, deleted with the stack):
it cannot be the cluster Prometheus's (monitoring.namespace), which planned clean (review
sweep33 F14c, left by sched33)."""

from __future__ import annotations

import pytest

from fedeploy.config.loader import check_stack_file
from fedeploy.errors import StackConfigError
from tests.builders import edit_site, example_stacks


def _set(site: dict, stack: str, namespace: str) -> None:
    site.setdefault("services", {})["namespace"] = namespace
    site["monitoring"]["namespace"] = "observability"


@pytest.mark.parametrize("stack", ["aws-dublin", "eu-hub"])
def test_the_services_in_prometheus_namespace_are_refused(tmp_path, stack):
    stacks = example_stacks(tmp_path / "stacks", (stack,))
    path = stacks / f"Pulumi.{stack}.yaml"
    edit_site(path, lambda site: _set(site, stack, "observability"))
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    text = str(refused.value)
    assert "services.namespace is 'observability', also monitoring.namespace" in text, text


@pytest.mark.parametrize("stack", ["aws-dublin", "eu-hub"])
def test_a_namespace_of_their_own_plans(tmp_path, stack):
    stacks = example_stacks(tmp_path / "stacks", (stack,))
    path = stacks / f"Pulumi.{stack}.yaml"
    edit_site(path, lambda site: _set(site, stack, "eofed"))
    check_stack_file(path, check_federation=False)


def test_with_monitoring_off_the_default_prometheus_namespace_is_not_held_against_them(tmp_path):
    """monitoring.enabled false: no Prometheus is met, so its default namespace, which the user
    never wrote, refuses nothing (review rw33b F3)."""
    stacks = example_stacks(tmp_path / "stacks", ("aws-dublin",))
    path = stacks / "Pulumi.aws-dublin.yaml"

    def edit(site: dict) -> None:
        site["services"]["namespace"] = "monitoring"
        site["monitoring"] = {"enabled": False}

    edit_site(path, edit)
    check_stack_file(path, check_federation=False)
