"""Rules over the resources of the provisioned European cloud kinds (openstack, ovh) and GPU
node groups on every kind: nothing open to the world, no public IPs on nodes, encrypted
volumes, GPU nodes tainted, and the identity an OpenStack site's storage keys belong to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fedeploy.gpu_flavors import is_gpu_flavor
from policies.findings import Finding, Rule, Subject

OPEN = {"0.0.0.0/0", "::/0"}
GPU_TAINT_KEY = "nvidia.com/gpu"
SECGROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"
MAGNUM_TEMPLATE = "openstack:containerinfra/clusterTemplate:ClusterTemplate"
MAGNUM_CLUSTER = "openstack:containerinfra/cluster:Cluster"
MAGNUM_NODE_GROUP = "openstack:containerinfra/nodeGroup:NodeGroup"
OS_INSTANCE = "openstack:compute/instance:Instance"
OS_EC2_CREDENTIAL = "openstack:identity/ec2CredentialV3:Ec2CredentialV3"
OVH_KUBE = "ovh:CloudProject/kube:Kube"
OVH_IP_RESTRICTIONS = "ovh:CloudProject/kubeIpRestrictions:KubeIpRestrictions"
OVH_NODE_POOL = "ovh:CloudProject/kubeNodePool:KubeNodePool"
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# Kinds whose store fedeploy does not provision, so it cannot make a key scoped to a prefix.
UNSCOPED_STORE_KINDS = ("kubernetes", "hpc")


def _labels(subject: Subject) -> dict[str, Any]:
    return dict(subject.props.get("labels") or {})


def _allowed_cidrs(labels: dict[str, Any]) -> list[str]:
    return [c.strip() for c in str(labels.get("master_lb_allowed_cidrs", "")).split(",") if c]


def world_open(subjects: list[Subject]) -> Iterable[Finding]:
    """Security group rules and Kubernetes APIs open to the whole internet."""
    for s in subjects:
        props = s.props
        if s.type == SECGROUP_RULE and props.get("direction", "ingress") == "ingress":
            prefix = props.get("remoteIpPrefix")
            if prefix in OPEN or (not prefix and not props.get("remoteGroupId")):
                port = props.get("portRangeMin", "any")
                yield Finding(
                    "no-open-ingress-openstack-ovh",
                    s.name,
                    f"security group admits the internet on port {port}",
                )
        if s.type == MAGNUM_TEMPLATE:
            cidrs = _allowed_cidrs(_labels(s))
            if not cidrs or OPEN & set(cidrs):
                yield Finding(
                    "no-open-ingress-openstack-ovh",
                    s.name,
                    "Magnum API load balancer admits the whole internet "
                    "(no master_lb_allowed_cidrs label)",
                )
    restricted = {str(s.props.get("kubeId")) for s in subjects if s.type == OVH_IP_RESTRICTIONS}
    for s in subjects:
        if s.type == OVH_IP_RESTRICTIONS and OPEN & set(s.props.get("ips") or []):
            yield Finding(
                "no-open-ingress-openstack-ovh", s.name, "Kubernetes API open to the internet"
            )
    kubes = [s for s in subjects if s.type == OVH_KUBE]
    if kubes and not restricted:
        for kube in kubes:
            yield Finding(
                "no-open-ingress-openstack-ovh",
                kube.name,
                "OVHcloud Kubernetes API without IP restrictions: set cluster.api_access_cidrs",
                "advisory",
            )


def no_public_node_ips(subjects: list[Subject]) -> Iterable[Finding]:
    """Nodes keep private addresses: no floating IPs on Magnum or OVHcloud nodes."""
    for s in subjects:
        if s.type in (MAGNUM_TEMPLATE, MAGNUM_CLUSTER) and s.props.get("floatingIpEnabled"):
            yield Finding("no-public-node-ips", s.name, "Magnum nodes get floating IPs")
        if s.type == OVH_NODE_POOL and s.props.get("attachFloatingIps"):
            yield Finding("no-public-node-ips", s.name, "node pool attaches floating IPs")


def volumes_encrypted(subjects: list[Subject]) -> Iterable[Finding]:
    """Instance volumes name a volume type (where a cloud offers encryption, it is by type)."""
    for s in (s for s in subjects if s.type == OS_INSTANCE):
        devices = s.props.get("blockDevices") or []
        volumes = [d for d in devices if d.get("destinationType") == "volume"]
        if not volumes:
            yield Finding(
                "encrypted-volumes",
                s.name,
                "instance boots from an ephemeral disk: boot from a volume of an encrypted type",
                "advisory",
            )
        for device in volumes:
            if not device.get("volumeType"):
                yield Finding(
                    "encrypted-volumes",
                    s.name,
                    "volume without a volume type: name the cloud's encrypted (LUKS) type",
                    "advisory",
                )


def storage_identity(subjects: list[Subject]) -> Iterable[Finding]:
    """EC2 credentials made for no named project: the deploying user's own keys, which the
    site's pods hold unless its workloads have credentials of their own (`workload_identities`,
    whose EC2 credentials each name their workload's project; the deploying user's then stays
    with Pulumi); and, on kubernetes and hpc sites, the workloads on the site's keys
    (`shared_storage_keys`)."""
    yield from shared_storage_keys(subjects)
    credentials = [s for s in subjects if s.type == OS_EC2_CREDENTIAL]
    if any(s.props.get("projectId") or s.props.get("userId") for s in credentials):
        return
    for s in credentials:
        yield Finding(
            "storage-identity",
            s.name,
            "the site's S3 keys are an EC2 credential of whoever runs pulumi up: S3 access "
            "to every container of that project, held by the asset endpoint and every "
            "ingestion, inference and catalog-backup pod. Fix: in the site's stack file "
            "(Pulumi.<stack>.yaml), set config.fedeploy:site.workload_identities (domain_id, "
            "role_id, auth_url, manager_cloud); pulumi up then needs the sign-in of "
            "manager_cloud to hold Keystone's `manager` role on that domain, domain-scoped "
            "(Keystone 2024.2 and later; a cloud admin also works), else it stops at the first "
            "project with 403 Forbidden. Where no such "
            "role is given, deploy with a user that holds only the object-store role on a "
            "project of its own (docs/operations.md, Rotating secrets)",
            "advisory",
        )


# Where each workload's storage Secret sits in its release's values, in the order the
# storage-identity advisory names them (the internet-facing asset endpoint first): (the
# workload in words, release, path to the block whose `enabled` turns it on (None: always on),
# path to the Secret's name).
_WORKLOAD_SECRETS: tuple[tuple[str, str, tuple[str, ...] | None, tuple[str, ...]], ...] = (
    (
        "the asset endpoint (assets, internet-facing)",
        "catalog",
        ("assets",),
        ("assets", "storage", "existingSecret"),
    ),
    ("ingestion", "ingestion", None, ("storage", "existingSecret")),
    ("inference", "inference", None, ("storage", "existingSecret")),
    ("the catalog backups (catalog-backup)", "catalog", ("backup",), ("backup", "existingSecret")),
    (
        "the restore drill (catalog-drill)",
        "catalog",
        ("backup", "drill"),
        ("backup", "drill", "credentialsSecret"),
    ),
)


def _at(values: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        values = values.get(key) if isinstance(values, dict) else None
    return values


def _shared_key_holders(subjects: list[Subject]) -> tuple[str, str, list[str]]:
    """(kind, first release, workloads in words) of a kubernetes or hpc site's releases whose
    workload mounts the site's storage Secret (SITE_SECRET); ("", "", []) when none does."""
    from fedeploy.values.storage_credentials import SITE_SECRET

    releases = {str(s.props.get("name")): s for s in subjects if s.type == HELM_RELEASE}
    kind, first, holders = "", "", []
    for words, release, enabled, secret in _WORKLOAD_SECRETS:
        subject = releases.get(release)
        values = (subject.props.get("values") or {}) if subject is not None else {}
        site_kind = str(_at(values, ("site", "kind")) or "")
        if site_kind not in UNSCOPED_STORE_KINDS or (
            enabled is not None and not _at(values, (*enabled, "enabled"))
        ):
            continue
        if subject is not None and _at(values, secret) == SITE_SECRET:
            kind, first = site_kind, first or subject.name
            holders.append(words)
    return kind, first, holders


