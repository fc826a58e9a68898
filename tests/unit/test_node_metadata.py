"""EKS nodes require IMDSv2 through a launch template (hop limit 2), and the policy pack checks it."""

from __future__ import annotations

import pytest

from fedeploy.plan.checks import subjects
from policies.cloud import encrypted_at_rest
from policies.findings import Subject
from tests.unit.test_example_federation import AWS

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


@pytest.mark.parametrize("stack", AWS)
def test_every_node_group_boots_from_a_template_that_requires_imdsv2(example_plans, stack):
    plan = example_plans[stack]
    groups = plan.by_type(NODE_GROUP)
    templates = {r.name: r.inputs for r in plan.by_type(TEMPLATE)}
    assert groups and len(templates) == len(groups)
    for group in groups:
        assert group.inputs["launchTemplate"]["id"], group.name
        assert "diskSize" not in group.inputs  # EKS refuses it beside a launch template
    for name, template in templates.items():
        metadata = template["metadataOptions"]
        assert metadata["httpTokens"] == "required", name
        assert metadata["httpPutResponseHopLimit"] == 2, name
        (root,) = template["blockDeviceMappings"]
        assert root["ebs"]["encrypted"] == "true" and root["ebs"]["volumeSize"] >= 20


@pytest.mark.parametrize("stack", AWS)
def test_the_policy_pack_passes_the_planned_node_groups(example_plans, stack):
    found = [f for f in encrypted_at_rest(subjects(example_plans[stack])) if f.rule == "imdsv2"]
    assert found == []


@pytest.mark.parametrize(
    ("resources", "words"),
    [
        ([Subject(NODE_GROUP, "ng", {"nodeGroupName": "cpu"})], "no launch template"),
        (
            [Subject(TEMPLATE, "lt", {"metadataOptions": {"httpTokens": "optional"}})],
            "does not require IMDSv2",
        ),
        (
            [
                Subject(
                    TEMPLATE,
                    "lt",
                    {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 5}},
                )
            ],
            "hop limit > 2",
        ),
    ],
)
def test_the_policy_pack_flags_node_groups_that_allow_imdsv1(resources, words):
    (finding,) = encrypted_at_rest(resources)
    assert finding.rule == "imdsv2" and words in finding.message
