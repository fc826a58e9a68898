"""Which outputs of which other stacks a site reads, and the order the federation deploys in."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from typing import Any

from fedeploy.errors import FederationError

# The contract every site exports (docs/configuration.md describes each output).
CONTRACT_OUTPUTS = ("site", "storage", "cluster", "network", "catalog_url", "services", "bridge")
HUB_READS = ("site", "storage", "catalog_url", "bridge")


@dataclass(frozen=True, order=True)
class Reference:
    """`stack` reads output `output` of stack `target`, because of the config key `because`."""

    stack: str
    target: str
    output: str
    because: str


def references(stack: str, site: Any) -> list[Reference]:
    """Every stack output this site's program reads, derived from its validated config."""
    found: list[Reference] = []
    if site.kind == "hub":
        for index, member in enumerate(site.members):
            found += [Reference(stack, member, out, f"site.members.{index}") for out in HUB_READS]
    storage = getattr(site, "storage", None)
    for name, bucket in sorted(getattr(storage, "buckets", {}).items()):
        if bucket.replicate_to is not None:
            found.append(
                Reference(
                    stack,
                    bucket.replicate_to.site,
                    "storage",
                    f"site.storage.buckets.{name}.replicate_to.site",
                )
            )
    return sorted(set(found))


def deployment_order(graph: dict[str, set[str]]) -> list[list[str]]:
    """Waves of stacks: each wave only reads stacks of earlier waves. Raises on a cycle."""
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        cycle = " -> ".join(err.args[1])
        raise FederationError(f"stack references form a cycle: {cycle}") from None
    waves: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        waves.append(ready)
        sorter.done(*ready)
    return waves
