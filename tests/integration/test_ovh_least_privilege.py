"""An ovh site's workload S3 users, as far as an emulator enforces it: the policy the plan
registers for each (OVHcloud's S3 policies are AWS IAM's statements), attached to a user of an
IAM-enforcing moto, lets the workload's calls under its prefixes through (the backups' user:
barman-cloud's write, read back, multipart, delete for retention; the asset endpoint's: reads)
and refuses the rest of the bucket and its settings. What no emulator checks:
that OVHcloud applies the document as moto does (docs/configuration.md, ovh)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from loopback.enforcing_s3 import IamEnforcingMoto
from tests.integration.test_least_privilege import _denied
from tests.peers import peer_fixture

pytestmark = [pytest.mark.integration]

STACK = "ovh-gra"
moto_iam = peer_fixture(IamEnforcingMoto, "moto-iam", scope="module")


def _user_of(
    plan: Any, moto_iam: IamEnforcingMoto, workload: str, objects: dict[str, bytes]
) -> tuple[Any, str]:
    """A client with the keys of a moto user holding the policy the plan registers for the
    workload's OVHcloud S3 user, and its one bucket (made, holding `objects`)."""
    (policy,) = [
        p
        for p in plan.by_type("ovh:CloudProject/s3Policy:S3Policy")
        if p.name == f"{STACK}-{workload}-s3-policy"
    ]
    document = json.loads(policy.inputs["policy"])
    (bucket,) = {
        r.split(":::", 1)[1].split("/", 1)[0] for s in document["Statement"] for r in s["Resource"]
    }
    assert moto_iam.admin is not None
    moto_iam.admin.create_bucket(bucket)
    for key, body in objects.items():
        moto_iam.admin.client().put_object(Bucket=bucket, Key=key, Body=body)
    keys = moto_iam.user(
        f"{STACK}-{workload}-{time.monotonic_ns()}", {"Version": "2012-10-17", **document}
    )
    return keys.client(), bucket


def test_the_backup_user_keeps_to_the_backup_prefix(
    example_plans: Any, moto_iam: IamEnforcingMoto
) -> None:
    client, bucket = _user_of(
        example_plans[STACK], moto_iam, "catalog-backup", {"sentinel/s2/x.tif": b"asset"}
    )
    base = "backups/catalog-db/catalog/base/20261206T000000/data.tar"
    upload = client.create_multipart_upload(Bucket=bucket, Key=base)["UploadId"]
    part = client.upload_part(
        Bucket=bucket, Key=base, UploadId=upload, PartNumber=1, Body=b"b" * 1024
    )
    client.complete_multipart_upload(
        Bucket=bucket,
        Key=base,
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    wal = "backups/catalog-db/catalog/wals/0001/000000010000000000000001"
    client.put_object(Bucket=bucket, Key=wal, Body=b"wal")
    assert client.get_object(Bucket=bucket, Key=wal)["Body"].read() == b"wal"
    listed = client.list_objects_v2(Bucket=bucket, Prefix="backups/catalog-db/")
    assert {o["Key"] for o in listed["Contents"]} == {base, wal}
    client.delete_object(Bucket=bucket, Key=wal)
    assert _denied(lambda: client.get_object(Bucket=bucket, Key="sentinel/s2/x.tif"))
    assert _denied(lambda: client.put_object(Bucket=bucket, Key="sentinel/s2/y", Body=b"y"))
    assert _denied(lambda: client.delete_object(Bucket=bucket, Key="sentinel/s2/x.tif"))
    assert _denied(lambda: client.put_object(Bucket=bucket, Key="backups/other/z", Body=b"z"))


def test_the_asset_endpoints_user_only_reads_the_assets(
    example_plans: Any, moto_iam: IamEnforcingMoto
) -> None:
    # Review of issue 27, finding 3: the internet-facing asset endpoint held the site user,
    # which could delete the catalog's backups and put a lifecycle erasing every version.
    backup = "backups/catalog-db/catalog/wals/0001/000000010000000000000002"
    client, bucket = _user_of(
        example_plans[STACK],
        moto_iam,
        "assets",
        {"sentinel/s2/a.tif": b"asset", backup: b"wal"},
    )
    assert client.get_object(Bucket=bucket, Key="sentinel/s2/a.tif")["Body"].read() == b"asset"
    assert _denied(lambda: client.put_object(Bucket=bucket, Key="sentinel/s2/b", Body=b"b"))
    assert _denied(lambda: client.delete_object(Bucket=bucket, Key="sentinel/s2/a.tif"))
    assert _denied(lambda: client.get_object(Bucket=bucket, Key=backup))
    assert _denied(lambda: client.delete_object(Bucket=bucket, Key=backup))
    expire = {"Rules": [{"ID": "x", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}]}
    assert _denied(
        lambda: client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=expire
        )
    )
    assert _denied(
        lambda: client.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}
        )
    )


def test_the_restore_drills_user_only_reads_the_backups(
    example_plans: Any, moto_iam: IamEnforcingMoto
) -> None:
    # Review of issue 27, finding 4: the drill held the backup writer's keys.
    base = "backups/catalog-db/catalog/base/20261206T000000/backup.info"
    client, bucket = _user_of(
        example_plans[STACK],
        moto_iam,
        "catalog-drill",
        {base: b"info", "sentinel/s2/a.tif": b"asset"},
    )
    # What barman-cloud-backup-list and -restore do: list, read. (Their HeadBucket first is
    # s3:ListBucket on AWS; moto checks it as an action s3:HeadBucket no policy grants.)
    listed = client.list_objects_v2(Bucket=bucket, Prefix="backups/catalog-db/")
    assert base in {o["Key"] for o in listed["Contents"]}  # beside the other tests' backups
    assert client.get_object(Bucket=bucket, Key=base)["Body"].read() == b"info"
    assert _denied(lambda: client.put_object(Bucket=bucket, Key=base, Body=b"forged"))
    assert _denied(lambda: client.delete_object(Bucket=bucket, Key=base))
    assert _denied(lambda: client.get_object(Bucket=bucket, Key="sentinel/s2/a.tif"))
