"""The S3 client the service uses, built from its settings; credentials come from boto3's chain."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from fedeploy_inference.settings import InferenceSettings


def s3_client(settings: InferenceSettings) -> Any:
    """An S3 client for the site's store: AWS where no endpoint is set, else that endpoint.

    Credentials are never settings of this service: boto3's default chain finds them (IAM role
    for the service account in a pod on aws, the shared credentials file the chart mounts and
    names in `AWS_SHARED_CREDENTIALS_FILE` on sites with static keys, the standard variables
    elsewhere).
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


def storage_credentials_environment() -> dict[str, str]:
    """The credentials boto3's default chain resolves here, as the variables a process elsewhere
    (a SLURM job, which cannot read this pod's files) gives to its own chain:
    `{"AWS_ACCESS_KEY_ID": ..., "AWS_SECRET_ACCESS_KEY": ...}`, plus `AWS_SESSION_TOKEN` for
    temporary credentials.

    Raises ValueError when the chain finds none (the message names where it looked, never a key).
    """
    found = boto3.Session().get_credentials()
    if found is None:
        raise ValueError(
            "no storage credentials found by boto3's default chain (AWS_SHARED_CREDENTIALS_FILE, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity, instance role)"
        )
    frozen = found.get_frozen_credentials()
    env = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        env["AWS_SESSION_TOKEN"] = frozen.token
    return env
