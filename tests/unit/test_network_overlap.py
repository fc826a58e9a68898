"""fedeploy.network.overlapping: the same pairs as comparing every two ranges, in a time that
grows with n log n, so validating a federation of hundreds of sites is not cubic; and an ovh
private network's DHCP range computed from the network's ends, as listing its hosts gave it."""

from __future__ import annotations

import ipaddress
import random
import time

from fedeploy.network import overlapping


def _every_two(cidrs: dict[str, str]) -> list[tuple[str, str]]:
    nets = {name: ipaddress.ip_network(c) for name, c in cidrs.items()}
    names = sorted(nets)
    return [
        (a, b) for i, a in enumerate(names) for b in names[i + 1 :] if nets[a].overlaps(nets[b])
    ]


def _random_ranges(rng: random.Random) -> dict[str, str]:
    cidrs = {}
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.2:
            prefix = rng.randint(100, 128)
            address = rng.getrandbits(128) >> (128 - prefix) << (128 - prefix)
            cidrs[f"s{rng.randint(0, 20)}"] = f"{ipaddress.IPv6Address(address)}/{prefix}"
        else:
            prefix = rng.randint(8, 32)
            address = (rng.getrandbits(32) & 0x0F0F0000) >> (32 - prefix) << (32 - prefix)
            cidrs[f"s{rng.randint(0, 20)}"] = f"{ipaddress.IPv4Address(address)}/{prefix}"
    return cidrs


def test_the_pairs_are_those_of_comparing_every_two_ranges():
    rng = random.Random(35)
    for _ in range(2000):
        cidrs = _random_ranges(rng)
        assert overlapping(cidrs) == _every_two(cidrs), cidrs


def test_thousands_of_ranges_take_a_sweep_not_every_pair():
    cidrs = {f"site-{n:05d}": f"10.{n // 256}.{n % 256}.0/24" for n in range(6000)}
    cidrs["wide"] = "10.3.0.0/16"  # overlaps the 256 ranges 10.3.x.0/24
    start = time.perf_counter()
    pairs = overlapping(cidrs)
    elapsed = time.perf_counter() - start
    assert len(pairs) == 256 and all(b == "wide" for _, b in pairs)
    assert elapsed < 5.0, f"{elapsed:.1f} s: every two of 6001 ranges is 18 million comparisons"


def test_an_ovh_private_networks_dhcp_range_is_its_second_to_last_host():
    from components.providers.ovh.network import _dhcp_range

    for cidr in ("10.1.0.0/16", "192.168.7.0/24", "10.0.0.0/30", "10.0.0.0/31", "fd00::/120"):
        hosts = list(ipaddress.ip_network(cidr).hosts())
        assert _dhcp_range(cidr) == (str(hosts[1]), str(hosts[-1])), cidr
