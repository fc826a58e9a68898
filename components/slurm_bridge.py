"""SlurmBridge: a site's way into SLURM, configured on the node and wired into the cluster."""

from __future__ import annotations

import time
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components import kube_core
from components.providers.base import BridgeHost
from fedeploy.bridge.firewall import firewall_rules
from fedeploy.bridge.node_config import (
    BridgeNode,
    bridge_node,
    secret_stdin,
    tls_server_name,
)
from fedeploy.bridge.tokens import mint_token
from fedeploy.bridge.wiring import (
    CA_VALIDITY_HOURS,
    COMPONENT_LABELS,
    SECRET_NAME,
    SERVICE_NAME,
    certificate_names,
    endpoint,
    remote_command,
    service_target,
)
from fedeploy.config.bridge import BridgeConfig


class SlurmBridge(pulumi.ComponentResource):
    """slurmrestd with JWT authentication behind TLS, on a gateway node (over SSH), a new VM
    (launched by the site provider's `BridgeHost`) or the centre's own; a Secret with the
    service user's token and a Service. Creates no cloud provider's resources itself."""

    endpoint: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    has_ca: bool  # whether the Secret carries `ca.crt`, the CA that clients must trust
    partitions: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        site_name: str,
        config: BridgeConfig,
        namespace: str,
        k8s_provider: k8s.Provider,
        labels: dict[str, str],
        allowed_cidrs: pulumi.Input[list[str]],
        bridge_host: BridgeHost | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:hpc:SlurmBridge", name, None, opts)
        if config.mode == "vm" and bridge_host is None:
            raise ValueError(
                f"{name}: bridge mode 'vm' needs a bridge host from the site's provider "
                "(components/providers/<kind>/bridge_host.py: aws, openstack)"
            )
        self._name = name
        self._site = site_name
        self._config = config
        self._namespace = namespace
        self._child = pulumi.ResourceOptions(parent=self)
        self._k8s = pulumi.ResourceOptions(parent=self, provider=k8s_provider)
        self._labels = {**labels, **COMPONENT_LABELS}
        self._allowed_input = allowed_cidrs

        ca_pem: pulumi.Input[str] | None = config.tls.ca_certificate
        address: pulumi.Input[str] | None = None
        if config.mode == "existing":
            assert config.token is not None
            token: pulumi.Output[str] = config.token.output()
        else:
            key = random.RandomPassword(
                f"{name}-jwt-key",
                length=64,
                special=False,
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["result"]),
            )
            token = pulumi.Output.secret(key.result).apply(
                lambda k: mint_token(
                    k,
                    config.service_user,
                    now=time.time(),
                    lifetime_hours=config.token_lifetime_hours,
                )
            )
            tls_files = self._tls_files()
            if config.tls.enabled and config.tls.certificate is None:
                ca_pem = tls_files["ca.crt"]
            secrets: pulumi.Output[dict[str, Any]] = pulumi.Output.secret(
                pulumi.Output.all(**{"jwt.key": key.result, "token": token, **tls_files})
            )
            node = self._allowed().apply(self._node)
            if config.mode == "gateway":
                self._configure_gateway(node, secrets)
            else:
                assert bridge_host is not None
                address = bridge_host.launch(
                    name, node=node, secrets=secrets, allowed_cidrs=self._allowed(), parent=self
                )

        self.endpoint = pulumi.Output.from_input(endpoint(config, namespace))
        self.partitions = pulumi.Output.from_input(list(config.partitions))
        secret = self._secret(token, ca_pem)
        self.secret_name = secret.metadata.apply(lambda m: m.name)
        self._service(address)
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "secret_name": self.secret_name,
                "partitions": self.partitions,
            }
        )

    # -- the node -----------------------------------------------------------------------------
    def _node(self, cidrs: list[str]) -> BridgeNode:
        config = self._config
        return bridge_node(
            config,
            bridge_name=self._site,
            firewall=firewall_rules(config.rest_port, cidrs),
            tls_name=tls_server_name(SERVICE_NAME, self._namespace),
        )

    def _tls_files(self) -> dict[str, pulumi.Input[str]]:
        """The listener's key and certificate: the configured pair, or a private CA's."""
        tls_config = self._config.tls
        if not tls_config.enabled:
            return {}
        if tls_config.certificate is not None:
            assert tls_config.private_key is not None
            return {
                "tls.key": tls_config.private_key.output(),
                "tls.crt": tls_config.certificate,
                "ca.crt": tls_config.ca_certificate or tls_config.certificate,
            }
        name = self._name
        ca_key = tls.PrivateKey(
            f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=self._child
        )
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=CA_VALIDITY_HOURS,
            allowed_uses=["cert_signing", "crl_signing"],
            subject={
                "common_name": f"fedeploy bridge CA ({self._site})",
                "organization": "fedeploy",
            },
            opts=self._child,
        )
        server_key = tls.PrivateKey(
            f"{name}-tls-key", algorithm="ECDSA", ecdsa_curve="P256", opts=self._child
        )
        dns_names, ip_addresses = certificate_names(self._config, self._namespace)
        request = tls.CertRequest(
            f"{name}-tls-request",
            private_key_pem=server_key.private_key_pem,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            subject={
                "common_name": tls_server_name(SERVICE_NAME, self._namespace),
                "organization": "fedeploy",
            },
            opts=self._child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-tls-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=tls_config.validity_hours,
            early_renewal_hours=tls_config.validity_hours // 4,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=self._child,
        )
        return {
            "tls.key": server_key.private_key_pem,
            "tls.crt": cert.cert_pem,
            "ca.crt": ca.cert_pem,
        }

    def _configure_gateway(
        self, node: pulumi.Output[BridgeNode], secrets: pulumi.Output[dict[str, Any]]
    ) -> None:
        config = self._config
        connection = {
            "host": config.host,
            "port": config.port,
            "user": config.ssh_user,
            "private_key": config.ssh_key.output(),
            "host_key": config.host_key,
        }
        # Only the rendered content decides whether the node is configured again.
        content_hash = node.apply(lambda n: n.content_hash)
        setup = node.apply(lambda n: remote_command(n.setup_script))
        stdin = pulumi.Output.all(node, secrets).apply(
            lambda args: secret_stdin({k: args[1][k] for k in args[0].secret_names})
        )
        from pulumi_command import remote

        applied = remote.Command(
            f"{self._name}-setup",
            connection=connection,
            create=setup,
            update=setup,
            stdin=pulumi.Output.secret(stdin),
            triggers=[content_hash],
            opts=self._child,
        )
        # Its own resource, so that re-running the setup never tears the bridge down first.
        remote.Command(
            f"{self._name}-teardown",
            connection=connection,
            delete=node.apply(lambda n: remote_command(n.teardown_script)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[applied]),
        )

    def _allowed(self) -> pulumi.Output[list[str]]:
        return pulumi.Output.from_input(self._allowed_input).apply(
            lambda c: [*c, *self._config.allowed_cidrs]
        )

    # -- the cluster side ---------------------------------------------------------------------
    def _secret(
        self, token: pulumi.Output[str], ca_pem: pulumi.Input[str] | None
    ) -> kube_core.Secret:
        data: dict[str, pulumi.Input[str]] = {"token": token, "user": self._config.service_user}
        self.has_ca = ca_pem is not None
        if ca_pem is not None:
            data["ca.crt"] = ca_pem
        return kube_core.Secret(
            f"{self._name}-token",
            metadata={"name": SECRET_NAME, "namespace": self._namespace, "labels": self._labels},
            type="Opaque",
            string_data=pulumi.Output.secret(pulumi.Output.all(**data)),
            opts=self._k8s,
        )

    def _service(self, address: pulumi.Input[str] | None) -> None:
        target = service_target(self._config)
        port = {
            "name": "https" if self._config.tls.enabled else "http",
            "port": target.port,
            "targetPort": target.port,
            "protocol": "TCP",
        }
        metadata = {"name": SERVICE_NAME, "namespace": self._namespace, "labels": self._labels}
        if target.kind == "dns":
            kube_core.Service(
                f"{self._name}-service",
                metadata=metadata,
                spec={"type": "ExternalName", "externalName": target.host, "ports": [port]},
                opts=self._k8s,
            )
            return
        kube_core.Service(
            f"{self._name}-service",
            metadata=metadata,
            # No selector: the EndpointSlice below names the bridge's address.
            spec={"type": "ClusterIP", "ports": [port]},
            opts=self._k8s,
        )
        kube_core.EndpointSlice(
            f"{self._name}-endpoints",
            metadata={
                "name": SERVICE_NAME,
                "namespace": self._namespace,
                "labels": {
                    **self._labels,
                    "kubernetes.io/service-name": SERVICE_NAME,
                    "endpointslice.kubernetes.io/managed-by": "fedeploy.io",
                },
            },
            address_type="IPv4",  # bridge.host is a DNS name or an IPv4 address
            endpoints=[
                {
                    "addresses": [address if address is not None else target.host],
                    "conditions": {"ready": True},
                }
            ],
            ports=[{"name": port["name"], "port": target.port, "protocol": "TCP"}],
            opts=self._k8s,
        )
