"""The `site.storage` section: buckets on AWS S3 or on an S3-compatible store."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fedeploy.config.base import S3_REGION_PATTERN, Name, Secret, StrictModel, Url

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

    endpoint: Url = Field(description="The S3 endpoint URL, https://...")
    region: str = Field(
        "us-east-1",
        pattern=S3_REGION_PATTERN,
        description="Region name the store expects (letters, digits, '-', '_', '.'; up to 32).",
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
