"""An IAM role that one Kubernetes service account assumes (IAM roles for service accounts)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from fedeploy.values.workload_access import WorkloadAccess, workload_policy


def _trust(provider_arn: str, issuer: str, subject: str) -> dict[str, Any]:
    host = issuer.removeprefix("https://")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{host}:sub": subject, f"{host}:aud": "sts.amazonaws.com"}
                },
            }
        ],
    }


class WorkloadRole(pulumi.ComponentResource):
    """Least privilege: what `access` lists on its buckets' key prefixes and use of its KMS
    key through S3, assumable only by `system:serviceaccount:<namespace>:<service account>`."""

    arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        namespace: str,
        service_account: str,
        oidc_provider_arn: pulumi.Input[str],
        oidc_issuer: pulumi.Input[str],
        bucket_arns: list[pulumi.Input[str]],
        kms_key_arn: pulumi.Input[str | None],
        access: WorkloadAccess,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:identity:WorkloadRole", name, None, opts)
        subject = f"system:serviceaccount:{namespace}:{service_account}"
        role = aws.iam.Role(
            name,
            description=f"fedeploy workload {subject}",
            assume_role_policy=pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
                lambda args: json.dumps(_trust(args[0], args[1], subject))
            ),
            max_session_duration=3600,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        policy = pulumi.Output.all(kms_key_arn, *bucket_arns).apply(
            lambda args: json.dumps(workload_policy(access, list(args[1:]), args[0]))
        )
        aws.iam.RolePolicy(
            f"{name}-access", role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=self)
        )
        self.arn = role.arn
        self.register_outputs({"arn": self.arn})
