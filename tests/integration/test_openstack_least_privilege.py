"""OpenStack `workload_identities`, as far as an emulator enforces them: each workload's
statements in the bucket policies the plan registers (those naming its project), attached as a
user's policy on an IAM-enforcing moto, let the service's real S3 code do its work and refuse
everything else; the asset endpoint only reads.

What no emulator here checks: that RGW applies those statements to the workload's Keystone
project (moto evaluates identity policies, not bucket policies; there is no RGW or Keystone on
loopback). tests/unit/test_openstack_workload_identities.py states the principals and the
project each EC2 credential belongs to; docs/configuration.md says so."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fedeploy.offline.engine import plan_stack
from fedeploy.openstack_storage import rgw_principal
from loopback import S3Endpoint
from loopback.enforcing_s3 import IamEnforcingMoto
from tests.builders import example_site
from tests.conftest import STACKS
from tests.integration.test_least_privilege import (
    _denied,
    _sentinel_copies,
    _use_keys,
    asset_presigner,
)
from tests.peers import peer_fixture

pytestmark = [pytest.mark.integration]

STACK = "ewc-bologna"


@pytest.fixture(scope="module")
def plan() -> Any:
    # The example site turns workload_identities on itself (issue 27).
    assert example_site(STACK)["workload_identities"]
    return plan_stack(STACKS / f"Pulumi.{STACK}.yaml")


moto_iam = peer_fixture(IamEnforcingMoto, "moto-iam", scope="module")


def _statements_of(plan: Any, workload: str) -> tuple[str, dict[str, Any]]:
    """(the bucket, a policy of the statements naming the workload's project, without their
    principal), from the bucket policies the plan registers."""
    import json

    (grant,) = [
        g
        for g in plan.by_type("openstack:identity/roleAssignment:RoleAssignment")
        if g.name == f"{STACK}-{workload}-role"
    ]
    principal = rgw_principal(grant.inputs["projectId"])
    buckets, statements = set(), []
    for policy in plan.by_type("aws:s3/bucketPolicy:BucketPolicy"):
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            if statement["Principal"] == {"AWS": [principal]}:
                buckets.add(policy.inputs["bucket"])
                statements.append({k: v for k, v in statement.items() if k != "Principal"})
    (bucket,) = buckets
    return bucket, {"Version": "2012-10-17", "Statement": statements}


def _user(moto_iam: IamEnforcingMoto, plan: Any, workload: str) -> tuple[str, S3Endpoint]:
    bucket, policy = _statements_of(plan, workload)
    assert moto_iam.admin is not None
    moto_iam.admin.create_bucket(bucket)
    return bucket, moto_iam.user(f"{STACK}-{workload}-{time.monotonic_ns()}", policy)


def test_the_ingestion_project_copies_sentinel_assets_and_touches_no_other_prefix(
    plan: Any, moto_iam: IamEnforcingMoto, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedeploy_ingestion.object_store import ObjectStore, s3_client

    bucket, keys = _user(moto_iam, plan, "ingestion")
    _use_keys(monkeypatch, keys)
    store = ObjectStore(s3_client(keys.endpoint_url, keys.region, "path"), bucket)
    _sentinel_copies(store)  # head, resumable multipart copy, read back, delete a bad copy
    store.put("observations/bz-01/2024/06/01/w.parquet", b"w", "application/octet-stream")
    assert _denied(lambda: store.put("models/m/LATEST", b"x", "text/plain"))
    assert _denied(lambda: store.delete("observations/bz-01/2024/06/01/w.parquet"))


def test_the_asset_endpoints_project_only_reads_assets(
    plan: Any, moto_iam: IamEnforcingMoto, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, keys = _user(moto_iam, plan, "assets")
    client = asset_presigner(moto_iam, bucket, keys, monkeypatch)

    def read(key: str) -> bytes:
        return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    assert read("sentinel/s2/item/B04.tif") == b"asset bytes"
    assert read("observations/bz-01/w.parquet") == b"asset bytes"
    assert _denied(lambda: read("models/m/LATEST"))
    assert _denied(lambda: client.put_object(Bucket=bucket, Key="sentinel/x", Body=b"x"))
    assert _denied(lambda: client.delete_object(Bucket=bucket, Key="sentinel/s2/item/B04.tif"))


def test_the_inference_and_backup_projects_keep_to_their_prefixes(
    plan: Any, moto_iam: IamEnforcingMoto
) -> None:
    bucket, keys = _user(moto_iam, plan, "inference")
    client = keys.client()
    client.put_object(Bucket=bucket, Key="forecasts/2026/x.json", Body=b"{}")
    client.put_object(Bucket=bucket, Key="models/m/v1/model.onnx", Body=b"m")
    assert client.get_object(Bucket=bucket, Key="models/m/v1/model.onnx")["Body"].read() == b"m"
    assert _denied(lambda: client.put_object(Bucket=bucket, Key="sentinel/x", Body=b"x"))
    assert _denied(lambda: client.delete_object(Bucket=bucket, Key="models/m/v1/model.onnx"))

    bucket, keys = _user(moto_iam, plan, "catalog-backup")
    client = keys.client()
    key = "backups/catalog-db/catalog/wals/0001/000000010000000000000001"
    client.put_object(Bucket=bucket, Key=key, Body=b"wal")
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"wal"
    client.delete_object(Bucket=bucket, Key=key)
    assert _denied(lambda: client.get_object(Bucket=bucket, Key="sentinel/s2/x.tif"))
    assert _denied(lambda: client.put_object(Bucket=bucket, Key="sentinel/s2/y", Body=b"y"))
