"""The openstack kind: a private network routed to the cloud's external network, Kubernetes from
Magnum, and buckets on the cloud's S3 API with EC2-style keys the site creates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack
import pulumi_random as random

from components.object_store import S3CompatibleObjectStore
from components.providers.base import BuildContext, GpuScheduling, SiteResources, StaticCredentials
from fedeploy.bridge.firewall import firewall_rules
from fedeploy.bridge.node_config import BridgeNode
from fedeploy.bridge.openstack_boot import (
    access_rules,
    credential_expiry,
    credential_key,
    openstack_cloud_init,
)
from fedeploy.config.bridge import BridgeConfig
from fedeploy.config.openstack import MagnumCluster as MagnumConfig
from fedeploy.config.openstack import OpenStackNetwork as NetworkConfig
from fedeploy.config.openstack import OpenStackSite, WorkloadIdentities
from fedeploy.naming import bucket_name
from fedeploy.node_pools import (
    GPU_LABEL_KEY,
    GPU_LABEL_VALUE,
    GPU_TAINT_KEY,
    magnum_group_labels,
    magnum_template_labels,
)
from fedeploy.openstack_storage import rgw_principal, storage_workloads, workload_bucket_policy


def _tag_list(tags: dict[str, str]) -> list[str]:
    # Neutron tags are plain strings.
    return [f"{k}={v}" for k, v in sorted(tags.items())]


def _raw_config(kubeconfig: Any) -> str:
    # The provider's typed output (`raw_config`), or its wire form (`rawConfig`) under mocks.
    raw = getattr(kubeconfig, "raw_config", None)
    if raw is None and isinstance(kubeconfig, dict):
        raw = kubeconfig.get("raw_config", kubeconfig.get("rawConfig"))
    return str(raw or "")


class OpenStackNetwork(pulumi.ComponentResource):
    """A private network and subnet, and a router with SNAT to the named external network."""

    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    cidr: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        region: str,
        config: NetworkConfig,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:network:OpenStackNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = _tag_list(tags)
        network = openstack.networking.Network(
            name,
            name=name,
            region=region,
            admin_state_up=True,
            port_security_enabled=True,
            tags=labels,
            opts=child,
        )
        subnet = openstack.networking.Subnet(
            f"{name}-subnet",
            name=f"{name}-subnet",
            region=region,
            network_id=network.id,
            cidr=config.cidr,
            ip_version=4,
            enable_dhcp=True,
            dns_nameservers=list(config.dns_nameservers) or None,
            tags=labels,
            opts=child,
        )
        router = openstack.networking.Router(
            f"{name}-router",
            name=f"{name}-router",
            region=region,
            external_network_id=config.external_network_id,
            enable_snat=True,
            tags=labels,
            opts=child,
        )
        openstack.networking.RouterInterface(
            f"{name}-router-interface",
            region=region,
            router_id=router.id,
            subnet_id=subnet.id,
            opts=child,
        )
        self.network_id = network.id
        self.subnet_id = subnet.id
        self.cidr = pulumi.Output.from_input(config.cidr)
        self.register_outputs({"network_id": self.network_id, "subnet_id": self.subnet_id})


class MagnumKubernetes(pulumi.ComponentResource):
    """A Magnum cluster template, the cluster (control plane behind a load balancer that admits
    only the site's network and the listed CIDRs, no floating IPs) and its node groups."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    name: pulumi.Output[str]
    version: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str | None]
    has_gpu: bool

    def __init__(
        self,
        name: str,
        *,
        region: str,
        config: MagnumConfig,
        network: OpenStackNetwork,
        network_config: NetworkConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:cluster:KubernetesCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.has_gpu = config.has_gpu
        groups = sorted(config.node_groups.items())
        # Magnum's default worker group: the first group without GPUs (validated to exist).
        default_name, default = next((n, g) for n, g in groups if g.accelerator == "none")
        template = openstack.containerinfra.ClusterTemplate(
            f"{name}-template",
            name=f"{name}-template",
            region=region,
            coe="kubernetes",
            image=config.image_id,
            flavor=default.flavor,
            master_flavor=config.master_flavor,
            network_driver=config.network_driver,
            volume_driver=config.volume_driver,
            docker_volume_size=config.docker_volume_size_gib,
            external_network_id=network_config.external_network_id,
            fixed_network=network.network_id,
            fixed_subnet=network.subnet_id,
            dns_nameserver=(network_config.dns_nameservers or [None])[0],
            floating_ip_enabled=False,
            master_lb_enabled=True,
            tls_disabled=False,
            public=False,
            registry_enabled=False,
            keypair_id=config.keypair,
            labels=magnum_template_labels(
                dict(config.labels),
                kube_tag=config.kube_tag,
                api_cidrs=[network_config.cidr, *network_config.api_access_cidrs],
            ),
            opts=child,
        )
        cluster = openstack.containerinfra.Cluster(
            name,
            name=name,
            region=region,
            cluster_template_id=template.id,
            master_count=config.master_count,
            master_flavor=config.master_flavor,
            node_count=default.desired_size,
            flavor=default.flavor,
            keypair=config.keypair,
            fixed_network=network.network_id,
            fixed_subnet=network.subnet_id,
            floating_ip_enabled=False,
            master_lb_enabled=True,
            labels=magnum_group_labels(default_name, gpu=False),
            merge_labels=True,
            opts=child,
        )
        for group_name, group in groups:
            if group_name == default_name:
                continue
            openstack.containerinfra.NodeGroup(
                f"{name}-{group_name}",
                name=group_name,
                region=region,
                cluster_id=cluster.id,
                role="worker",
                flavor_id=group.flavor,
                node_count=group.desired_size,
                min_node_count=group.min_size,
                max_node_count=group.max_size,
                labels=magnum_group_labels(group_name, gpu=group.accelerator == "nvidia"),
                merge_labels=True,
                opts=child,
            )
        self.name = cluster.name
        self.version = pulumi.Output.from_input(config.version)
        self.oidc_issuer = pulumi.Output.from_input(None)
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig.apply(_raw_config))
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True, opts=child
        )
        self.register_outputs({"name": self.name, "version": self.version})


