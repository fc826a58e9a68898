"""SlurmBridge: a site's way into SLURM, configured on the node and wired into the cluster."""

from __future__ import annotations

import json
import time
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components.providers.base import BridgeHost
from fedeploy.bridge.firewall import firewall_rules, security_group_ingress
from fedeploy.bridge.node_config import (
    BridgeNode,
    bridge_node,
    secret_stdin,
    tls_server_name,
    user_data_base64,
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
from fedeploy.bridge_boot import (
    BOOT_TAG,
    instance_policy,
    instance_trust,
    parameter_name,
    vm_cloud_init,
)
from fedeploy.config.bridge import BridgeConfig


class SlurmBridge(pulumi.ComponentResource):
    """slurmrestd with JWT authentication behind TLS, on a gateway node (over SSH), a new VM
    (cloud-init) or the centre's own; a Secret with the service user's token and a Service."""

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
        vpc_id: pulumi.Input[str] | None = None,
        subnet_id: pulumi.Input[str] | None = None,
        bridge_host: BridgeHost | None = None,
        tags: dict[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:hpc:SlurmBridge", name, None, opts)
        if config.mode == "vm" and bridge_host is None and (vpc_id is None or subnet_id is None):
            raise ValueError(
                f"{name}: bridge mode 'vm' needs the site's vpc_id and subnet_id (aws) or a "
                "bridge host from the site's provider (openstack)"
            )
        self._name = name
        self._site = site_name
        self._config = config
        self._namespace = namespace
        self._tags = dict(tags or {})
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
            elif bridge_host is not None:
                address = bridge_host.launch(
                    name, node=node, secrets=secrets, allowed_cidrs=self._allowed(), parent=self
                )
            else:
                address = self._vm(node, secrets, vpc_id, subnet_id)

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

    def _vm(
        self,
        node: pulumi.Output[BridgeNode],
        secrets: pulumi.Output[dict[str, Any]],
        vpc_id: pulumi.Input[str] | None,
        subnet_id: pulumi.Input[str] | None,
    ) -> pulumi.Output[str]:
        import pulumi_aws as aws

        config = self._config
        ingress = pulumi.Output.from_input(self._allowed()).apply(
            lambda cidrs: security_group_ingress(firewall_rules(config.rest_port, cidrs))
        )
        group = aws.ec2.SecurityGroup(
            f"{self._name}-sg",
            vpc_id=vpc_id,
            description=f"fedeploy SLURM bridge of {self._site}: REST API from the cluster only",
            ingress=ingress,
            # Packages at first boot (HTTP and HTTPS mirrors through the NAT) and DNS.
            egress=[
                {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["0.0.0.0/0"]},
                {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]},
                {"protocol": "udp", "from_port": 53, "to_port": 53, "cidr_blocks": ["0.0.0.0/0"]},
            ],
            tags={**self._tags, "Name": f"{self._name}-sg"},
            opts=self._child,
        )
        parameters, profile = self._boot_secrets(secrets)
        names = {secret: parameter_name(self._site, secret) for secret in parameters}
        versions = pulumi.Output.all(**{k: p.version for k, p in parameters.items()})
        # No secret in here: the VM reads them from SSM with its role (fedeploy/bridge_boot.py).
        user_data = pulumi.Output.all(node, versions).apply(
            lambda args: user_data_base64(vm_cloud_init(args[0], names, args[1]))
        )
        instance = aws.ec2.Instance(
            f"{self._name}-vm",
            ami=config.ami,
            instance_type=config.instance_type,
            subnet_id=subnet_id,
            vpc_security_group_ids=[group.id],
            associate_public_ip_address=False,
            user_data_base64=user_data,
            iam_instance_profile=profile.name,
            # cloud-init runs once: a changed configuration needs a new instance.
            user_data_replace_on_change=True,
            metadata_options={
                "http_tokens": "required",
                "http_endpoint": "enabled",
                "http_put_response_hop_limit": 1,
            },
            root_block_device={
                "encrypted": True,
                "volume_size": config.root_volume_gb,
                "volume_type": "gp3",
            },
            tags={**self._tags, "Name": f"{self._name}-vm", BOOT_TAG: self._site},
            # The instance drops its profile after first boot (fetch-secrets.py): that is the
            # design, not drift to undo.
            opts=pulumi.ResourceOptions.merge(
                self._child, pulumi.ResourceOptions(ignore_changes=["iam_instance_profile"])
            ),
        )
        return instance.private_ip

    def _boot_secrets(self, secrets: pulumi.Output[dict[str, Any]]) -> tuple[dict[str, Any], Any]:
        """SecureString parameters under the bridge's own KMS key, and an instance profile
        whose role reads exactly them."""
        import pulumi_aws as aws

        names = ["jwt.key", *(["tls.key", "tls.crt", "ca.crt"] if self._config.tls.enabled else [])]
        key = aws.kms.Key(
            f"{self._name}-secrets-key",
            description=f"fedeploy SLURM bridge secrets of {self._site}",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            tags=self._tags,
            opts=self._child,
        )
        parameters = {
            secret: aws.ssm.Parameter(
                f"{self._name}-{secret.replace('.', '-')}",
                name=parameter_name(self._site, secret),
                type="SecureString",
                key_id=key.arn,
                value=pulumi.Output.secret(secrets.apply(lambda s, k=secret: s[k])),
                description=f"fedeploy bridge {secret} of {self._site}, read by its VM at boot",
                tags=self._tags,
                opts=self._child,
            )
            for secret in names
        }
        role = aws.iam.Role(
            f"{self._name}-vm-role",
            description=f"fedeploy SLURM bridge VM of {self._site}: reads its own secrets",
            assume_role_policy=json.dumps(instance_trust()),
            tags=self._tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{self._name}-vm-secrets",
            role=role.id,
            policy=pulumi.Output.all(key.arn, *(p.arn for p in parameters.values())).apply(
                lambda arns: json.dumps(instance_policy(list(arns[1:]), arns[0], self._site))
            ),
            opts=self._child,
        )
        profile = aws.iam.InstanceProfile(
            f"{self._name}-vm-profile", role=role.name, tags=self._tags, opts=self._child
        )
        return parameters, profile

    def _allowed(self) -> pulumi.Output[list[str]]:
        return pulumi.Output.from_input(self._allowed_input).apply(
            lambda c: [*c, *self._config.allowed_cidrs]
        )

    # -- the cluster side ---------------------------------------------------------------------
    def _secret(
        self, token: pulumi.Output[str], ca_pem: pulumi.Input[str] | None
    ) -> k8s.core.v1.Secret:
        data: dict[str, pulumi.Input[str]] = {"token": token, "user": self._config.service_user}
        self.has_ca = ca_pem is not None
        if ca_pem is not None:
            data["ca.crt"] = ca_pem
        return k8s.core.v1.Secret(
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
            k8s.core.v1.Service(
                f"{self._name}-service",
                metadata=metadata,
                spec={"type": "ExternalName", "externalName": target.host, "ports": [port]},
                opts=self._k8s,
            )
            return
        k8s.core.v1.Service(
            f"{self._name}-service",
            metadata=metadata,
            # No selector: the EndpointSlice below names the bridge's address.
            spec={"type": "ClusterIP", "ports": [port]},
            opts=self._k8s,
        )
        k8s.discovery.v1.EndpointSlice(
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
            address_type="IPv6" if target.host and ":" in target.host else "IPv4",
            endpoints=[
                {
                    "addresses": [address if address is not None else target.host],
                    "conditions": {"ready": True},
                }
            ],
            ports=[{"name": port["name"], "port": target.port, "protocol": "TCP"}],
            opts=self._k8s,
        )
