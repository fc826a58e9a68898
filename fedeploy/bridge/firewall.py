"""Who may reach the bridge's REST listener: one rule set for nftables and the security group."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FirewallRules:
    """The REST port and the address ranges admitted to it, per family, merged and sorted."""

    port: int
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


def firewall_rules(port: int, cidrs: Iterable[str]) -> FirewallRules:
    """Merge the ranges (the cluster's and the config's), refusing the whole internet and none."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for cidr in cidrs:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError as err:
            raise ValueError(f"bridge firewall: {cidr!r} is not an address range: {err}") from None
        if net.prefixlen == 0:
            raise ValueError(
                f"bridge firewall: {cidr!r} admits the whole internet; name the cluster's ranges"
            )
        (v4 if net.version == 4 else v6).append(net)  # type: ignore[arg-type]
    if not v4 and not v6:
        raise ValueError(
            "bridge firewall: no address range is admitted, so nothing could reach the bridge; "
            "pass the cluster's ranges or set site.bridge.allowed_cidrs"
        )
    return FirewallRules(
        port=port,
        ipv4=tuple(str(n) for n in ipaddress.collapse_addresses(v4)),
        ipv6=tuple(str(n) for n in ipaddress.collapse_addresses(v6)),
    )


def security_group_ingress(rules: FirewallRules) -> list[dict[str, Any]]:
    """The security group's only ingress: the REST port, from the admitted ranges."""
    return [
        {
            "description": "SLURM REST API (fedeploy bridge) from the federation's cluster",
            "protocol": "tcp",
            "from_port": rules.port,
            "to_port": rules.port,
            "cidr_blocks": list(rules.ipv4),
            "ipv6_cidr_blocks": list(rules.ipv6),
        }
    ]
