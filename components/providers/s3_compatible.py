"""The S3-compatible store of the kubernetes, hpc, openstack and ovh kinds: buckets on any
S3 endpoint (Ceph RGW, OVHcloud, MinIO...), made through the AWS provider pointed at it."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.providers.object_lock import lock_bucket
from fedeploy.config.provisioned import ProvisionedStore
from fedeploy.config.storage import S3CompatibleStorage
from fedeploy.naming import bucket_name
from fedeploy.storage_rules import lifecycle_rules


class S3CompatibleObjectStore(pulumi.ComponentResource):
    """The buckets a site needs on an S3-compatible endpoint, reached with its keys: those of
    the stack file, or `credentials` (access key id, secret key) the site created itself."""

    endpoint: pulumi.Output[str]
    region: pulumi.Output[str]
    buckets: pulumi.Output[dict[str, str]]
    bucket_arns: pulumi.Output[dict[str, str]]
    kms_key_arn: pulumi.Output[str | None]
    auth: pulumi.Output[str]
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        site: str,
        config: S3CompatibleStorage | ProvisionedStore,
        tags: dict[str, str],
        credentials: tuple[pulumi.Output[str], pulumi.Output[str]] | None = None,
        object_locks: dict[str, tuple[str, int]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:storage:ObjectStore", name, None, opts)
        if credentials is not None:
            self.access_key_id = pulumi.Output.secret(credentials[0])
            self.secret_access_key = pulumi.Output.secret(credentials[1])
        else:
            assert isinstance(config, S3CompatibleStorage)
            self.access_key_id = config.access_key_id.output()
            self.secret_access_key = config.secret_access_key.output()
        endpoint = str(config.endpoint).rstrip("/")
        provider = aws.Provider(
            f"{name}-s3",
            region=config.region,
            access_key=self.access_key_id,
            secret_key=self.secret_access_key,
            skip_credentials_validation=True,
            skip_region_validation=True,
            skip_requesting_account_id=True,
            skip_metadata_api_check=True,
            s3_use_path_style=config.path_style,
            endpoints=[{"s3": endpoint}],
            opts=pulumi.ResourceOptions(parent=self),
        )
        on_store = pulumi.ResourceOptions(parent=self, provider=provider)
        # The provider and the buckets, for resources a site adds on them (bucket policies).
        self.provider = provider
        self.bucket_resources: dict[str, aws.s3.Bucket] = {}
        physical: dict[str, str] = {}
        for logical, spec in sorted(config.buckets.items()):
            physical[logical] = bucket_name(config.bucket_prefix, site, logical)
            lock = (object_locks or {}).get(logical)
            bucket = self.bucket_resources[logical] = aws.s3.Bucket(
                f"{name}-{logical}",
                bucket=physical[logical],
                # Ceph RGW and OVHcloud lock only a bucket created so (object_lock.py).
                **({"object_lock_enabled": True} if lock is not None else {}),
                opts=pulumi.ResourceOptions.merge(
                    on_store, pulumi.ResourceOptions(retain_on_delete=True)
                ),
            )
            versioning = aws.s3.BucketVersioning(
                f"{name}-{logical}-versioning",
                bucket=bucket.id,
                versioning_configuration={"status": "Enabled" if spec.versioning else "Suspended"},
                opts=on_store,
            )
            if lock is not None:
                lock_bucket(
                    f"{name}-{logical}-object-lock",
                    bucket.id,
                    lock,
                    pulumi.ResourceOptions.merge(
                        on_store, pulumi.ResourceOptions(depends_on=[versioning])
                    ),
                )
            if config.encryption == "aes256":
                aws.s3.BucketServerSideEncryptionConfiguration(
                    f"{name}-{logical}-encryption",
                    bucket=bucket.id,
                    rules=[
                        {"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}
                    ],
                    opts=on_store,
                )
            aws.s3.BucketLifecycleConfiguration(
                f"{name}-{logical}-lifecycle",
                bucket=bucket.id,
                rules=lifecycle_rules(spec.lifecycle, versioned=spec.versioning, tiering=False),
                opts=pulumi.ResourceOptions.merge(
                    on_store, pulumi.ResourceOptions(depends_on=[versioning])
                ),
            )
        self.endpoint = pulumi.Output.from_input(endpoint)
        self.region = pulumi.Output.from_input(config.region)
        self.buckets = pulumi.Output.from_input(physical)
        self.bucket_arns = pulumi.Output.from_input(
            {k: f"arn:aws:s3:::{v}" for k, v in physical.items()}
        )
        self.kms_key_arn = pulumi.Output.from_input(None)
        self.auth = pulumi.Output.from_input("static-keys")
        self.register_outputs({"endpoint": self.endpoint, "buckets": self.buckets})
