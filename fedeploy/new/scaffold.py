"""`fedeploy new SITE --kind KIND [--hub HUB]`: a new site's stack file, every required key
written, so a new user starts from a file that plans rather than from an empty page.

What only the user knows (an endpoint, a cloud's ids, a host name) is written as
`"<choose: what, e.g. an example>"`, which `fedeploy plan` and `validate` name one by one; every
secret is the documented placeholder `{pending: ...}` (planned with an advisory, refused by
`pulumi up`); address ranges are chosen to overlap nothing in the federation; with `--hub`, the
site joins that hub's members. With `storage_only` (aws, openstack, ovh), the site is buckets
only (`role: storage`): no network, cluster or services. Pure text in, text out: `scaffold`
writes nothing itself."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from fedeploy.config.loader import STACK_NAME, Sibling, address_ranges, sibling_sites
from fedeploy.config.site_base import STORAGE_ONLY_KINDS, a_kind_site
from fedeploy.errors import FedeployError

NEW_KINDS = ("aws", "openstack", "ovh", "kubernetes", "hpc")
# A full site's keys a storage-only one leaves out (4-space blocks of the bodies below).
_INFRASTRUCTURE_BLOCKS = ("network", "private_network", "cluster")
# Where new ranges are taken from: 10.64.0.0/10, clear of the examples' 10.0-10.63.
_POOL = ipaddress.ip_network("10.64.0.0/10")

_HEAD = """\
# yaml-language-server: $$schema=../schemas/stack-file.schema.json
# $site: a new $what site written by `fedeploy new`. Replace every "<choose: ...>" value (fedeploy
# plan names each one left), then set each pending secret with `pulumi config set --secret`
# (`fedeploy secrets $site` prints the commands). docs/configuration.md describes every key.
# A staging site: a production one holds no pending secret.
"""

_SERVICES = """\
    services:
      catalog:
        url: "<choose: the catalog's public https URL, e.g. https://catalog.$site.example.eu>"
        exposure:
          controller_namespace: "<choose: the namespace of the ingress controller (or, with mode: gateway, of the Gateway's data plane), e.g. ingress-nginx>"
          tls:
            cert_manager_issuer: "<choose: the cluster's cert-manager ClusterIssuer, e.g. letsencrypt>"
          oidc:
            issuer: "<choose: the OIDC issuer URL of the federation's login, e.g. https://login.example.eu/realms/eofed>"
            audience: eofed-catalog-$site
            write_scope: "stac:write:$site"
      ingestion:
        bucket: raw
        sentinel:
          schedule: "15 */6 * * *"
          sources:
            - name: cdse
              collections: [sentinel-2-l2a]
              bbox: [-10.0, 35.0, 30.0, 60.0]
              datetime: P1D
              assets: [B04_10m, B08_10m, SCL_20m]
              max_cloud_cover: 80
      inference:
        bucket: models
        gpu: "off"
"""

_KEYS = """\
      access_key_id:
        pending: the S3 access key id the store's owner issues
      secret_access_key:
        pending: its secret key
"""

_BODIES = {
    "aws": """\
config:
  aws:region: "<choose: the AWS region, the same as site.region>"
  fedeploy:site:
    kind: aws
    environment: staging
    region: "<choose: the AWS region, e.g. eu-central-1>"
    network:
      cidr: $cidr16
      availability_zones: ["<choose: a zone of the region, e.g. eu-central-1a>", "<choose: a second zone, e.g. eu-central-1b>"]
    storage:
      encryption: kms
      bucket_prefix: "<choose: a prefix for bucket names unique in all of S3, e.g. your organisation>"
      buckets:
        raw: {}
        models: {}
    cluster:
      version: "1.33"
      public_access_cidrs: ["<choose: the address range you deploy from, e.g. 198.51.100.0/24>"]
      node_groups:
        system:
          instance_types: [m6i.large]
          min_size: 2
          desired_size: 2
          max_size: 4
""",
    "openstack": """\
config:
  openstack:region: "<choose: the OpenStack region, the same as site.region>"
  fedeploy:site:
    kind: openstack
    environment: staging
    region: "<choose: the OpenStack region, e.g. WAW3-1 (openstack region list)>"
    network:
      cidr: $cidr20
      external_network_id: "<choose: the external network's id (openstack network list --external)>"
      dns_nameservers: [1.1.1.1]
      api_access_cidrs: ["<choose: the address range you deploy from, e.g. 198.51.100.0/24>"]
    storage:
      endpoint: "<choose: the cloud's S3 endpoint, e.g. https://s3.waw3-1.cloudferro.com>"
      region: "<choose: the region the S3 API signs for, e.g. default>"
      bucket_prefix: eofed
      buckets:
        raw: {}
        models: {}
    cluster:
      version: "1.30"
      kube_tag: v1.30.4
      image_id: "<choose: the Fedora CoreOS image's id for Magnum (openstack image list)>"
      master_flavor: "<choose: the control plane's flavor (openstack flavor list), e.g. eo2.large>"
      master_count: 3
      node_groups:
        system:
          flavor: "<choose: the workers' flavor (openstack flavor list), e.g. eo2.xlarge>"
          min_size: 2
          desired_size: 2
          max_size: 5
