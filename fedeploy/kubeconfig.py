"""The kubeconfig of an EKS cluster: tokens come from `aws eks get-token`, never a static secret.

The token is asked for with the identity the stack's AWS provider deploys with (`aws:profile`,
`aws:assumeRoles`), so `pulumi up` reaches the cluster as the principal that created it, its
only admin; without it `aws eks get-token` signs as whoever the environment's default chain
finds, and every chart install is refused as Unauthorized."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from fedeploy.errors import FedeployError

# The keys of one `aws:assumeRoles` entry that `aws eks get-token` can honour: `--role-arn`
# takes the role; the session name only names the session in CloudTrail.
_GET_TOKEN_ROLE_KEYS = frozenset({"roleArn", "sessionName"})
_USE_A_PROFILE = (
    "`aws eks get-token` takes one role and nothing else: configure the chain (role_arn, "
    "source_profile, external_id, duration_seconds) as an AWS CLI profile and set aws:profile "
    "to it instead"
)


class OperatorIdentityError(FedeployError):
    """The stack's AWS provider identity cannot be given to `aws eks get-token` as it is."""


@dataclass(frozen=True)
class AwsIdentity:
    """Who `aws eks get-token` signs as: an AWS CLI profile and/or one role it assumes."""

    profile: str | None = None
    role_arn: str | None = None

    def get_token_args(self) -> list[str]:
        """The arguments that make `aws eks get-token` use this identity."""
        args = ["--profile", self.profile] if self.profile else []
        return args + (["--role-arn", self.role_arn] if self.role_arn else [])


def operator_identity(aws_config: dict[str, Any]) -> AwsIdentity:
    """The identity of the stack's AWS provider, from its `aws:` config keys (without the prefix).

    `aws_config` maps `profile` to a string and `assumeRoles` to pulumi-aws 7's list of role
    objects (`roleArn`, `sessionName`, ...). Raises OperatorIdentityError naming the key for
    `assumeRole` (pulumi-aws 6's name, which pulumi-aws 7 ignores), a chain of roles, or role
    settings `aws eks get-token` cannot pass."""
    if "assumeRole" in aws_config:
        raise OperatorIdentityError(
            "config.aws:assumeRole: pulumi-aws 7 ignores it, so `pulumi up` would not assume "
            "that role; write it as aws:assumeRoles: [{roleArn: ...}]"
        )
    profile = aws_config.get("profile")
    if profile is not None and (not isinstance(profile, str) or not profile.strip()):
        raise OperatorIdentityError("config.aws:profile: must be the name of an AWS CLI profile")
    roles = aws_config.get("assumeRoles") or []
    if not isinstance(roles, list) or not all(isinstance(r, dict) for r in roles):
        raise OperatorIdentityError(
            "config.aws:assumeRoles: must be a list of roles, each {roleArn: arn:aws:iam::...}"
        )
    if len(roles) > 1:
        raise OperatorIdentityError(
            f"config.aws:assumeRoles: a chain of {len(roles)} roles; {_USE_A_PROFILE}"
        )
    role_arn = None
    if roles:
        role = roles[0]
        extra = sorted(set(role) - _GET_TOKEN_ROLE_KEYS)
        if extra:
            raise OperatorIdentityError(
                f"config.aws:assumeRoles[0]: {', '.join(extra)} cannot be passed on; {_USE_A_PROFILE}"
            )
        role_arn = role.get("roleArn")
        if not isinstance(role_arn, str) or not role_arn.startswith("arn:"):
            raise OperatorIdentityError(
                f"config.aws:assumeRoles[0].roleArn: an IAM role ARN is needed, got {role_arn!r}"
            )
    return AwsIdentity(profile=profile.strip() if profile else None, role_arn=role_arn)


def eks_kubeconfig(
    *,
    name: str,
    endpoint: str,
    certificate_authority: str,
    region: str,
    identity: AwsIdentity | None = None,
) -> str:
    """A kubeconfig for one EKS cluster, authenticating as `identity` (default: the caller's)."""
    args = ["eks", "get-token", "--cluster-name", name, "--region", region]
    args += (identity or AwsIdentity()).get_token_args()
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": endpoint,
                    "certificate-authority-data": certificate_authority,
                },
            }
        ],
        "users": [
            {
                "name": name,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": args,
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return yaml.safe_dump(document, sort_keys=True)
