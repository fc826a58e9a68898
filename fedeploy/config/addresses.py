"""Typed, validated address ranges, AWS regions and availability zones of the site model.

Values stay plain strings once validated (Pulumi inputs take strings), but only strings that
`ipaddress` parses as a network with no host bits set, or a region AWS offers, get through."""

from __future__ import annotations

import difflib
import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field

# Commercial, GovCloud and China regions (2026): `aws ec2 describe-regions --all-regions`.
AWS_REGIONS: tuple[str, ...] = (
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
)

# For editors (ECMA-262 syntax); the validators below are the authority (host bits, ranges).
IPV4_CIDR_PATTERN = (
    r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
    r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$"
)
CIDR_PATTERN = (
    rf"({IPV4_CIDR_PATTERN})|(^[0-9a-fA-F:]*:[0-9a-fA-F:.]*/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$)"
)
ZONE_PATTERN = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]$"


def _network(value: str, versions: tuple[int, ...]) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an address range such as 10.2.0.0/16 ({err})"
            ) from None
        raise ValueError(f"{value!r} has host bits set: the range is {loose}") from None
    if net.version not in versions:
        raise ValueError(f"{value!r} is an IPv{net.version} range; an IPv4 range is required")
    return str(net)


def _ipv4_network(value: str) -> str:
    return _network(value, (4,))


def _any_network(value: str) -> str:
    return _network(value, (4, 6))


Ipv4Cidr = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": IPV4_CIDR_PATTERN},
        description="An IPv4 network in CIDR form, e.g. 10.2.0.0/16.",
    ),
    AfterValidator(_ipv4_network),
]


def _not_split_internet(value: str) -> str:
    """A range wider than /8 but not /0: 0.0.0.0/1 + 128.0.0.0/1 is the whole internet, past
    every check (and policy) that looks for 0.0.0.0/0."""
    prefix = ipaddress.ip_network(value).prefixlen
    if 0 < prefix < 8:
        raise ValueError(
            f"{value!r} admits a /{prefix}, a large part of the internet; name the networks "
            "that need access (at most /8 each)"
        )
    return value


AccessCidr = Annotated[Ipv4Cidr, AfterValidator(_not_split_internet)]
"""An IPv4 range admitted to an API: 0.0.0.0/0 (reported by the policy pack) or /8 and narrower."""

Cidr = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": CIDR_PATTERN},
        description="An IPv4 or IPv6 network in CIDR form, e.g. 10.2.0.0/16 or fd00:10::/56.",
    ),
    AfterValidator(_any_network),
]


def _region(value: str) -> str:
    if value not in AWS_REGIONS:
        close = difflib.get_close_matches(value, AWS_REGIONS, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"{value!r} is not an AWS region{hint}; e.g. eu-central-1, eu-west-1, us-east-1"
        )
    return value


AwsRegion = Annotated[
    str,
    Field(
        json_schema_extra={"enum": list(AWS_REGIONS)},
        description="An AWS region, e.g. eu-central-1.",
    ),
    AfterValidator(_region),
]
AvailabilityZone = Annotated[
    str,
    Field(pattern=ZONE_PATTERN, description="An availability zone: its region and a letter."),
]


def zone_region(zone: str) -> str:
    """The region of an availability zone name (`eu-west-1a` -> `eu-west-1`)."""
    return zone[:-1]


# A TCP port in a URL, as every consumer of it takes it: 1 to 65535 (a NetworkPolicyPort outside
# it is refused by the API server: "must be between 1 and 65535, inclusive"), decimal digits
# without a leading zero (the charts' fedeploy-common.urlPort hands the digits on verbatim).
PORT_MIN = 1
PORT_MAX = 65535
PORT_PATTERN = (
    r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
)
"""A port 1 to 65535 as a regex group (no anchors), for JSON-schema patterns of URLs."""
PORT_WORDS = "a number from 1 to 65535 without leading zeros"


def port_problem(port: str) -> str | None:
    """Why `port` (the text after the host's colon in a URL) is not a port 1 to 65535; None
    when it is one."""
    if not port:
        return f"the port is empty (a ':' with no digits after it); {PORT_WORDS}, or no ':'"
    if not (port.isascii() and port.isdigit()):
        return f"the port {port!r} is not {PORT_WORDS}"
    if port.startswith("0") or not PORT_MIN <= int(port) <= PORT_MAX:
        return f"the port {port!r} is not {PORT_WORDS}"
    return None


def url_port_problem(url: str) -> str | None:
    """Why the port `url` names (scheme://host:port/...) is not a port 1 to 65535; None when it
    names none or a valid one. An IPv6 literal's brackets are skipped ([::1]:443)."""
    authority = url.partition("://")[2].partition("/")[0].partition("?")[0].partition("#")[0]
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        host_end = authority.find("]")
        rest = authority[host_end + 1 :] if host_end >= 0 else ""
        if not rest:
            return None
        if not rest.startswith(":"):
            return f"the text {rest!r} follows the address in brackets"
        return port_problem(rest[1:])
    host, colon, port = authority.partition(":")
    return port_problem(port) if colon else None
