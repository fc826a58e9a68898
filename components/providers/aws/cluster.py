"""The aws kind's cluster: EKS in the site's VPC, its node groups and the OIDC provider for IRSA."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.providers.aws.network import Vpc
from fedeploy.config.cluster import EksCluster as EksConfig
from fedeploy.config.cluster import NodeGroup as NodeGroupConfig
from fedeploy.config.site import AwsNetwork
from fedeploy.kubeconfig import eks_kubeconfig, operator_identity
from fedeploy.node_pools import node_labels, node_taints

# Kubernetes' taint effects as EKS names them.
_EKS_EFFECT = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}
_NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)


def _service_role(
    name: str,
    service: str,
    policies: dict[str, str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """A role `service` assumes, with AWS managed policies attached (attachment name -> policy
    name, in order); the role and its attachments."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
    role = aws.iam.Role(name, assume_role_policy=json.dumps(trust), tags=tags, opts=opts)
    attachments = [
        aws.iam.RolePolicyAttachment(
            attachment,
            role=role.name,
            policy_arn=f"arn:aws:iam::aws:policy/{policy}",
            opts=opts,
        )
        for attachment, policy in policies.items()
    ]
    return role, attachments


# Node instances: IMDSv2 only; a hop limit of 2 lets pods with IRSA through, no further.
NODE_METADATA_OPTIONS = {
    "http_endpoint": "enabled",
    "http_tokens": "required",
    "http_put_response_hop_limit": 2,
}


class EksCluster(pulumi.ComponentResource):
    """EKS with secrets encrypted by KMS, managed node groups (GPU groups tainted and labelled)
    and the OIDC provider for IAM roles for service accounts."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    name: pulumi.Output[str]
    version: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str | None]
    oidc_provider_arn: pulumi.Output[str | None]
    vpc: Vpc
    has_gpu: bool

    def __init__(
        self,
        name: str,
        *,
        region: str,
        network: AwsNetwork,
        config: EksConfig,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:cluster:KubernetesCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.has_gpu = config.has_gpu
        self.vpc = Vpc(f"{name}-vpc", cluster_name=name, config=network, tags=tags, opts=child)

        cluster_role, _ = _service_role(
            f"{name}-cluster-role",
            "eks.amazonaws.com",
            {f"{name}-cluster-policy": "AmazonEKSClusterPolicy"},
            tags,
            child,
        )
        secrets_key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"EKS {name}: envelope encryption of Kubernetes secrets",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
        )
        cluster = aws.eks.Cluster(
            name,
            name=name,
            version=config.version,
            role_arn=cluster_role.arn,
            vpc_config={
                "subnet_ids": self.vpc.private_subnet_ids,
                "endpoint_private_access": True,
                "endpoint_public_access": bool(config.public_access_cidrs),
                "public_access_cidrs": config.public_access_cidrs or None,
            },
            access_config={
                "authentication_mode": "API",
                "bootstrap_cluster_creator_admin_permissions": True,
            },
            encryption_config={"resources": ["secrets"], "provider": {"key_arn": secrets_key.arn}},
            enabled_cluster_log_types=list(config.log_types),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=False),
        )
        node_role, attachments = _service_role(
            f"{name}-node-role",
            "ec2.amazonaws.com",
            {f"{name}-node-{policy}": policy for policy in _NODE_POLICIES},
            tags,
            child,
        )
        for group_name, group in sorted(config.node_groups.items()):
            self._node_group(
                name,
                group_name,
                group,
                cluster=cluster,
                node_role=node_role,
                attachments=attachments,
                tags=tags,
            )
        issuer = cluster.identities.apply(lambda ids: ids[0]["oidcs"][0]["issuer"])
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"], tags=tags, opts=child
        )
        self.name = cluster.name
        self.version = cluster.version
        self.oidc_issuer = issuer
        self.oidc_provider_arn = oidc.arn
        # The identity the stack's AWS provider deploys with: the cluster's creator, its admin.
        aws_config = pulumi.Config("aws")
        settings = {
            "profile": aws_config.get("profile"),
            "assumeRoles": aws_config.get_object("assumeRoles"),
            "assumeRole": aws_config.get_object("assumeRole"),
        }
        identity = operator_identity({k: v for k, v in settings.items() if v is not None})
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority).apply(
                lambda args: eks_kubeconfig(
                    name=args[0],
                    endpoint=args[1],
                    certificate_authority=args[2]["data"],
                    region=region,
                    identity=identity,
                )
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=child,
        )
        self.register_outputs({"name": self.name, "oidc_issuer": self.oidc_issuer})

    def _node_group(
        self,
        name: str,
        group_name: str,
        group: NodeGroupConfig,
        *,
        cluster: aws.eks.Cluster,
        node_role: aws.iam.Role,
        attachments: list[aws.iam.RolePolicyAttachment],
        tags: dict[str, str],
    ) -> None:
        """The managed node group `<name>-<group_name>` and its launch template: IMDSv2 only,
        hop limit 2 (pods using IRSA still reach it; as terraform-aws-eks does), the encrypted
        root volume (here, as EKS refuses disk_size beside a template); GPU groups labelled and
        tainted as on every kind (fedeploy/node_pools.py)."""
        gpu = group.accelerator == "nvidia"
        template = aws.ec2.LaunchTemplate(
            f"{name}-{group_name}-nodes",
            description=f"EKS {name} node group {group_name}: IMDSv2, encrypted root volume",
            metadata_options=NODE_METADATA_OPTIONS,
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_size": group.disk_size_gib,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            tag_specifications=[
                {"resource_type": "instance", "tags": tags},
                {"resource_type": "volume", "tags": tags},
            ],
            update_default_version=True,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        taints = [
            {"key": t.key, "value": t.value, "effect": _EKS_EFFECT[t.effect]}
            for t in node_taints(gpu=gpu)
        ]
        aws.eks.NodeGroup(
            f"{name}-{group_name}",
            cluster_name=cluster.name,
            node_group_name=group_name,
            node_role_arn=node_role.arn,
            subnet_ids=self.vpc.private_subnet_ids,
            instance_types=group.instance_types,
            capacity_type=group.capacity_type,
            ami_type=group.ami_type,
            launch_template={
                "id": template.id,
                "version": template.latest_version.apply(
                    lambda v: "$Latest" if v is None else str(v)
                ),
            },
            scaling_config={
                "min_size": group.min_size,
                "desired_size": group.desired_size,
                "max_size": group.max_size,
            },
            update_config={"max_unavailable": 1},
            labels=node_labels(group_name, gpu=gpu),
            taints=taints or None,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=attachments),
        )
