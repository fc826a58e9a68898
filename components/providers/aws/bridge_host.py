"""The aws kind's bridge host: the EC2 instance a `vm`-mode SLURM bridge runs on, its security
group, and its secrets in SSM under a KMS key of its own, read at boot through an instance role."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from components.providers.base import boot_secret_names
from fedeploy.bridge.firewall import firewall_rules, security_group_ingress
from fedeploy.bridge.node_config import BridgeNode, user_data_base64
from fedeploy.bridge_boot import (
    BOOT_TAG,
    instance_policy,
    instance_trust,
    parameter_name,
    vm_cloud_init,
)
from fedeploy.config.bridge import BridgeConfig


class AwsBridgeHost:
    """Launches a `vm` bridge in the site's private subnet (no public address, IMDSv2 only,
    encrypted root volume); the VM reads its secrets from SSM once (fedeploy/bridge_boot.py)."""

    def __init__(
        self,
        *,
        site: str,
        config: BridgeConfig,
        vpc_id: pulumi.Input[str],
        subnet_id: pulumi.Input[str],
        tags: dict[str, str],
    ) -> None:
        self._site = site
        self._config = config
        self._vpc_id = vpc_id
        self._subnet_id = subnet_id
        self._tags = dict(tags)

    def launch(
        self,
        name: str,
        *,
        node: pulumi.Output[BridgeNode],
        secrets: pulumi.Output[dict[str, Any]],
        allowed_cidrs: pulumi.Output[list[str]],
        parent: pulumi.Resource,
    ) -> pulumi.Output[str]:
        """Create the security group, the SSM parameters, the instance role and the instance;
        return the instance's private IPv4 address."""
        config = self._config
        child = pulumi.ResourceOptions(parent=parent)
        ingress = allowed_cidrs.apply(
            lambda cidrs: security_group_ingress(firewall_rules(config.rest_port, cidrs))
        )
        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=self._vpc_id,
            description=f"fedeploy SLURM bridge of {self._site}: REST API from the cluster only",
            ingress=ingress,
            # Packages at first boot (HTTP and HTTPS mirrors through the NAT) and DNS.
            egress=[
                {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["0.0.0.0/0"]},
                {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]},
                {"protocol": "udp", "from_port": 53, "to_port": 53, "cidr_blocks": ["0.0.0.0/0"]},
            ],
            tags={**self._tags, "Name": f"{name}-sg"},
            opts=child,
        )
        parameters, profile = self._boot_secrets(name, secrets, child)
        names = {secret: parameter_name(self._site, secret) for secret in parameters}
        versions = pulumi.Output.all(**{k: p.version for k, p in parameters.items()})
        # No secret in here: the VM reads them from SSM with its role (fedeploy/bridge_boot.py).
        user_data = pulumi.Output.all(node, versions).apply(
            lambda args: user_data_base64(vm_cloud_init(args[0], names, args[1]))
        )
        instance = aws.ec2.Instance(
            f"{name}-vm",
            ami=config.ami,
            instance_type=config.instance_type,
            subnet_id=self._subnet_id,
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
            tags={**self._tags, "Name": f"{name}-vm", BOOT_TAG: self._site},
            # The instance drops its profile after first boot (fetch-secrets.py): that is the
            # design, not drift to undo.
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(ignore_changes=["iam_instance_profile"])
            ),
        )
        return instance.private_ip

    def _boot_secrets(
        self, name: str, secrets: pulumi.Output[dict[str, Any]], child: pulumi.ResourceOptions
    ) -> tuple[dict[str, aws.ssm.Parameter], aws.iam.InstanceProfile]:
        """SecureString parameters under the bridge's own KMS key, and an instance profile
        whose role reads exactly them."""
        site = self._site
        names = boot_secret_names(self._config)
        key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"fedeploy SLURM bridge secrets of {site}",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            tags=self._tags,
            opts=child,
        )
        parameters = {
            secret: aws.ssm.Parameter(
                f"{name}-{secret.replace('.', '-')}",
                name=parameter_name(site, secret),
                type="SecureString",
                key_id=key.arn,
                value=pulumi.Output.secret(secrets.apply(lambda s, k=secret: s[k])),
                description=f"fedeploy bridge {secret} of {site}, read by its VM at boot",
                tags=self._tags,
                opts=child,
            )
            for secret in names
        }
        role = aws.iam.Role(
            f"{name}-vm-role",
            description=f"fedeploy SLURM bridge VM of {site}: reads its own secrets",
            assume_role_policy=json.dumps(instance_trust()),
            tags=self._tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-vm-secrets",
            role=role.id,
            policy=pulumi.Output.all(key.arn, *(p.arn for p in parameters.values())).apply(
                lambda arns: json.dumps(instance_policy(list(arns[1:]), arns[0], site))
            ),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(
            f"{name}-vm-profile", role=role.name, tags=self._tags, opts=child
        )
        return parameters, profile