def _listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def shared_storage_keys(subjects: list[Subject]) -> Iterable[Finding]:
    """Workloads of a kubernetes or hpc site that mount the site's storage keys (write and
    delete on every bucket): the store is not fedeploy's to scope, so its owner must give them
    keys of their own (`storage.workload_credentials`)."""
    kind, first, holders = _shared_key_holders(subjects)
    if holders:
        yield Finding(
            "storage-identity",
            first,
            f"on this {kind} site {_listed(holders)} {'mounts' if len(holders) == 1 else 'mount'} the site's storage keys (Secret "
            "fedeploy-storage: write and delete on every bucket, backups included). The store "
            "is not fedeploy's, so it cannot make them keys of their own: have the store's "
            "owner make one per workload (read-only on the ingestion bucket for the asset "
            "endpoint, which faces the internet), put each in a Secret with key `credentials` "
            "and name it in the stack file's storage.workload_credentials.<workload> "
            "(docs/configuration.md, Storage keys on kubernetes and hpc sites)",
            "advisory",
        )


def backup_identity(subjects: list[Subject]) -> Iterable[Finding]:
    """Catalog backups on a kind whose store is not fedeploy's (kubernetes, hpc) use the site's
    shared storage keys: reach beyond the backup prefix, which no identity of ours can narrow;
    silent once the backups and the drill mount keys of their own (storage.workload_credentials)."""
    from fedeploy.values.storage_credentials import SITE_SECRET

    for s in subjects:
        if s.type != HELM_RELEASE or s.props.get("name") != "catalog":
            continue
        values = s.props.get("values") or {}
        kind = str((values.get("site") or {}).get("kind", ""))
        backup = values.get("backup") or {}
        shared = (backup.get("existingSecret"), _at(backup, ("drill", "credentialsSecret")))
        if kind in UNSCOPED_STORE_KINDS and backup.get("enabled") and SITE_SECRET in shared:
            yield Finding(
                "backup-identity",
                s.name,
                f"catalog backups (and their restore drill, which only reads them) on this "
                f"{kind} site use the site's storage keys (Secret "
                f"{backup.get('existingSecret') or 'fedeploy-storage'}, shared with ingestion "
                "and inference): the store is not fedeploy's, so it cannot give them a key "
                f"limited to {backup.get('prefix', 'the backup prefix')}; have the store's "
                "owner scope those keys (docs/operations.md, Rotating secrets)",
                "advisory",
            )


