"""Object lock on the catalog backups' bucket (issue 30): what each kind plans, what the policy
rule `backups` refuses on production, and that a locked version resists the backup identity.

aws locks the existing bucket (BucketObjectLockConfiguration, governance by default, the
recovery window, a base-backup interval and a day); openstack and ovh lock only a bucket created with it, so there it
is a stack-file choice (off by default, versioning then) that makes the bucket with
object_lock_enabled. moto enforces the default retention: a version under it cannot be deleted
by its version id, only hidden by a delete marker, whoever asks without the governance bypass,
which the backup identity's policy does not grant.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fedeploy.offline.engine import plan_stack
from fedeploy.values.workload_access import catalog_backup_access, workload_policy
from tests.builders import example_site
from tests.conftest import STACKS

LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"


def _plan(stack: str, **backup: Any) -> tuple[list[Any], list[str]]:
    """The stack planned with `backup` merged into services.catalog.backup: (resources, the
    `backups` findings)."""
    from fedeploy.plan.run import check_planned

    site = copy.deepcopy(example_site(stack))
    site["storage"]["buckets"].update(backup.pop("buckets", {}))
    site["services"]["catalog"].setdefault("backup", {}).update(backup)
    plan = plan_stack(STACKS / f"Pulumi.{stack}.yaml", config_override={"fedeploy:site": site})
    _, findings = check_planned(plan, None)
    return plan.resources, [f.message for f in findings if f.rule == "backups"]


def _of(resources: list[Any], kind: str) -> list[Any]:
    return [r for r in resources if r.type == kind]


def test_aws_locks_the_backup_bucket_in_governance_for_the_window_and_a_day() -> None:
    resources, findings = _plan("aws-dublin")
    (lock,) = _of(resources, LOCK)
    assert lock.inputs["bucket"] == "eofed-aws-dublin-raw"
    assert lock.inputs["objectLockEnabled"] == "Enabled"
    # 14 days of window, a base backup a day: 14 + 1 + a day of margin.
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "GOVERNANCE", "days": 16.0}
    assert findings == []
    resources, _ = _plan("aws-dublin", object_lock="compliance", retention_days=30)
    (lock,) = _of(resources, LOCK)
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": 32.0}


def test_a_weekly_base_backup_is_locked_until_the_window_no_longer_needs_it() -> None:
    """The window keeps the newest base backup older than its start: up to retention_days +
    the interval old, so the lock covers that (before: retention_days + 1 = 15 days)."""
    from fedeploy.config.services import CatalogBackup

    weekly = CatalogBackup(retention_days=14, base_backup_interval_hours=168)
    assert weekly.locked_bucket("aws") == {"raw": ("GOVERNANCE", 22)}
    resources, findings = _plan("aws-dublin", base_backup_interval_hours=168)
    (lock,) = _of(resources, LOCK)
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "GOVERNANCE", "days": 22.0}
    assert findings == []


def test_the_policy_refuses_a_lock_shorter_than_the_window_and_a_base_backup_interval() -> None:
    from policies.cloud import _backups_protected
    from policies.findings import Subject

    def found(days: int) -> list[str]:
        lock = Subject(LOCK, "lock", {"bucket": "b", "rule": {"defaultRetention": {
            "mode": "GOVERNANCE", "days": days}}})  # fmt: skip
        backup = {"bucket": "b", "retentionDays": 14, "baseBackupIntervalHours": 168}
        return [f.message for f in _backups_protected([lock], "catalog", {}, backup)]

    assert found(22) == []
    (refused,) = found(15)
    assert "fewer than 22 days" in refused and "14-day recovery window" in refused


def test_the_policy_refuses_production_backups_on_aws_without_object_lock() -> None:
    resources, findings = _plan("aws-dublin", object_lock="off")
    assert not _of(resources, LOCK)
    (found,) = findings
    assert "eofed-aws-dublin-raw without object lock" in found


@pytest.mark.parametrize(("stack", "bucket"), [("ewc-bologna", "eofed-ewc-bologna-raw"),
                                               ("ovh-gra", "eofed-ovh-gra-raw")])  # fmt: skip
def test_openstack_and_ovh_lock_only_a_bucket_created_with_it(stack: str, bucket: str) -> None:
    # By default: versioning, no lock (their stores cannot lock an existing bucket).
    resources, findings = _plan(stack)
    assert not _of(resources, LOCK) and findings == []
    (made,) = [r for r in _of(resources, "aws:s3/bucket:Bucket") if r.inputs["bucket"] == bucket]
    assert "objectLockEnabled" not in made.inputs
    # Asked for, on a bucket of the backups' own: made with object lock, its retention set.
    bucket = bucket.replace("-raw", "-backups")
    resources, findings = _plan(
        stack, object_lock="governance", bucket="backups", buckets={"backups": {}}
    )
    (made,) = [r for r in _of(resources, "aws:s3/bucket:Bucket") if r.inputs["bucket"] == bucket]
    assert made.inputs["objectLockEnabled"] is True
    (lock,) = _of(resources, LOCK)
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "GOVERNANCE", "days": 16.0}
    assert findings == []


@pytest.mark.parametrize("stack", ["ewc-bologna", "ovh-gra"])
def test_a_lock_on_openstack_or_ovh_on_a_bucket_other_workloads_write_is_refused(stack) -> None:
    """The default backup bucket, raw, exists on a deployed site and holds ingestion's objects:
    a lock there would replace the bucket and pin those objects (before: planned clean)."""
    from fedeploy.errors import StackConfigError

    with pytest.raises(StackConfigError) as caught:
        _plan(stack, object_lock="governance")
    (issue,) = [str(i) for i in caught.value.issues if "object_lock" in str(i)]
    assert "services.catalog.backup.object_lock is 'governance' on bucket 'raw'" in issue
    assert "services.ingestion" in issue
    assert "storage.buckets.backups" in issue and "services.catalog.backup.bucket: backups" in issue


def test_the_policy_refuses_unversioned_unlocked_production_backups_on_openstack() -> None:
    from fedeploy.plan.run import check_planned

    site = copy.deepcopy(example_site("ewc-bologna"))
    site["storage"]["buckets"]["raw"] = {
        **site["storage"]["buckets"].get("raw", {}),
        "versioning": False,
    }
    plan = plan_stack(STACKS / "Pulumi.ewc-bologna.yaml", config_override={"fedeploy:site": site})
    found = [f.message for f in check_planned(plan, None)[1] if f.rule == "backups"]
    assert any("neither object lock nor versioning" in f for f in found), found


def test_a_locked_backup_version_resists_deletion_by_the_backup_identity() -> None:
    """Against moto, with the bucket as the aws store makes it (versioned, then the planned lock
    configuration): barman-cloud's deletes only add delete markers; deleting the version itself
    is refused, and the backup identity's policy grants no governance bypass."""
    import boto3
    from moto import mock_aws

    resources, _ = _plan("aws-dublin")
    (lock,) = _of(resources, LOCK)
    retention = lock.inputs["rule"]["defaultRetention"]
    policy = workload_policy(catalog_backup_access("backups/catalog-db"), ["arn:aws:s3:::b"], None)
    actions = json.dumps(policy)
    assert "Bypass" not in actions and "ObjectLock" not in actions and "Retention" not in actions
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        bucket = lock.inputs["bucket"]
        s3.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
            ObjectLockEnabledForBucket=True,
        )
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object_lock_configuration(
            Bucket=bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {
                    "DefaultRetention": {"Mode": retention["mode"], "Days": int(retention["days"])}
                },
            },
        )
        key = "backups/catalog-db/catalog-db/base/20261206T120000/data.tar"
        version = s3.put_object(Bucket=bucket, Key=key, Body=b"base backup")["VersionId"]
        # What barman-cloud-backup-delete sends: a delete marker hides it, the version stays.
        s3.delete_object(Bucket=bucket, Key=key)
        kept = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
        assert kept == b"base backup"
        with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        assert s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
