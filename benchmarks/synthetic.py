"""Synthetic federations of N sites, made from the example stacks: names, address ranges and
replication targets renamed consistently, one hub over every member."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "stacks"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _network(n: int) -> str:
    """The n-th site network: 10.1-255.0.0/16, then 172.16-31.0.0/16 (270 in all)."""
    if n < 255:
        return f"10.{n + 1}.0.0/16"
    if n < 271:
        return f"172.{16 + n - 255}.0.0/16"
    raise ValueError(f"more than 270 sites with a network: {n + 1}")


def _own_catalog(site: dict, template: str, name: str) -> None:
    """Each site publishes its own catalog: its URL, token audience and write scope name it."""
    catalog = (site.get("services") or {}).get("catalog") or {}
    if catalog.get("url"):
        catalog["url"] = f"https://catalog.{name}.eofed.example.eu"
    oidc = (catalog.get("exposure") or {}).get("oidc") or {}
    for key in ("audience", "write_scope"):
        if isinstance(oidc.get(key), str):
            oidc[key] = oidc[key].replace(template, name)


def make_federation(target: Path, sites: int) -> Path:
    """Write `sites` member stacks and one hub under target/stacks; returns the stacks dir."""
    stacks = target / "stacks"
    stacks.mkdir(parents=True, exist_ok=True)
    examples = {p.name.split(".")[1]: _load(p) for p in sorted(EXAMPLES.glob("Pulumi.*.yaml"))}
    members = {n: d for n, d in examples.items() if d["config"]["fedeploy:site"]["kind"] != "hub"}
    # Replication targets come before their sources in each group of copies.
    templates = sorted(members, key=lambda n: "replicate_to" in yaml.safe_dump(members[n]))
    names: list[str] = []
    networks = 0
    for i in range(sites):
        template = templates[i % len(templates)]
        group = i // len(templates)
        name = f"{template[:17]}-{group:03d}"
        document = copy.deepcopy(members[template])
        site = document["config"]["fedeploy:site"]
        second, third = divmod(i, 16)
        for key in ("network", "private_network"):  # ovh: the vRack subnet is theirs alone too
            if (site.get(key) or {}).get("cidr"):
                site[key]["cidr"] = _network(networks)
                networks += 1
        if site.get("cluster", {}).get("pod_cidrs"):
            site["cluster"]["pod_cidrs"] = [f"100.{64 + second % 64}.{third * 16}.0/20"]
        _own_catalog(site, template, name)
        for bucket in site.get("storage", {}).get("buckets", {}).values():
            if bucket and bucket.get("replicate_to"):
                bucket["replicate_to"]["site"] = (
                    f"{bucket['replicate_to']['site'][:17]}-{group:03d}"
                )
        (stacks / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        names.append(name)
    hub = copy.deepcopy(examples["eu-hub"])
    hub["config"]["fedeploy:site"]["members"] = names
    (stacks / "Pulumi.eu-hub.yaml").write_text(yaml.safe_dump(hub, sort_keys=False))
    return stacks
