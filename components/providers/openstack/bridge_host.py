"""The openstack kind's bridge host: the instance a `vm`-mode SLURM bridge runs on, its security
group, its secrets in Barbican and the short-lived credential that reads them at boot."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_openstack as openstack
import pulumi_random as random

from components.providers.base import boot_secret_names
from components.providers.openstack.network import tag_list
from fedeploy.bridge.firewall import firewall_rules
from fedeploy.bridge.node_config import BridgeNode
from fedeploy.bridge.openstack_boot import (
    access_rules,
    credential_expiry,
    credential_key,
    openstack_cloud_init,
)
from fedeploy.config.bridge import BridgeConfig

# Egress of the bridge instance: package mirrors, Keystone and Barbican (its usual port) and DNS.
BRIDGE_EGRESS_TCP = (80, 443, 9311)


class OpenStackBridgeHost:
    """Launches a `vm` bridge in the site's subnet: its secrets in Barbican, an application
    credential that may only GET them and expires after the boot window, in a root-only file, a security group that
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
        names = boot_secret_names(config)
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
            expires_at=credential_expiry(datetime.now(UTC), config.boot_window_minutes),
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
            tags=tag_list(self._tags),
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
            tags=tag_list(self._tags),
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
