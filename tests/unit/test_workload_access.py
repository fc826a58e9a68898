"""The workload policy as a pure decision: scoped to the bucket, its prefixes and its KMS key."""

from __future__ import annotations

import json

import pytest

from fedeploy.values.workload_access import WORKLOAD_ACCESS, WorkloadAccess, workload_policy

BUCKET = "arn:aws:s3:::eofed-site-raw"
KEY = "arn:aws:kms:eu-central-1:123456789012:key/abcd"


@pytest.mark.parametrize("service", sorted(WORKLOAD_ACCESS))
def test_every_grant_names_the_bucket_or_one_of_its_prefixes(service):
    policy = workload_policy(WORKLOAD_ACCESS[service], [BUCKET], KEY)
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in statement["Action"])
        for resource in statement["Resource"]:
            if resource.startswith("arn:aws:s3"):
                assert resource == BUCKET or (
                    resource.startswith(BUCKET + "/") and resource.endswith("/*")
                ), resource
            else:
                assert resource == KEY


def test_the_kms_key_is_usable_only_through_s3_in_its_region():
    policy = workload_policy(WORKLOAD_ACCESS["inference"], [BUCKET], KEY)
    (kms,) = [s for s in policy["Statement"] if s["Resource"] == [KEY]]
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-central-1.amazonaws.com"}}
    assert set(kms["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}


def test_a_read_only_workload_gets_no_write_nor_data_key():
    reader = WorkloadAccess(reads=("sentinel/",))
    policy = workload_policy(reader, [BUCKET], KEY)
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}


def test_without_a_kms_key_there_is_no_kms_statement():
    text = json.dumps(workload_policy(WORKLOAD_ACCESS["ingestion"], [BUCKET], None))
    assert "kms:" not in text


def test_only_the_service_that_resumes_uploads_may_list_and_abort_them():
    ingestion = workload_policy(WORKLOAD_ACCESS["ingestion"], [BUCKET], None)
    inference = workload_policy(WORKLOAD_ACCESS["inference"], [BUCKET], None)
    assert "s3:ListBucketMultipartUploads" in json.dumps(ingestion)
    for action in ("s3:ListBucketMultipartUploads", "s3:AbortMultipartUpload", "s3:DeleteObject"):
        assert action not in json.dumps(inference)


@pytest.mark.parametrize("prefix", ["sentinel", "/sentinel/", "*", "a*/"])
def test_a_prefix_must_be_a_plain_folder(prefix):
    with pytest.raises(ValueError, match="must end in '/'"):
        WorkloadAccess(reads=(prefix,))
