"""The S3 client the service uses, built from its settings; credentials come from boto3's chain."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from fedeploy_inference.settings import InferenceSettings


def s3_client(settings: InferenceSettings) -> Any:
    """An S3 client for the site's store: AWS where no endpoint is set, else that endpoint.

    Credentials are never settings of this service: boto3 finds them (IAM role for the service
    account in a pod, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` elsewhere).
    """
    # S3-compatible stores (SeaweedFS, Ceph, MinIO) behind a plain endpoint need path-style
    # addressing; AWS itself keeps boto3's default.
    addressing = {"addressing_style": "path"} if settings.s3_endpoint_url else {}
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region,
        config=Config(
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=16,
            s3=addressing,
        ),
    )