# Egress of the bridge instance: package mirrors, Keystone and Barbican (its usual port) and DNS.
BRIDGE_EGRESS_TCP = (80, 443, 9311)


class OpenStackBridgeHost:
    """Launches a `vm` bridge in the site's subnet: its secrets in Barbican, an application
    credential that may only GET them (short expiry) in a root-only file, a security group that
    admits only the REST port from the admitted ranges, and no floating IP
    (fedeploy/bridge/openstack_boot.py explains the design)."""

    def __init__(
        self,
        *,
        site: str,
        config: BridgeConfig,
        region: str,
        network_id: pulumi.Input[str],
        cidrs: list[str],
        availability_zone: str | None,
        tags: dict[str, str],
    ) -> None:
        if config.vm_platform != "openstack":
            raise ValueError(f"{site}: bridge.flavor_id, image_id and auth_url are required")
        self._site = site
        self._config = config
        self._region = region
        self._network_id = network_id
        # The ranges are known when the program starts: one rule per range, from the config.
        self._rules = firewall_rules(config.rest_port, cidrs)
        self._cidrs = list(cidrs)
        self._zone = availability_zone
        self._tags = tags

    def launch(
        self,
        name: str,
        *,
        node: pulumi.Output[BridgeNode],
        secrets: pulumi.Output[dict[str, Any]],
        allowed_cidrs: pulumi.Output[list[str]],
        parent: pulumi.Resource,
    ) -> pulumi.Output[str]:
        """Create the security group, the Barbican secrets, the boot credential and the
        instance; return the instance's private IPv4 address."""
        del allowed_cidrs  # the same ranges, known statically (see __init__)
        config = self._config
        child = pulumi.ResourceOptions(parent=parent)
        group = self._security_group(name, child)
        names = ["jwt.key", *(["tls.key", "tls.crt", "ca.crt"] if config.tls.enabled else [])]
        stored = {
            secret: openstack.keymanager.SecretV1(
                f"{name}-{secret.replace('.', '-')}",
                name=f"fedeploy-{self._site}-bridge-{secret}",
                region=self._region,
                payload=pulumi.Output.secret(secrets.apply(lambda s, k=secret: s[k])),
                payload_content_type="text/plain",
                secret_type="opaque",
                metadata={"fedeploy-site": self._site},
                opts=child,
            )
            for secret in names
        }
        refs: pulumi.Output[dict[str, str]] = pulumi.Output.all(
            **{k: v.secret_ref for k, v in stored.items()}
        )
        password = random.RandomPassword(
            f"{name}-boot-credential-secret",
            length=48,
            special=False,
            opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["result"]),
        )
        # A new name (new configuration, templates or credential_generation) is a new credential
        # with a fresh expiry; otherwise later deployments keep the first one.
        key = credential_key(config.model_dump_json(exclude={"tls": {"private_key"}}), self._cidrs)
        credential = openstack.identity.ApplicationCredential(
            f"{name}-boot-credential-{key}",
            name=f"fedeploy-{self._site}-bridge-boot-{key}",
            description=f"fedeploy SLURM bridge VM of {self._site}: reads its secrets once",
            region=self._region,
            secret=password.result,
            unrestricted=False,
            expires_at=credential_expiry(datetime.now(UTC), config.credential_lifetime_hours),
            access_rules=refs.apply(access_rules),
            # Same name: keep the first expiry (a new one would replace the credential, and
            # with it the user data and the instance).
            opts=pulumi.ResourceOptions(
                parent=parent, additional_secret_outputs=["secret"], ignore_changes=["expires_at"]
            ),
        )
        boot = pulumi.Output.all(credential.id, password.result).apply(
            lambda a: {"id": a[0], "secret": a[1], "auth_url": config.auth_url}
        )
        # The bridge's secrets are not in here, only the narrow short-lived credential.
        user_data: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(node, refs, boot).apply(
                lambda a: openstack_cloud_init(a[0], a[1], a[2])
            )
        )
        instance = openstack.compute.Instance(
            f"{name}-vm",
            name=f"{self._site}-slurm-bridge",
            region=self._region,
            availability_zone=self._zone,
            image_id=config.image_id,
            flavor_id=config.flavor_id,
            networks=[{"uuid": self._network_id}],
            security_groups=[group.name],
            config_drive=False,
            user_data=user_data,
            tags=_tag_list(self._tags),
            opts=child,
        )
        return instance.access_ip_v4

    def _security_group(
        self, name: str, child: pulumi.ResourceOptions
    ) -> openstack.networking.SecGroup:
        group = openstack.networking.SecGroup(
            f"{name}-sg",
            name=f"{self._site}-slurm-bridge",
            region=self._region,
            description=f"fedeploy SLURM bridge of {self._site}: REST API from the cluster only",
            delete_default_rules=True,
            tags=_tag_list(self._tags),
            opts=child,
        )
        port = self._config.rest_port
        ingress = [("IPv4", c) for c in self._rules.ipv4] + [("IPv6", c) for c in self._rules.ipv6]
        for i, (ethertype, cidr) in enumerate(ingress):
            openstack.networking.SecGroupRule(
                f"{name}-sg-rest-{i}",
                region=self._region,
                security_group_id=group.id,
                direction="ingress",
                ethertype=ethertype,
                protocol="tcp",
                port_range_min=port,
                port_range_max=port,
                remote_ip_prefix=cidr,
                description="SLURM REST API (fedeploy bridge) from the federation's cluster",
                opts=child,
            )
        auth = urlsplit(self._config.auth_url or "")
        egress = sorted({*BRIDGE_EGRESS_TCP, auth.port or 443})
        rules = [("tcp", p) for p in egress] + [("udp", 53)]
        for protocol, p in rules:
            openstack.networking.SecGroupRule(
                f"{name}-sg-egress-{protocol}-{p}",
                region=self._region,
                security_group_id=group.id,
                direction="egress",
                ethertype="IPv4",
                protocol=protocol,
                port_range_min=p,
                port_range_max=p,
                remote_ip_prefix="0.0.0.0/0",
                opts=child,
            )
        return group


