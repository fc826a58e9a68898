"""A gateway bridge's host (site.bridge.host) is a DNS name or an IPv4 address: the inference
pods reach it through a Service of the cluster's address family and NetworkPolicies that admit
0.0.0.0/0, so an IPv6 literal planned clean and could never be reached (review ports33)."""

from __future__ import annotations

import pytest

from fedeploy.config.loader import check_stack_file
from fedeploy.errors import StackConfigError
from tests.builders import edit_site, example_stacks


@pytest.mark.parametrize("host", ["fd00::22", "2001:db8::1", "::ffff:10.0.0.5"])
def test_an_ipv6_gateway_host_is_refused_at_its_key_saying_why(tmp_path, host):
    stacks = example_stacks(tmp_path / "stacks", ("hpc-kajaani",))
    path = stacks / "Pulumi.hpc-kajaani.yaml"
    edit_site(path, lambda site: site["bridge"].update(host=host))
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    (line,) = [line for line in str(refused.value).splitlines() if "site.bridge.host" in line]
    assert "IPv6 addresses are not supported in bridge.host" in line
    assert "DNS name or IPv4 address" in line


@pytest.mark.parametrize("host", ["login.lumi.example.eu", "192.0.2.10"])
def test_a_dns_name_or_ipv4_gateway_host_plans(tmp_path, host):
    stacks = example_stacks(tmp_path / "stacks", ("hpc-kajaani",))
    path = stacks / "Pulumi.hpc-kajaani.yaml"
    edit_site(path, lambda site: site["bridge"].update(host=host))
    assert check_stack_file(path, check_federation=False).site.bridge.host == host