""",
    "ovh": """\
config:
  fedeploy:site:
    kind: ovh
    environment: staging
    project_id: "<choose: the Public Cloud project's id (32 hexadecimal digits)>"
    region: "<choose: the OVHcloud region, e.g. GRA9>"
    private_network:
      vlan_id: $vlan
      cidr: $cidr20
    storage:
      endpoint: "<choose: the region's S3 endpoint, e.g. https://s3.gra.io.cloud.ovh.net>"
      region: "<choose: the region the S3 API signs for, e.g. gra>"
      bucket_prefix: eofed
      buckets:
        raw: {}
        models: {}
    cluster:
      version: "1.31"
      api_access_cidrs: ["<choose: the address range you deploy from, e.g. 198.51.100.0/24>"]
      node_pools:
        system:
          flavor: b3-16
          min_size: 2
          desired_size: 2
          max_size: 5
""",
    "kubernetes": """\
config:
  fedeploy:site:
    kind: kubernetes
    environment: staging
    storage:
      endpoint: "<choose: the S3-compatible store's endpoint, e.g. https://s3.waw3-1.cloudferro.com>"
      region: "<choose: the region the store signs for, e.g. waw3-1>"
      bucket_prefix: eofed
$keys      buckets:
        raw: {}
        models: {}
    cluster:
      version: "1.31"
      kubeconfig:
        pending: the cluster's kubeconfig, from its administrators
      pod_cidrs: [$cidr16]
""",
    "hpc": """\
config:
  fedeploy:site:
    kind: hpc
    environment: staging
    storage:
      endpoint: "<choose: the centre's S3-compatible store, e.g. https://lumidata.eu>"
      region: "<choose: the region the store signs for, e.g. lumi>"
      bucket_prefix: eofed
$keys      buckets:
        raw: {}
        models: {}
    cluster:
      version: "1.30"
      kubeconfig:
        pending: the kubeconfig of the cluster beside the supercomputer
      pod_cidrs: [$cidr16]
    bridge:
      mode: gateway
      host: "<choose: the centre's gateway (login) node, e.g. slurm-gw.example.eu>"
      ssh_user: "<choose: the account the bridge is installed with>"
      ssh_private_key:
        pending: that account's SSH private key
      partitions: ["<choose: a SLURM partition the jobs may use (sinfo -s)>"]
