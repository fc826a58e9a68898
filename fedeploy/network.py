"""How a VPC's address range is cut into subnets over availability zones."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SubnetLayout:
    """Private and public subnets, one of each per zone, in zone order."""

    private: list[tuple[str, str]]  # (zone, cidr)
    public: list[tuple[str, str]]


def subnet_layout(cidr: str, zones: list[str]) -> SubnetLayout:
    """Private subnets take the first half of the range (nodes and pods need addresses), public
    subnets (load balancers, NAT) small blocks of the second half; never overlapping."""
    network = ipaddress.IPv4Network(cidr)
    bits = max(1, math.ceil(math.log2(len(zones))))
    halves = list(network.subnets(prefixlen_diff=1))
    private = list(halves[0].subnets(prefixlen_diff=bits))
    public = list(halves[1].subnets(prefixlen_diff=bits + 2))
    return SubnetLayout(
        private=[(z, str(private[i])) for i, z in enumerate(zones)],
        public=[(z, str(public[i])) for i, z in enumerate(zones)],
    )


def overlapping(cidrs: dict[str, str]) -> list[tuple[str, str]]:
    """Pairs of names whose ranges overlap (sites that could never be peered), each pair in
    name order, the pairs sorted. One sweep over the ranges sorted by first address: a range
    is compared only with the earlier ones still open where it starts, so a federation of
    ranges that do not overlap costs n log n, not n squared."""
    nets = {name: ipaddress.ip_network(c) for name, c in cidrs.items()}
    pairs: set[tuple[str, str]] = set()
    for version in (4, 6):
        spans = sorted(
            (int(net.network_address), int(net.broadcast_address), name)
            for name, net in nets.items()
            if net.version == version
        )
        open_spans: list[tuple[int, str]] = []  # (last address, name) of ranges begun so far
        for first, last, name in spans:
            open_spans = [(end, other) for end, other in open_spans if end >= first]
            pairs.update((min(name, other), max(name, other)) for _, other in open_spans)
            open_spans.append((last, name))
    return sorted(pairs)
