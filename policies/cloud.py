"""Rules over the resources a stack registers: storage, keys, network, clusters, secrets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from policies.findings import Finding, Rule, Subject
from policies.providers import provider_rules

BUCKET = "aws:s3/bucket:Bucket"
TAGGABLE = {
    BUCKET,
    "aws:kms/key:Key",
    "aws:iam/role:Role",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/instance:Instance",
    "aws:eks/cluster:Cluster",
    "aws:eks/nodeGroup:NodeGroup",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:rds/instance:Instance",
}
REQUIRED_TAGS = ("fedeploy:site", "fedeploy:managed-by")
SENSITIVE = re.compile(
    r"(password|secret|token|kubeconfig|privatekey|private_key|sshkey|jwt|stringdata|userdata)$",
    re.I,
)
# Names that point at a secret rather than hold one.
REFERENCE = re.compile(r"(existing|credentials)secret$|secret_?name$|secretref$", re.I)
OPEN = {"0.0.0.0/0", "::/0"}


def _on_aws(subject: Subject) -> bool:
    """True for resources on real AWS, false on an S3-compatible store reached through endpoints."""
    return not subject.provider_props.get("endpoints")


def _for_bucket(subjects: list[Subject], typ: str) -> dict[str, Subject]:
    return {str(s.props.get("bucket")): s for s in subjects if s.type == typ}


def buckets_encrypted(subjects: list[Subject]) -> Iterable[Finding]:
    configs = _for_bucket(
        subjects,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )
    for bucket in (s for s in subjects if s.type == BUCKET):
        name = str(bucket.props.get("bucket"))
        config = configs.get(name)
        rules = (config.props.get("rules") if config else None) or []
        algorithms = {
            (r.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for r in rules
        }
        if algorithms & {"aws:kms", "aws:kms:dsse", "AES256"}:
            continue
        if _on_aws(bucket):
            yield Finding(
                "s3-encrypted", bucket.name, f"bucket {name} has no server-side encryption"
            )
        else:
            yield Finding(
                "s3-encrypted",
                bucket.name,
                f"bucket {name} relies on the store's own encryption at rest (provider_managed): "
                "confirm it with the provider",
                "advisory",
            )


def buckets_not_public(subjects: list[Subject]) -> Iterable[Finding]:
    blocks = _for_bucket(subjects, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in (s for s in subjects if s.type == BUCKET and _on_aws(s)):
        name = str(bucket.props.get("bucket"))
        block = blocks.get(name)
        if block is None or not all(block.props.get(k) is True for k in keys):
            yield Finding(
                "s3-no-public-access",
                bucket.name,
                f"bucket {name} does not block all public access",
            )
    for s in subjects:
        if s.type == BUCKET and str(s.props.get("acl", "private")).startswith("public"):
            yield Finding("s3-no-public-access", s.name, f"bucket ACL is {s.props['acl']}")


def buckets_tls_only(subjects: list[Subject]) -> Iterable[Finding]:
    policies = _for_bucket(subjects, "aws:s3/bucketPolicy:BucketPolicy")
    for bucket in (s for s in subjects if s.type == BUCKET and _on_aws(s)):
        name = str(bucket.props.get("bucket"))
        policy = policies.get(name)
        if policy is None or not _denies_plain_http(policy.props.get("policy")):
            yield Finding(
                "s3-tls-only",
                bucket.name,
                f"bucket {name} has no policy denying aws:SecureTransport=false",
            )


def _denies_plain_http(document: Any) -> bool:
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError:
        return False
    for statement in (parsed or {}).get("Statement", []):
        condition = (statement.get("Condition") or {}).get("Bool") or {}
        if (
            statement.get("Effect") == "Deny"
            and str(condition.get("aws:SecureTransport")).lower() == "false"
        ):
            return True
    return False


def kms_rotation(subjects: list[Subject]) -> Iterable[Finding]:
    for key in (s for s in subjects if s.type == "aws:kms/key:Key"):
        if key.props.get("enableKeyRotation") is not True:
            yield Finding("kms-rotation", key.name, "KMS key without automatic rotation")


def tagged(subjects: list[Subject]) -> Iterable[Finding]:
    for s in subjects:
        if s.type in TAGGABLE and _on_aws(s):
            tags = s.props.get("tags") or {}
            missing = [t for t in REQUIRED_TAGS if t not in tags]
            if missing:
                yield Finding("tags", s.name, f"{s.type} lacks tags {', '.join(missing)}")
    for s in subjects:
        if s.type.startswith("kubernetes:") and "metadata" in s.props:
            labels = (s.props.get("metadata") or {}).get("labels") or {}
            if "app.kubernetes.io/part-of" not in labels:
                yield Finding("labels", s.name, f"{s.type} lacks label app.kubernetes.io/part-of")


def no_plaintext_secrets(subjects: list[Subject]) -> Iterable[Finding]:
    """An input whose name says it holds a secret must be a Pulumi secret (offline plan only:
    `pulumi preview` shows policies secrets decrypted, so only the offline plan can tell)."""
    for s in subjects:
        for path, value in _walk(s.props):
            leaf = path.rsplit(".", 1)[-1].split("[")[0]
            if (
                SENSITIVE.search(leaf)
                and not REFERENCE.search(leaf)
                and value not in (None, "", [], {})
                and not _covered(path, s.secret_paths)
            ):
                yield Finding(
                    "no-plaintext-secrets", s.name, f"input {path} holds a secret in plain text"
                )
                break


def _walk(value: Any, path: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            yield sub, item
            if not SENSITIVE.search(str(key)):
                yield from _walk(item, sub)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _covered(path: str, secret_paths: tuple[str, ...]) -> bool:
    return any(
        path == p or path.startswith(p + ".") or path.startswith(p + "[") for p in secret_paths
    )


def network_closed(subjects: list[Subject]) -> Iterable[Finding]:
    for s in subjects:
        if s.type == "aws:ec2/securityGroup:SecurityGroup":
            for rule in s.props.get("ingress") or []:
                if OPEN & set(rule.get("cidrBlocks") or []) | OPEN & set(
                    rule.get("ipv6CidrBlocks") or []
                ):
                    yield Finding(
                        "no-open-ingress",
                        s.name,
                        f"ingress from the internet on port {rule.get('fromPort')}",
                    )
        if s.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule" and (
            s.props.get("cidrIpv4") in OPEN or s.props.get("cidrIpv6") in OPEN
        ):
            yield Finding("no-open-ingress", s.name, "ingress from the internet")
        if s.type == "aws:eks/cluster:Cluster":
            vpc = s.props.get("vpcConfig") or {}
            if vpc.get("endpointPublicAccess") and (
                not vpc.get("publicAccessCidrs") or OPEN & set(vpc.get("publicAccessCidrs") or [])
            ):
                yield Finding(
                    "no-open-ingress", s.name, "EKS API endpoint open to the whole internet"
                )


def encrypted_at_rest(subjects: list[Subject]) -> Iterable[Finding]:
    for s in subjects:
        if s.type == "aws:eks/cluster:Cluster" and not s.props.get("encryptionConfig"):
            yield Finding(
                "encrypted-at-rest", s.name, "EKS secrets are not envelope-encrypted with KMS"
            )
        if s.type == "aws:rds/instance:Instance":
            if s.props.get("storageEncrypted") is not True:
                yield Finding("encrypted-at-rest", s.name, "RDS storage is not encrypted")
            if s.props.get("publiclyAccessible") is True:
                yield Finding("no-open-ingress", s.name, "RDS instance is publicly accessible")
        if s.type == "aws:ec2/instance:Instance":
            if (s.props.get("rootBlockDevice") or {}).get("encrypted") is not True:
                yield Finding("encrypted-at-rest", s.name, "instance root volume is not encrypted")
            if (s.props.get("metadataOptions") or {}).get("httpTokens") != "required":
                yield Finding("imdsv2", s.name, "instance does not require IMDSv2")
        if s.type == "aws:eks/nodeGroup:NodeGroup" and not s.props.get("launchTemplate"):
            yield Finding(
                "imdsv2",
                s.name,
                "EKS node group has no launch template: its nodes accept IMDSv1",
            )
        if s.type == "aws:ec2/launchTemplate:LaunchTemplate":
            metadata = s.props.get("metadataOptions") or {}
            if metadata.get("httpTokens") != "required":
                yield Finding("imdsv2", s.name, "launch template does not require IMDSv2")
            if int(metadata.get("httpPutResponseHopLimit") or 1) > 2:
                yield Finding(
                    "imdsv2",
                    s.name,
                    "launch template lets the metadata service answer beyond a pod (hop limit > 2)",
                )


def mqtt_in_clear(subjects: list[Subject]) -> Iterable[Finding]:
    """The ingestion release's broker connection: plain MQTT with an account sends the password
    and every message in clear (the stack file asked for it with `tls: false`)."""
    for s in subjects:
        if s.type != "kubernetes:helm.sh/v3:Release" or s.props.get("name") != "ingestion":
            continue
        stream = (s.props.get("values") or {}).get("stream") or {}
        mqtt = stream.get("mqtt") or {}
        if stream.get("enabled", True) and mqtt and mqtt.get("tls") is False:
            account = " with the broker account's password" if mqtt.get("existingSecret") else ""
            yield Finding(
                "mqtt-tls",
                s.name,
                f"stream.mqtt.tls is false: observations{account} cross the network in clear",
                "advisory",
            )


def _catalog_releases(subjects: list[Subject]) -> list[Subject]:
    return [
        s
        for s in subjects
        if s.type == "kubernetes:helm.sh/v3:Release"
        and str(s.props.get("chart", "")).rstrip("/").endswith("catalog")
    ]


def _production(subjects: list[Subject]) -> bool:
    """Whether the stack is a production site, as its catalog release says (production when
    no release says otherwise: the stricter reading)."""
    environments = {
        ((s.props.get("values") or {}).get("site") or {}).get("environment")
        for s in _catalog_releases(subjects)
    }
    return not environments or "production" in environments or None in environments


def backups_kept(subjects: list[Subject]) -> Iterable[Finding]:
    """A production site's catalog can be restored: an in-cluster database backs up with a
    recovery window of at least MIN_PRODUCTION_RETENTION_DAYS; an RDS instance keeps automated
    backups that long, is protected from deletion and leaves a final snapshot."""
    from fedeploy.config.services import MIN_PRODUCTION_RETENTION_DAYS as least

    if not _production(subjects):
        return
    for s in _catalog_releases(subjects):
        values = s.props.get("values") or {}
        if (values.get("site") or {}).get("kind") == "hub":
            continue  # the federated catalog is a harvested copy: rebuilt by harvesting again
        if (values.get("database") or {}).get("mode", "internal") != "internal":
            continue
        backup = values.get("backup") or {}
        if backup.get("enabled") is not True:
            yield Finding(
                "backups",
                s.name,
                "production catalog database without backups: set "
                "services.catalog.backup.enabled: true (the default) in the stack file",
            )
        elif int(backup.get("retentionDays") or 0) < least:
            yield Finding(
                "backups",
                s.name,
                f"backups kept {backup.get('retentionDays')} days on a production site; "
                f"services.catalog.backup.retention_days must be at least {least}",
            )
        else:
            yield from _backups_protected(subjects, s.name, values, backup)
    for s in subjects:
        if s.type != "aws:rds/instance:Instance":
            continue
        if int(s.props.get("backupRetentionPeriod") or 0) < least:
            yield Finding(
                "backups",
                s.name,
                f"RDS keeps automated backups {s.props.get('backupRetentionPeriod') or 0} days; "
                f"services.catalog.rds.backup_retention_days must be at least {least}",
            )
        if s.props.get("deletionProtection") is not True:
            yield Finding("backups", s.name, "production RDS instance without deletion protection")
        if s.props.get("skipFinalSnapshot") is not False or not s.props.get(
            "finalSnapshotIdentifier"
        ):
            yield Finding(
                "backups",
                s.name,
                "production RDS instance would be deleted without a final snapshot",
            )


def _backups_protected(
    subjects: list[Subject], release: str, values: dict, backup: dict
) -> Iterable[Finding]:
    """A production site's backups survive a compromised workload's deletes: an object lock
    (GOVERNANCE or COMPLIANCE) whose default retention covers the recovery window on the backup
    bucket, required on aws (S3 locks an existing bucket); on openstack and ovh, whose stores
    lock only a bucket created so, at least bucket versioning (deletes leave versions behind)."""
    from fedeploy.config.services import backup_lock_days

    bucket = backup.get("bucket")
    window = int(backup.get("retentionDays") or 0)
    days = backup_lock_days(window, int(backup.get("baseBackupIntervalHours") or 24))
    locks = [
        (lock.props.get("rule") or {}).get("defaultRetention") or {}
        for lock in subjects
        if lock.type == "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
        and lock.props.get("bucket") == bucket
    ]
    if any(lock.get("mode") in ("GOVERNANCE", "COMPLIANCE") and int(lock.get("days") or 0) >= days
           for lock in locks):  # fmt: skip
        return
    if locks:
        yield Finding(
            "backups",
            release,
            f"the object lock on {bucket} keeps versions fewer than {days} days, what the "
            f"backups' {window}-day recovery window needs (retention_days + "
            "ceil(base_backup_interval_hours / 24) + 1)",
        )
        return
    kind = (values.get("site") or {}).get("kind")
    if kind == "aws":
        yield Finding(
            "backups",
            release,
            f"production backups in {bucket} without object lock: a compromised backup identity "
            "could delete every version; remove services.catalog.backup.object_lock: off",
        )
        return
    versioned = any(
        v.type == "aws:s3/bucketVersioning:BucketVersioning"
        and v.props.get("bucket") == bucket
        and (v.props.get("versioningConfiguration") or {}).get("status") == "Enabled"
        for v in subjects
    )
    if not versioned and kind in ("openstack", "ovh"):
        yield Finding(
            "backups",
            release,
            f"production backups in {bucket} with neither object lock nor versioning: set "
            "services.catalog.backup.object_lock (a bucket created with it) or the bucket's "
            "versioning: true",
        )


RULES: list[Rule] = [
    Rule(
        "s3-encrypted",
        "Every bucket has server-side encryption (KMS or AES256).",
        "mandatory",
        buckets_encrypted,
    ),
    Rule(
        "s3-no-public-access",
        "Every AWS bucket blocks all public access.",
        "mandatory",
        buckets_not_public,
    ),
    Rule(
        "s3-tls-only",
        "Every AWS bucket denies requests without TLS.",
        "mandatory",
        buckets_tls_only,
    ),
    Rule("kms-rotation", "KMS keys rotate automatically.", "mandatory", kms_rotation),
    Rule(
        "tags",
        "Cloud resources carry the site tags; Kubernetes objects the fedeploy labels.",
        "mandatory",
        tagged,
    ),
    Rule(
        "no-plaintext-secrets",
        "Inputs that hold secrets are Pulumi secrets.",
        "mandatory",
        no_plaintext_secrets,
    ),
    Rule("no-open-ingress", "Nothing admits the whole internet.", "mandatory", network_closed),
    Rule(
        "mqtt-tls",
        "Edge streams reach the broker over TLS; plain MQTT is an advisory finding.",
        "advisory",
        mqtt_in_clear,
    ),
    Rule(
        "encrypted-at-rest",
        "Cluster secrets, databases and volumes are encrypted; IMDSv2 only (instances and EKS "
        "node groups, through their launch templates).",
        "mandatory",
        encrypted_at_rest,
    ),
    Rule(
        "backups",
        "A production site's catalog database backs up (in-cluster: barman-cloud with a long "
        "enough recovery window, into a bucket whose object lock covers that window, or on "
        "openstack and ovh at least versioned; RDS: retention, deletion protection, final "
        "snapshot).",
        "mandatory",
        backups_kept,
    ),
]

# The openstack and ovh kinds' rules and GPU taints on every kind live in their own module.
RULES.extend(provider_rules())


def evaluate(subjects: list[Subject], rules: list[Rule] | None = None) -> list[Finding]:
    """Every finding of every rule, each carrying its rule's enforcement level."""
    found: list[Finding] = []
    for rule in rules or RULES:
        for finding in rule.check(subjects):
            level = "advisory" if finding.enforcement == "advisory" else rule.enforcement
            found.append(Finding(finding.rule, finding.resource, finding.message, level))
    return sorted(set(found))
