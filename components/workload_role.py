"""An IAM role that one Kubernetes service account assumes (IAM roles for service accounts)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws


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
    """Least privilege: read (and write where asked) on named buckets and use of their KMS key,
    assumable only by `system:serviceaccount:<namespace>:<service account>`."""

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
        write: bool,
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
        object_actions = ["s3:GetObject", "s3:GetObjectVersion"]
        if write:
            object_actions += ["s3:PutObject", "s3:AbortMultipartUpload"]
        statements: list[Any] = [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": bucket_arns,
            },
            {
                "Effect": "Allow",
                "Action": object_actions,
                "Resource": [pulumi.Output.concat(arn, "/*") for arn in bucket_arns],
            },
        ]
        policy: pulumi.Output[str] = pulumi.Output.from_input(kms_key_arn).apply(
            lambda key: pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": statements
                    + (
                        [
                            {
                                "Effect": "Allow",
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                                "Resource": [key],
                            }
                        ]
                        if key
                        else []
                    ),
                }
            )
        )
        aws.iam.RolePolicy(
            f"{name}-access", role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=self)
        )
        self.arn = role.arn
        self.register_outputs({"arn": self.arn})
