"""The `site.storage` section: buckets on AWS S3 or on an S3-compatible store."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator
from pydantic.json_schema import WithJsonSchema

from fedeploy.config.base import HOST_PATTERN, Name, Secret, StrictModel, Url

BucketName = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$",
        description="Logical bucket name: lower-case letters, digits and '-', 2 to 16 characters.",
    ),
]


BucketPrefix = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$",
        description="First part of every physical bucket name (<prefix>-<site>-<bucket>): S3 names "
        "are global, so use your organisation's own: 3 to 20 lower-case letters, digits and '-', "
        "starting with a letter.",
    ),
]


# A region name as botocore takes it (botocore.utils.validate_region_name: a DNS label, not
# all digits): every client of the store is boto3 (the services, the asset endpoint, barman-cloud
# for the catalog's backups and drill), and each refuses any other name before its first request
# (InvalidRegionError), so `my_region` or `eu.west` would only fail in the pods. The charts'
# values.schema.json take the same (charts/*/values.schema.json, storage.region).
S3_REGION_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$"
S3_REGION_WORDS = (
    "letters (either case), digits and '-', 1 to 32 characters, starting and ending with a "
    "letter or digit, not digits only (e.g. RegionOne, GRA, waw3-1): botocore refuses any other"
)


def _s3_region(value: str) -> str:
    if not re.fullmatch(S3_REGION_PATTERN, value) or value.isdigit():
        raise ValueError(f"given {value!r}; allowed: {S3_REGION_WORDS}")
    return value


S3Region = Annotated[
    str,
    AfterValidator(_s3_region),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": 32, "pattern": S3_REGION_PATTERN}
    ),
]
"""The region an S3-compatible store signs requests for (see S3_REGION_PATTERN)."""

# One path segment of a store's URL (a store behind a reverse proxy at https://host/s3):
# unreserved characters only, as botocore prepends the path to every request's.
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
STORE_ENDPOINT_WORDS = (
    "https://host[:port][/path], the host a DNS name or an IPv4 address, the port 1 to 65535, "
    "the path (optional) of segments of letters, digits, '.', '_', '~' and '-'; no query or "
    "fragment, no IPv6 address"
)


def store_endpoint_problem(url: str) -> str | None:
    """Why `url` (an http(s) URL as pydantic's HttpUrl normalised it) cannot be the endpoint of
    a site's S3 store; None when every client of it takes it.

    The clients are botocore (the services, the asset endpoint, barman-cloud: it prepends a path
    to every request's, and presigns with it), the AWS provider that makes the buckets, and the
    charts' NetworkPolicies, which admit the store by the endpoint's port over IPv4 ranges
    (0.0.0.0/0 or backup.store_cidrs): an IPv6 literal would be dropped by them (and read as
    port "1]" when it names none), so a store on IPv6 is named by its DNS name."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "has a query or fragment (? or #); an S3 endpoint has neither"
    host = parts.hostname or ""
    if parts.netloc.startswith("["):
        return (
            "names an IPv6 address; give the store's DNS name (the services' NetworkPolicies "
            "admit the store over IPv4 only)"
        )
    if host.endswith(".") and re.fullmatch(HOST_PATTERN, host[:-1]):
        return (
            f"the host {host!r} ends in a dot: a trailing dot (an absolute DNS name) is not "
            f"taken; write the name without it, {host[:-1]!r}"
        )
    if not re.fullmatch(HOST_PATTERN, host):
        return (
            f"the host {host!r} is not a DNS name (letters, digits, '-' and '.', starting and "
            "ending with a letter or digit) or IPv4 address"
        )
    if host.rsplit(".", 1)[-1].isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"the host {host!r} is neither a DNS name nor an IPv4 address"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if ":" in parts.netloc and not (port and 1 <= port <= 65535):
        return f"the port {parts.netloc.rsplit(':', 1)[-1]!r} is not a number from 1 to 65535"
    segments = parts.path.strip("/").split("/") if parts.path.strip("/") else []
    if "//" in parts.path or not all(_PATH_SEGMENT.fullmatch(s) for s in segments):
        return (
            f"the path {parts.path!r} is not segments of letters, digits, '.', '_', '~' and '-' "
            "(no empty segment, no percent-encoding)"
        )
    return None


def _store_endpoint(value: Url) -> Url:
    if problem := store_endpoint_problem(str(value)):
        raise ValueError(f"given {str(value)!r}: {problem}; allowed: {STORE_ENDPOINT_WORDS}")
    return value


StoreEndpoint = Annotated[Url, AfterValidator(_store_endpoint)]
"""The URL of an S3-compatible store, as every client of it takes it (store_endpoint_problem)."""


class Lifecycle(StrictModel):
    """When objects move to colder storage or expire."""

    expire_after_days: int | None = Field(
        None, ge=1, le=36500, description="Delete current objects this many days after creation."
    )
    noncurrent_expire_after_days: int | None = Field(
        30,
        ge=1,
        le=36500,
        description="Delete replaced (noncurrent) versions after this many days.",
    )
    transition_to_infrequent_access_after_days: int | None = Field(
        None,
        ge=30,
        le=36500,
        description="Move objects to STANDARD_IA after this many days (AWS only; at least 30).",
    )
    abort_incomplete_multipart_after_days: int = Field(
        7, ge=1, le=365, description="Abort multipart uploads left incomplete after this many days."
    )

    @model_validator(mode="after")
    def _transition_before_expiry(self) -> Lifecycle:
        t, e = self.transition_to_infrequent_access_after_days, self.expire_after_days
        if t is not None and e is not None and t >= e:
            raise ValueError(
                f"transition_to_infrequent_access_after_days ({t}) must be below "
                f"expire_after_days ({e})"
            )
        return self


class Replication(StrictModel):
    """Replicate this bucket to a bucket of another `aws` site of the federation."""

    site: Name = Field(description="The target site: the name of another stack in `stacks/`.")
    bucket: BucketName = Field(description="The logical name of the target bucket at that site.")
    storage_class: Literal["STANDARD", "STANDARD_IA", "INTELLIGENT_TIERING", "GLACIER_IR"] = Field(
        "STANDARD", description="Storage class of the replicas."
    )


class Bucket(StrictModel):
    """One logical bucket; its physical name derives from the site and this name."""

    versioning: bool = Field(True, description="Keep every version of every object.")
    lifecycle: Lifecycle = Field(default_factory=Lifecycle, description="Expiry and tiering rules.")
    replicate_to: Replication | None = Field(
        None, description="Replicate every new object to a bucket of another site (aws only)."
    )

    @model_validator(mode="after")
    def _replication_needs_versioning(self) -> Bucket:
        if self.replicate_to is not None and not self.versioning:
            raise ValueError("replicate_to needs versioning: true (S3 replicates versions)")
        return self


Buckets = Annotated[
    dict[BucketName, Bucket],
    Field(min_length=1, description="Logical bucket names mapped to their settings."),
]


# The workloads that read or write the store with static keys, by the name of their identity
# (fedeploy.values: the asset endpoint, the two services, the catalog's backups and drill).
StorageWorkload = Literal["assets", "ingestion", "inference", "catalog-backup", "catalog-drill"]

# A Kubernetes Secret's name (a DNS subdomain of lower-case letters, digits and '-').
SecretName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=253)]


class AwsStorage(StrictModel):
    """S3 buckets in the site's region."""

    encryption: Literal["kms", "aes256"] = Field(
        "kms", description="Server-side encryption: a customer-managed KMS key per site, or AES256."
    )
    bucket_prefix: BucketPrefix = "fedeploy"
    buckets: Buckets
    force_destroy: bool = Field(
        False, description="Let `pulumi destroy` delete non-empty buckets (never in production)."
    )


class S3CompatibleStorage(StrictModel):
    """An existing S3-compatible endpoint (a European cloud's object store, an HPC centre's)."""

    endpoint: StoreEndpoint = Field(description=f"The S3 endpoint URL: {STORE_ENDPOINT_WORDS}.")
    region: S3Region = Field(
        "us-east-1",
        description=f"Region name the store expects: {S3_REGION_WORDS}.",
    )
    access_key_id: Secret = Field(description="Access key id of the federation's account (secret).")
    secret_access_key: Secret = Field(description="Secret access key (secret).")
    path_style: bool = Field(True, description="Address buckets by path, not by virtual host.")
    encryption: Literal["aes256", "provider_managed"] = Field(
        "aes256",
        description="aes256: request SSE-S3 on every bucket; provider_managed: the store "
        "encrypts at rest itself and takes no per-bucket setting.",
    )
    bucket_prefix: BucketPrefix = "fedeploy"
    buckets: Buckets
    workload_credentials: dict[StorageWorkload, SecretName] = Field(
        default_factory=dict,
        description=(
            "Existing Kubernetes Secrets in the services' namespace, by workload (assets, "
            "ingestion, inference, catalog-backup, catalog-drill), each with a key `credentials` "
            "holding an AWS shared credentials file ([default] profile) of a key the store's "
            "owner limited to that workload: the workload mounts it instead of the site's keys "
            "(fedeploy-storage). The store is not fedeploy's, so it cannot make such keys; a "
            "workload left out keeps the site's keys, and the plan's storage-identity advisory "
            "names it. Start with assets: the asset endpoint faces the internet and needs only "
            "to list and read (docs/configuration.md)."
        ),
    )

    @model_validator(mode="after")
    def _https_only(self) -> S3CompatibleStorage:
        check_store_off_aws(self.endpoint, self.buckets)
        return self


def check_store_off_aws(endpoint: Url, buckets: dict[str, Bucket]) -> None:
    """What an S3 store of a site that is not aws must be: an https `endpoint`, and no bucket
    that replicates (ValueError naming the scheme or the bucket otherwise)."""
    if endpoint.scheme != "https":
        raise ValueError(f"endpoint must use https, got {endpoint.scheme}://")
    for name, bucket in buckets.items():
        if bucket.replicate_to is not None:
            raise ValueError(
                f"buckets.{name}.replicate_to: replication is only available on aws sites"
            )
