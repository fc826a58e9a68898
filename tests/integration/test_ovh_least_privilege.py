"""An ovh site's catalog-backup S3 user, as far as an emulator enforces it: the policy the plan
registers for it (OVHcloud's S3 policies are AWS IAM's statements), attached to a user of an
IAM-enforcing moto, lets barman-cloud's calls under the backup prefix through (write, read back,
multipart, delete for retention) and refuses the rest of the bucket. What no emulator checks:
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


def test_the_backup_user_keeps_to_the_backup_prefix(
    example_plans: Any, moto_iam: IamEnforcingMoto
) -> None:
    plan = example_plans[STACK]
    (policy,) = [
        p
        for p in plan.by_type("ovh:CloudProject/s3Policy:S3Policy")
        if p.name == f"{STACK}-catalog-backup-s3-policy"
    ]
    document = json.loads(policy.inputs["policy"])
    (bucket,) = {
        r.split(":::", 1)[1].split("/", 1)[0] for s in document["Statement"] for r in s["Resource"]
    }
    assert moto_iam.admin is not None
    moto_iam.admin.create_bucket(bucket)
    moto_iam.admin.client().put_object(Bucket=bucket, Key="sentinel/s2/x.tif", Body=b"asset")
    keys = moto_iam.user(
        f"{STACK}-backup-{time.monotonic_ns()}", {"Version": "2012-10-17", **document}
    )
    client = keys.client()
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
