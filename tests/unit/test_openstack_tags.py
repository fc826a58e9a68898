"""Site tags on openstack sites: each becomes the string `key=value` on Neutron resources (the
network, subnet, router, security groups), on the Keystone projects of workload_identities and
on the bridge VM (Nova), whose APIs refuse what AWS's rules let through: Neutron tags over 255
characters (neutron/extensions/tagging.py MAX_TAG_LEN), Keystone project tags over 255 or with
'/' or ',' (keystone/resource/schema.py), Nova server tags over 60 or with '/' or ','. Refused
at `site.tags.<key>` before anything is registered, naming what was found and what is allowed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fedeploy.config.loader import validate_site
from fedeploy.errors import StackConfigError
from tests.builders import example_site

OPENSTACK = "ewc-bologna"  # an openstack site with workload_identities (Keystone projects)
BRIDGE_VM = {
    "mode": "vm",
    "flavor_id": "eo2a.large",
    "image_id": "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    "auth_url": "https://keystone.cloudferro.com:5000/v3",
    "partitions": ["batch"],
}


def _site(tags: dict[str, str], **changes: Any) -> dict[str, Any]:
    site = copy.deepcopy(example_site(OPENSTACK))
    site["tags"] = tags
    for key, value in changes.items():
        if value is None:
            site.pop(key, None)
        else:
            site[key] = value
    return site


def _issues(site: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(StackConfigError) as caught:
        validate_site(site, stack_file=f"Pulumi.{OPENSTACK}.yaml", stack=OPENSTACK)
    return {issue.path: issue.message for issue in caught.value.issues}


def _valid(site: dict[str, Any]) -> None:
    validate_site(site, stack_file=f"Pulumi.{OPENSTACK}.yaml", stack=OPENSTACK)


def test_a_tag_over_neutrons_255_characters_is_refused_at_its_key() -> None:
    issues = _issues(_site({"costcentre": "c" * 250}))  # AWS takes it: 250 <= 256
    message = issues["site.tags.costcentre"]
    assert "costcentre=ccc" in message and "(261 characters)" in message
    assert "Neutron" in message and "up to 255 characters" in message


def test_a_slash_is_refused_where_keystone_projects_get_the_tags() -> None:
    issues = _issues(_site({"owner": "eo/platform"}))
    message = issues["site.tags.owner"]
    assert "'owner=eo/platform'" in message and "with '/'" in message
    assert "Keystone (the projects of workload_identities)" in message
    assert "without '/' or ','" in message


def test_a_slash_in_the_key_counts_too() -> None:
    assert "site.tags.team/name" in _issues(_site({"team/name": "eo"}))


def test_without_workload_identities_neutron_takes_a_slash() -> None:
    _valid(_site({"owner": "eo/platform"}, workload_identities=None))


def test_the_bridge_vm_takes_60_characters_without_slash_or_comma() -> None:
    issues = _issues(_site({"purpose": "p" * 60}, workload_identities=None, bridge=BRIDGE_VM))
    message = issues["site.tags.purpose"]
    assert "Nova (the bridge VM, bridge.mode: vm)" in message and "up to 60" in message
    assert "Neutron" not in message  # 68 characters fit Neutron
    _valid(_site({"purpose": "p" * 51}, workload_identities=None, bridge=BRIDGE_VM))


def test_a_tag_key_with_dots_and_colons_is_named_whole() -> None:
    issues = _issues(_site({"CostCentre:Sub.x": "c" * 240}))
    assert "site.tags.CostCentre:Sub.x" in issues, issues


def test_the_example_tags_and_other_kinds_are_unchanged() -> None:
    _valid(_site({"owner": "eo-platform"}))
    aws = copy.deepcopy(example_site("aws-frankfurt"))
    aws["tags"] = {"owner": "eo/platform", "costcentre": "c" * 250}  # AWS's own rules
    validate_site(aws, stack_file="Pulumi.aws-frankfurt.yaml", stack="aws-frankfurt")