""",
}


class ScaffoldError(FedeployError):
    """The new site cannot be written: a bad name, a file already there, an unknown hub."""


@dataclass(frozen=True)
class Scaffold:
    """The new stack file's text and where it goes; the hub file's new text, if one joins it."""

    path: Path
    text: str
    hub_path: Path | None = None
    hub_text: str | None = None


def free_range(taken: list[str], prefix: int) -> str:
    """The first /prefix of 10.64.0.0/10 that overlaps none of `taken` (CIDR strings)."""
    used = [ipaddress.ip_network(c, strict=False) for c in taken]
    for candidate in _POOL.subnets(new_prefix=prefix):
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise ScaffoldError(f"no free /{prefix} left in {_POOL} for the new site's address range")


def storage_only_body(body: str) -> str:
    """A full site's body made storage-only: `role: storage` after `kind:`, one bucket
    (`replicas`, what other sites replicate to), no network, private network or cluster."""
    lines: list[str] = []
    dropping = False
    for line in body.splitlines(keepends=True):
        key = line.strip().removesuffix(":")
        if line.startswith("    ") and not line.startswith("     "):
            dropping = key in _INFRASTRUCTURE_BLOCKS
        if dropping:
            continue
        if line.startswith("        models: {}"):
            continue
        lines.append(line.replace("        raw: {}", "        replicas: {}"))
        if line.startswith("    kind: "):
            lines.append("    role: storage\n")
    return "".join(lines)


def scaffold(
    site: str, kind: str, stacks_dir: Path, hub: str | None = None, *, storage_only: bool = False
) -> Scaffold:
    """The stack file of a new site `site` of `kind` in `stacks_dir` (with `storage_only`, a
    storage-only site: its buckets only), and with `hub` the hub's file with `site` among its
    members.

    Raises ScaffoldError naming what is wrong: the name, the kind (or a kind that cannot be
    storage-only), a file already there, a hub that is not one."""
    if not STACK_NAME.match(site):
        raise ScaffoldError(
            f"{_shown(site)} is not a valid site name: lower-case letters, digits and '-', 3 "
            "to 24 characters, starting with a letter"
        )
    if kind not in _BODIES:
        raise ScaffoldError(f"--kind {kind!r}: allowed: {', '.join(NEW_KINDS)}")
    if storage_only and kind not in STORAGE_ONLY_KINDS:
        raise ScaffoldError(
            f"--storage-only with --kind {kind!r}: a storage-only site is one of the kinds "
            f"fedeploy provisions ({', '.join(STORAGE_ONLY_KINDS)}); {a_kind_site(kind)}'s store is "
            "one that exists already"
        )
    path = stacks_dir / f"Pulumi.{site}.yaml"
    if path.exists():
        raise ScaffoldError(f"{path} exists already: `fedeploy new` never overwrites a stack file")
    siblings = sibling_sites(stacks_dir)
    taken = [
        c for s in siblings.values() if s.site is not None for c in address_ranges(s.site).values()
    ]
    vlans = {
        getattr(getattr(s.site, "private_network", None), "vlan_id", None)
        for s in siblings.values()
    }
    fields = {
        "site": site,
        "kind": kind,
        "what": f"storage-only {kind}" if storage_only else kind,
        "cidr16": free_range(taken, 16),
        "cidr20": free_range(taken, 20),
        "vlan": str(next(v for v in range(100, 4000) if v not in vlans)),
        "keys": _KEYS,
    }
    body = storage_only_body(_BODIES[kind]) if storage_only else _BODIES[kind] + _SERVICES
    text = Template(_HEAD + body).substitute(fields)
    if hub is None:
        return Scaffold(path, text)
    hub_site = siblings.get(hub)
    if hub_site is None or hub_site.site is None or hub_site.site.kind != "hub":
        raise ScaffoldError(_not_a_hub(hub, stacks_dir, siblings))
    joined = join_members(hub_site.path.read_text(), site, hub_file=str(hub_site.path))
    return Scaffold(path, text, hub_site.path, joined)


def _shown(site: str) -> str:
    """A refused name as typed, shortened as validate shortens a value (a name can be 10 KB)."""
    shown = repr(site)
    return shown if len(shown) <= 60 else f"{shown[:56]}...' ({len(site)} characters)"


def _raw_kind(path: Path) -> str | None:
    """The kind a stack file declares as written (it may not validate), or None."""
    from fedeploy.config.loader import read_stack_file

    try:
        raw = read_stack_file(path).raw
    except FedeployError:
        return None
    kind = raw.get("kind") if isinstance(raw, dict) else None
    return kind if isinstance(kind, str) else None


def _not_a_hub(hub: str, stacks_dir: Path, siblings: dict[str, Sibling]) -> str:
    """Why --hub names no hub to join: no such file, a file that does not validate, or a site
    of another kind; with the hubs there are (and those whose file does not validate)."""
    valid = sorted(n for n, s in siblings.items() if s.site is not None and s.site.kind == "hub")
    broken = sorted(n for n, s in siblings.items() if s.site is None and _raw_kind(s.path) == "hub")
    there = ", ".join(valid) or "none valid"
    if broken:
        verbs = "declares kind: hub but does" if len(broken) == 1 else "declare kind: hub but do"
        there += f"; {', '.join(broken)} {verbs} not validate"
    named = siblings.get(hub)
    if named is None:
        file = f"Pulumi.{hub}.yaml" if len(hub) <= 60 else "of that name"
        why = f"there is no stack file {file} in {stacks_dir}"
    elif named.site is None:
        why = (
            f"{named.path} does not validate (`fedeploy validate {named.path}` says why), so "
            "no site can join it yet"
        )
    else:
        why = f"{hub} is {a_kind_site(named.site.kind)}, not a hub"
    return f"--hub {_shown(hub)}: {why}; nothing was written (hubs in {stacks_dir}: {there})"


_FLOW_MEMBERS = re.compile(r"^(?P<indent> *)members: *\[(?P<items>[^\]]*)\](?P<rest>.*)$", re.M)
_BLOCK_MEMBERS = re.compile(
    r"^(?P<indent> *)members: *(#.*)?\n(?P<items>(?:(?P=indent) *- .*\n)+)", re.M
)


def join_members(hub_text: str, site: str, *, hub_file: str = "the hub's stack file") -> str:
    """The hub file's text with `site` added to `members` (flow or block list), comments kept.

    Raises ScaffoldError when the list is written in a way this edit does not know."""
    flow = _FLOW_MEMBERS.search(hub_text)
    if flow is not None:
        items = [i.strip() for i in flow["items"].split(",") if i.strip()]
        line = f"{flow['indent']}members: [{', '.join([*items, site])}]{flow['rest']}"
        return hub_text[: flow.start()] + line + hub_text[flow.end() :]
    block = _BLOCK_MEMBERS.search(hub_text)
    if block is not None:
        last = block["items"].rstrip("\n").rsplit("\n", 1)[-1]
        dash = last[: len(last) - len(last.lstrip())]
        added = f"{dash}- {site}\n"
        return hub_text[: block.end()] + added + hub_text[block.end() :]
    raise ScaffoldError(
        f"{hub_file}: site.members is not a one-line [..] list or a block of `- name` lines "
        "(a YAML alias, say), which `fedeploy new --hub` cannot extend; nothing was written: "
        f"write members as such a list, or run `fedeploy new` without --hub and add {site!r} "
        f"to site.members in {hub_file} by hand"
    )
