"""The ovh kind's network: a private network in the project's vRack and one subnet."""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_ovh as ovh

from fedeploy.config.ovh import OvhPrivateNetwork


class OvhNetwork(pulumi.ComponentResource):
    """A private network in the project's vRack and one subnet in the site's region."""

    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        project_id: str,
        region: str,
        config: OvhPrivateNetwork,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:network:OvhPrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        start, end = _dhcp_range(config.cidr)
        network = ovh.cloudproject.NetworkPrivate(
            name,
            service_name=project_id,
            name=name,
            regions=[region],
            vlan_id=config.vlan_id,
            opts=child,
        )
        subnet = ovh.cloudproject.NetworkPrivateSubnet(
            f"{name}-subnet",
            service_name=project_id,
            network_id=network.id,
            region=region,
            network=config.cidr,
            start=start,
            end=end,
            dhcp=True,
            no_gateway=False,
            opts=child,
        )
        # The cluster takes the network's OpenStack id in its region, not OVHcloud's own id.
        self.network_id = network.regions_openstack_ids.apply(lambda ids: ids[region])
        self.subnet_id = subnet.id
        self.register_outputs({"network_id": self.network_id, "subnet_id": self.subnet_id})


def _dhcp_range(cidr: str) -> tuple[str, str]:
    """The second and the last host address of `cidr` (the first is the gateway's), computed
    from its ends: listing a /16's hosts took about half a second per site."""
    network = ipaddress.ip_network(cidr)
    if network.version == 4 and network.num_addresses >= 4:
        return str(network.network_address + 2), str(network.broadcast_address - 1)
    hosts = list(network.hosts())
    return str(hosts[1]), str(hosts[-1])
