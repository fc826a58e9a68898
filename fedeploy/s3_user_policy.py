"""The S3 policy of a site's own object-storage user (OVHcloud): its buckets and nothing else."""

from __future__ import annotations

from typing import Any

# What fedeploy does to its buckets (create, versioning, lifecycle, encryption) and what the
# services do to objects in them; nothing on any other bucket of the project.
_BUCKET_ACTIONS = (
    "s3:CreateBucket",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
    "s3:PutBucketVersioning",
    "s3:GetLifecycleConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:GetEncryptionConfiguration",
    "s3:PutEncryptionConfiguration",
)
_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)


def site_user_policy(buckets: list[str]) -> dict[str, Any]:
    """An S3 policy document (a dict) scoped to exactly these physical bucket names; raises
    ValueError on an empty list (a policy for nothing)."""
    if not buckets:
        raise ValueError("site_user_policy: no buckets")
    arns = [f"arn:aws:s3:::{b}" for b in sorted(buckets)]
    return {
        "Statement": [
            {
                "Sid": "Buckets",
                "Effect": "Allow",
                "Action": list(_BUCKET_ACTIONS),
                "Resource": arns,
            },
            {
                "Sid": "Objects",
                "Effect": "Allow",
                "Action": list(_OBJECT_ACTIONS),
                "Resource": [f"{arn}/*" for arn in arns],
            },
        ]
    }