def gpu_nodes_tainted(subjects: list[Subject]) -> Iterable[Finding]:
    """Node groups on GPU flavors carry the nvidia.com/gpu taint (only inference lands there)."""
    for s in subjects:
        if s.type == MAGNUM_NODE_GROUP:
            flavor = str(s.props.get("flavorId") or "")
            options = str(_labels(s).get("kubelet_options", ""))
            tainted = f"--register-with-taints={GPU_TAINT_KEY}=" in options or (
                "--register-with-taints=" in options and f",{GPU_TAINT_KEY}=" in options
            )
        elif s.type == OVH_NODE_POOL:
            flavor = str(s.props.get("flavorName") or "")
            spec = (s.props.get("template") or {}).get("spec") or {}
            tainted = any(t.get("key") == GPU_TAINT_KEY for t in spec.get("taints") or [])
        elif s.type == EKS_NODE_GROUP:
            types = [str(t) for t in s.props.get("instanceTypes") or []]
            flavor = next((t for t in types if is_gpu_flavor(t, ec2=True)), "")
            tainted = any(t.get("key") == GPU_TAINT_KEY for t in s.props.get("taints") or [])
            if flavor and not tainted:
                yield _untainted(s, flavor)
            continue
        else:
            continue
        if is_gpu_flavor(flavor) and not tainted:
            yield _untainted(s, flavor)


def _untainted(subject: Subject, flavor: str) -> Finding:
    return Finding(
        "gpu-nodes-tainted",
        subject.name,
        f"node group on GPU flavor {flavor} without the {GPU_TAINT_KEY} taint: any pod may "
        "land on its GPUs",
    )


def provider_rules() -> list[Rule]:
    """The rules above, as the policy pack and the offline plan take them."""
    return [
        Rule(
            "no-open-ingress-openstack-ovh",
            "OpenStack security groups, Magnum and OVHcloud Kubernetes APIs do not admit the "
            "whole internet.",
            "mandatory",
            world_open,
        ),
        Rule(
            "no-public-node-ips",
            "Kubernetes nodes on OpenStack and OVHcloud get no floating IPs.",
            "mandatory",
            no_public_node_ips,
        ),
        Rule(
            "encrypted-volumes",
            "OpenStack instance volumes are of a named (encrypted) volume type (advisory findings).",
            "mandatory",
            volumes_encrypted,
        ),
        Rule(
            "storage-identity",
            "An OpenStack site's storage keys are not the deploying user's own EC2 credential, "
            "and no kubernetes or hpc workload holds the site's storage keys (advisory "
            "findings).",
            "mandatory",
            storage_identity,
        ),
        Rule(
            "backup-identity",
            "Catalog backups hold keys of their own, limited to the backup prefix, where "
            "fedeploy provisions the store (advisory findings where it does not).",
            "mandatory",
            backup_identity,
        ),
        Rule(
            "gpu-nodes-tainted",
            "Node groups on GPU flavors are tainted nvidia.com/gpu.",
            "mandatory",
            gpu_nodes_tainted,
        ),
    ]