def _workload_identities(
    config: OpenStackSite,
    identities: WorkloadIdentities,
    store: S3CompatibleObjectStore,
    context: BuildContext,
) -> dict[str, StaticCredentials]:
    """Per workload: a Keystone project holding nothing, a user with the object-store role on
    it alone, and that user's EC2 credential; per bucket, a policy granting each workload its
    prefixes (fedeploy/openstack_storage.py). Returns the keys by workload."""
    name = context.name
    secret_opts = pulumi.ResourceOptions.merge(
        context.opts, pulumi.ResourceOptions(additional_secret_outputs=["secret"])
    )
    workloads = storage_workloads(config.services)
    keys: dict[str, StaticCredentials] = {}
    principals: dict[str, pulumi.Output[str]] = {}
    for workload in sorted(workloads):
        label = f"fedeploy-{name}-{workload}"
        purpose = f"fedeploy {name}: storage identity of {workload} (holds no resources)"
        project = openstack.identity.Project(
            f"{name}-{workload}-project",
            name=label,
            domain_id=identities.domain_id,
            description=purpose,
            enabled=True,
            tags=_tag_list(context.tags),
            opts=context.opts,
        )
        user = openstack.identity.User(
            f"{name}-{workload}-user",
            name=label,
            domain_id=identities.domain_id,
            default_project_id=project.id,
            description=purpose,
            enabled=True,
            opts=context.opts,
        )
        grant = openstack.identity.RoleAssignment(
            f"{name}-{workload}-role",
            user_id=user.id,
            project_id=project.id,
            role_id=identities.role_id,
            opts=context.opts,
        )
        credential = openstack.identity.Ec2CredentialV3(
            f"{name}-{workload}-s3-credential",
            region=config.region,
            user_id=user.id,
            project_id=project.id,
            opts=pulumi.ResourceOptions.merge(
                secret_opts, pulumi.ResourceOptions(depends_on=[grant])
            ),
        )
        keys[workload] = StaticCredentials(
            pulumi.Output.secret(credential.access), pulumi.Output.secret(credential.secret)
        )
        principals[workload] = project.id.apply(rgw_principal)
    storage = config.storage
    for logical in sorted({bucket for bucket, _ in workloads.values()}):
        physical = bucket_name(storage.bucket_prefix, name, logical)
        users = {w: access for w, (bucket, access) in workloads.items() if bucket == logical}
        policy = pulumi.Output.all(**{w: principals[w] for w in users}).apply(
            lambda ids, b=physical, u=users: workload_bucket_policy(
                b, {w: (ids[w], access) for w, access in u.items()}
            )
        )
        aws.s3.BucketPolicy(
            f"{name}-storage-{logical}-workloads",
            bucket=store.bucket_resources[logical].id,
            policy=pulumi.Output.json_dumps(policy),
            opts=pulumi.ResourceOptions(parent=store, provider=store.provider),
        )
    return keys


