"""The offline plan refuses two resources with one URN, as `pulumi up` does.

Pulumi's mock monitor keeps the last of two registrations with one URN and says nothing, so a
plan came out clean (and its resources.json in no fixed order) for a program `pulumi up` would
refuse: ewc-bologna's catalog drill database password and its catalog-drill storage user's
password were both `ewc-bologna-catalog-drill-password` under the Site.
"""

from __future__ import annotations

import pulumi
import pulumi_random as random
import pytest

from fedeploy import program
from fedeploy.errors import FedeployError
from fedeploy.offline.engine import plan_stack
from tests.conftest import STACKS


def test_two_resources_with_one_urn_fail_the_plan(monkeypatch):
    def build(_project_dir):
        random.RandomPassword("twice", length=8)
        random.RandomPassword("twice", length=12)
        return {}

    monkeypatch.setattr(program, "build", build)
    with pytest.raises(FedeployError, match=r"share the URN .*::twice: `pulumi up` refuses"):
        plan_stack(STACKS / "Pulumi.cf-waw.yaml")


def test_one_name_under_two_parents_is_two_urns(monkeypatch):
    def build(_project_dir):
        first = pulumi.ComponentResource("test:index:First", "parent")
        second = pulumi.ComponentResource("test:index:Second", "parent")
        random.RandomPassword("same", length=8, opts=pulumi.ResourceOptions(parent=first))
        random.RandomPassword("same", length=8, opts=pulumi.ResourceOptions(parent=second))
        return {}

    monkeypatch.setattr(program, "build", build)
    plan = plan_stack(STACKS / "Pulumi.cf-waw.yaml")
    assert [r.name for r in plan.resources].count("same") == 2
