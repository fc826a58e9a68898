"""Who reaches the REST listener: merged ranges, per family; never everyone, never no one."""

from __future__ import annotations

import pytest

from fedeploy.bridge.firewall import firewall_rules, security_group_ingress


def test_ranges_are_merged_sorted_and_split_by_family():
    rules = firewall_rules(
        6820, ["10.40.0.0/17", "10.40.128.0/17", "fd00::/8", "10.1.0.5", "10.40.3.0/24"]
    )
    assert rules.ipv4 == ("10.1.0.5/32", "10.40.0.0/16")
    assert rules.ipv6 == ("fd00::/8",)


@pytest.mark.parametrize(
    ("cidrs", "words"),
    [
        (["0.0.0.0/0"], "whole internet"),
        (["::/0", "10.0.0.0/8"], "whole internet"),
        ([], "nothing could reach the bridge"),
        (["10.0.0.0/33"], "'10.0.0.0/33' is not an address range"),
    ],
)
def test_refused_ranges_are_named(cidrs, words):
    with pytest.raises(ValueError, match=words):
        firewall_rules(6820, cidrs)


def test_the_security_group_admits_the_same_ranges_on_the_rest_port_only():
    [rule] = security_group_ingress(firewall_rules(7000, ["10.40.0.0/16", "fd00::/8"]))
    assert (rule["from_port"], rule["to_port"], rule["protocol"]) == (7000, 7000, "tcp")
    assert rule["cidr_blocks"] == ["10.40.0.0/16"] and rule["ipv6_cidr_blocks"] == ["fd00::/8"]
