"""Bucket rules as plain data: lifecycle rules and the TLS-only bucket policy."""

from __future__ import annotations

from typing import Any

from fedeploy.config.storage import Lifecycle

# Where the ingestion service keeps the record of each unfinished multipart upload
# (services/ingestion's object_store.UPLOAD_RECORDS; a test checks they agree).
UPLOAD_RECORDS = ".fedeploy-uploads/"


def lifecycle_rules(
    lifecycle: Lifecycle, *, versioned: bool, tiering: bool = True
) -> list[dict[str, Any]]:
    """The S3 lifecycle rules of a bucket, one rule per concern so each can be read in the console."""
    rules: list[dict[str, Any]] = [
        {
            "id": "abort-incomplete-uploads",
            "status": "Enabled",
            "filter": {},
            "abort_incomplete_multipart_upload": {
                "days_after_initiation": lifecycle.abort_incomplete_multipart_after_days
            },
        },
        {
            # The ingestion service's records of its unfinished uploads (object_store's
            # UPLOAD_RECORDS): one whose upload the rule above aborted would stay forever.
            "id": "expire-upload-records",
            "status": "Enabled",
            "filter": {"prefix": UPLOAD_RECORDS},
            "expiration": {"days": lifecycle.abort_incomplete_multipart_after_days + 1},
        },
    ]
    if lifecycle.expire_after_days is not None:
        rules.append(
            {
                "id": "expire-current",
                "status": "Enabled",
                "filter": {},
                "expiration": {"days": lifecycle.expire_after_days},
            }
        )
    if versioned and lifecycle.noncurrent_expire_after_days is not None:
        rules.append(
            {
                "id": "expire-noncurrent",
                "status": "Enabled",
                "filter": {},
                "noncurrent_version_expiration": {
                    "noncurrent_days": lifecycle.noncurrent_expire_after_days
                },
            }
        )
    if tiering and lifecycle.transition_to_infrequent_access_after_days is not None:
        rules.append(
            {
                "id": "to-infrequent-access",
                "status": "Enabled",
                "filter": {},
                "transitions": [
                    {
                        "days": lifecycle.transition_to_infrequent_access_after_days,
                        "storage_class": "STANDARD_IA",
                    }
                ],
            }
        )
    return rules


def tls_only_policy(bucket_arn: Any) -> dict[str, Any]:
    """Deny every request that does not come over TLS 1.2 or newer."""
    import pulumi

    objects = pulumi.Output.concat(bucket_arn, "/*")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, objects],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "DenyOldTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, objects],
                "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            },
        ],
    }
