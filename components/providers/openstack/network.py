"""The openstack kind's network: a private network and subnet routed (SNAT) to the cloud's
external network."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from fedeploy.config.openstack import OpenStackNetwork as NetworkConfig


def tag_list(tags: dict[str, str]) -> list[str]:
    """Resource tags as Neutron takes them: plain `key=value` strings, sorted."""
    return [f"{k}={v}" for k, v in sorted(tags.items())]


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
        labels = tag_list(tags)
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
