"""The S3 client the service uses, built from its settings; credentials come from boto3's chain."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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


# STS GetSessionToken's bounds in seconds (AWS; Ceph RGW keeps them).
SESSION_MIN_SECONDS = 900
SESSION_MAX_SECONDS = 129_600


def job_storage_credentials(settings: InferenceSettings, lifetime_seconds: int) -> dict[str, str]:
    """Short-lived credentials for a process elsewhere (a SLURM job, which cannot read this
    pod's files), as the variables its own chain reads: `AWS_ACCESS_KEY_ID`,
    `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. Never the long-lived keys found here.

    Temporary credentials found here (a role's session, e.g. IAM roles for service accounts)
    are passed as they are: they expire on their own. Long-lived keys (the shared credentials
    file of a site with static keys) are exchanged for a session with STS `GetSessionToken` at
    the store (`settings.s3_endpoint_url`, where Ceph RGW serves STS; AWS STS without one),
    lasting `lifetime_seconds` within STS's bounds (15 minutes to 36 hours).

    Raises ValueError when the chain finds no credentials, or when the store issues no session
    (it has no STS: SeaweedFS, MinIO without it, Swift): the message names the store and the
    answer, never a key."""
    found = boto3.Session().get_credentials()
    if found is None:
        raise ValueError(
            "no storage credentials found by boto3's default chain (AWS_SHARED_CREDENTIALS_FILE, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity, instance role)"
        )
    frozen = found.get_frozen_credentials()
    if frozen.token:
        return {
            "AWS_ACCESS_KEY_ID": frozen.access_key,
            "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
            "AWS_SESSION_TOKEN": frozen.token,
        }
    duration = min(max(lifetime_seconds, SESSION_MIN_SECONDS), SESSION_MAX_SECONDS)
    sts = boto3.client(
        "sts",
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region,
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )
    try:
        with _no_response_bodies_logged():
            session = sts.get_session_token(DurationSeconds=duration)["Credentials"]
    except (ClientError, BotoCoreError) as error:
        where = settings.s3_endpoint_url or f"AWS STS in {settings.s3_region}"
        raise ValueError(
            f"--pass-storage-credentials: the store ({where}) issued no short-lived credentials "
            f"(STS GetSessionToken: {_reason(error)}); a SLURM job is never given the site's "
            "long-lived storage keys. Run the job on a site whose store serves STS (AWS, Ceph "
            "RGW with STS enabled) or without --pass-storage-credentials"
        ) from None
    return {
        "AWS_ACCESS_KEY_ID": session["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": session["SecretAccessKey"],
        "AWS_SESSION_TOKEN": session["SessionToken"],
    }


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code") or "error"
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{code}, HTTP {status}" if status else str(code)
    return type(error).__name__


class _DropResponseBodies(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Response body")


@contextmanager
def _no_response_bodies_logged() -> Iterator[None]:
    """botocore logs every response body at DEBUG (`--log-level DEBUG`): STS's holds the
    session's secret key and token, which must not reach the job's logs."""
    logger = logging.getLogger("botocore.parsers")
    drop = _DropResponseBodies()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
