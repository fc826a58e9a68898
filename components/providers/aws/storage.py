"""The aws kind's object storage: S3 buckets, their KMS key, and replication to other sites."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.providers.object_lock import lock_bucket
from fedeploy.config.storage import AwsStorage, Bucket
from fedeploy.naming import bucket_name
from fedeploy.storage_rules import lifecycle_rules, tls_only_policy


class AwsObjectStore(pulumi.ComponentResource):
    """S3 buckets: versioned, encrypted with the site's KMS key (or AES256), never public,
    TLS-only, with lifecycle rules and optional replication to another site's bucket."""

    endpoint: pulumi.Output[str]
    region: pulumi.Output[str]
    buckets: pulumi.Output[dict[str, str]]
    bucket_arns: pulumi.Output[dict[str, str]]
    kms_key_arn: pulumi.Output[str | None]
    auth: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        site: str,
        region: str,
        config: AwsStorage,
        tags: dict[str, str],
        replication_targets: dict[str, pulumi.Output[Any]] | None = None,
        object_locks: dict[str, tuple[str, int]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:storage:ObjectStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        keep = pulumi.ResourceOptions(parent=self, retain_on_delete=not config.force_destroy)
        self._config = config
        self._tags = tags

        key = None
        if config.encryption == "kms":
            key = aws.kms.Key(
                f"{name}-key",
                description=f"fedeploy {site}: object storage encryption",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                tags=tags,
                opts=keep,
            )
            aws.kms.Alias(
                f"{name}-key-alias",
                name=f"alias/fedeploy-{site}-storage",
                target_key_id=key.key_id,
                opts=child,
            )

        physical: dict[str, str] = {}
        arns: dict[str, pulumi.Output[str]] = {}
        versionings: dict[str, aws.s3.BucketVersioning] = {}
        for logical, spec in sorted(config.buckets.items()):
            physical[logical] = bucket_name(config.bucket_prefix, site, logical)
            bucket, versioning = self._bucket(
                f"{name}-{logical}", physical[logical], spec, key, keep, child
            )
            arns[logical] = bucket.arn
            versionings[logical] = versioning
            lock = (object_locks or {}).get(logical)
            if lock is not None:
                # S3 locks an existing bucket once it is versioned (object_lock.py).
                lock_bucket(
                    f"{name}-{logical}-object-lock",
                    bucket.id,
                    lock,
                    pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
                )

        for logical, spec in sorted(config.buckets.items()):
            if spec.replicate_to is None:
                continue
            target = (replication_targets or {})[spec.replicate_to.site]
            self._replicate(
                f"{name}-{logical}-replication",
                source_bucket=physical[logical],
                source_arn=arns[logical],
                source_key=key,
                target=target,
                spec=spec,
                depends_on=[versionings[logical]],
                child=child,
            )

        self.endpoint = pulumi.Output.from_input(f"https://s3.{region}.amazonaws.com")
        self.region = pulumi.Output.from_input(region)
        self.buckets = pulumi.Output.from_input(physical)
        self.bucket_arns = pulumi.Output.all(**arns)
        self.kms_key_arn = key.arn if key is not None else pulumi.Output.from_input(None)
        self.auth = pulumi.Output.from_input("iam-role")
        self.register_outputs(
            {"endpoint": self.endpoint, "buckets": self.buckets, "bucket_arns": self.bucket_arns}
        )

    def _bucket(
        self,
        name: str,
        physical: str,
        spec: Bucket,
        key: aws.kms.Key | None,
        keep: pulumi.ResourceOptions,
        child: pulumi.ResourceOptions,
    ) -> tuple[aws.s3.Bucket, aws.s3.BucketVersioning]:
        bucket = aws.s3.Bucket(
            name,
            bucket=physical,
            force_destroy=self._config.force_destroy,
            tags=self._tags,
            opts=keep,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled" if spec.versioning else "Suspended"},
            opts=child,
        )
        default: dict[str, Any] = (
            {"sse_algorithm": "aws:kms", "kms_master_key_id": key.arn}
            if key is not None
            else {"sse_algorithm": "AES256"}
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": default,
                    "bucket_key_enabled": key is not None,
                }
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=pulumi.Output.json_dumps(tls_only_policy(bucket.arn)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=lifecycle_rules(spec.lifecycle, versioned=spec.versioning),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        return bucket, versioning

    def _replicate(
        self,
        name: str,
        *,
        source_bucket: str,
        source_arn: pulumi.Output[str],
        source_key: aws.kms.Key | None,
        target: pulumi.Output[Any],
        spec: Bucket,
        depends_on: list[pulumi.Resource],
        child: pulumi.ResourceOptions,
    ) -> None:
        assert spec.replicate_to is not None
        wanted = spec.replicate_to.bucket
        target_arn = target.apply(lambda storage: storage["bucket_arns"][wanted])
        target_key = target.apply(lambda storage: storage.get("kms_key_arn"))
        role = aws.iam.Role(
            f"{name}-role",
            description=f"S3 replication of {source_bucket}",
            assume_role_policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            tags=self._tags,
            opts=child,
        )
        statements: list[Any] = [
            {
                "Effect": "Allow",
                "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                "Resource": [source_arn],
            },
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetObjectVersionForReplication",
                    "s3:GetObjectVersionAcl",
                    "s3:GetObjectVersionTagging",
                ],
                "Resource": [pulumi.Output.concat(source_arn, "/*")],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                "Resource": [pulumi.Output.concat(target_arn, "/*")],
            },
        ]
        if source_key is not None:
            statements.append(
                {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [source_key.arn]}
            )
        statements.append(
            target_key.apply(
                lambda arn: {
                    "Effect": "Allow",
                    "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
                    "Resource": [arn] if arn else ["arn:aws:kms:*:*:key/none"],
                }
            )
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements}),
            opts=child,
        )
        destination: dict[str, Any] = {
            "bucket": target_arn,
            "storage_class": spec.replicate_to.storage_class,
        }
        destination["encryption_configuration"] = target_key.apply(
            lambda arn: {"replica_kms_key_id": arn} if arn else None
        )
        aws.s3.BucketReplicationConfig(
            name,
            role=role.arn,
            bucket=source_bucket,
            rules=[
                {
                    "id": f"to-{spec.replicate_to.site}-{wanted}",
                    "status": "Enabled",
                    "filter": {},
                    "delete_marker_replication": {"status": "Enabled"},
                    "source_selection_criteria": {
                        "sse_kms_encrypted_objects": {"status": "Enabled"}
                    },
                    "destination": destination,
                }
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
