"""The one rule for a port in a URL (fedeploy.config.addresses): 1 to 65535, digits only."""

from __future__ import annotations

import re

import pytest

from fedeploy.config.addresses import PORT_PATTERN, port_problem, url_port_problem


def test_the_port_pattern_takes_exactly_1_to_65535() -> None:
    taken = [p for p in range(0, 100_000) if re.fullmatch(PORT_PATTERN, str(p))]
    assert taken == list(range(1, 65536))
    assert not re.fullmatch(PORT_PATTERN, "080")


@pytest.mark.parametrize("port", ["0", "65536", "99999", "080", "", "8o", "٣٤", "-1"])
def test_ports_outside_the_rule_are_named(port: str) -> None:
    problem = port_problem(port)
    assert problem is not None and "1 to 65535" in problem


@pytest.mark.parametrize(
    ("url", "bad"),
    [
        ("https://pg.example.eu:0/", True),
        ("http://pg.example.eu:99999/", True),
        ("https://slurm-api.example.org:0", True),
        ("https://[fd00::9]:0/", True),
        ("https://h:/", True),
        ("https://h:65535/x?a=1", False),
        ("https://h/x:0", False),
        ("https://[::1]", False),
        ("https://[::1]:6820", False),
        ("http://h", False),
    ],
)
def test_the_port_of_a_url(url: str, bad: bool) -> None:
    assert (url_port_problem(url) is not None) is bad