def provision(config: OpenStackSite, context: BuildContext) -> SiteResources:
    """Network, Magnum cluster and S3 buckets with an EC2 credential of the deploying user."""
    name = context.name
    network = OpenStackNetwork(
        f"{name}-network",
        region=config.region,
        config=config.network,
        tags=context.tags,
        opts=context.opts,
    )
    cluster = MagnumKubernetes(
        f"{name}-cluster",
        region=config.region,
        config=config.cluster,
        network=network,
        network_config=config.network,
        opts=context.opts,
    )
    # EC2-style keys of the deploying user in this project: what the cloud's S3 API accepts.
    credential = openstack.identity.Ec2CredentialV3(
        f"{name}-s3-credential",
        region=config.region,
        opts=pulumi.ResourceOptions.merge(
            context.opts, pulumi.ResourceOptions(additional_secret_outputs=["secret"])
        ),
    )
    access: pulumi.Output[str] = credential.access
    secret: pulumi.Output[str] = pulumi.Output.secret(credential.secret)
    store = S3CompatibleObjectStore(
        f"{name}-storage",
        site=name,
        config=config.storage,
        tags=context.tags,
        credentials=(access, secret),
        opts=context.opts,
    )
    workload_keys: dict[str, StaticCredentials] = {}
    if config.workload_identities is not None:
        workload_keys = _workload_identities(config, config.workload_identities, store, context)
    bridge_host = None
    if config.bridge is not None and config.bridge.mode == "vm":
        bridge_host = OpenStackBridgeHost(
            site=name,
            config=config.bridge,
            region=config.region,
            network_id=network.network_id,
            cidrs=[config.network.cidr, *config.bridge.allowed_cidrs],
            availability_zone=config.availability_zone,
            tags=context.tags,
        )
    return SiteResources(
        store=store,
        cluster=cluster,
        region=config.region,
        network={"cidr": config.network.cidr},
        # With workload identities no pod holds the deploying user's keys (only Pulumi does).
        credentials=(
            None
            if workload_keys
            else StaticCredentials(store.access_key_id, store.secret_access_key)
        ),
        workload_credentials=workload_keys,
        gpu=GpuScheduling({GPU_LABEL_KEY: GPU_LABEL_VALUE}, GPU_TAINT_KEY),
        bridge_cidrs=[config.network.cidr],
        bridge_host=bridge_host,
        provisioned_kubeconfig=cluster.kubeconfig,
        pod_storage_endpoint=store.endpoint,
    )
