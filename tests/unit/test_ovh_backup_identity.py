"""Each workload's storage keys reach only its prefixes wherever fedeploy makes the store's
identities: on ovh sites an S3 user per workload (the asset endpoint, ingestion, inference, the
catalog's backups), whose policy grants `workload_policy`'s statements on its prefixes (the
asset endpoint reads; the backups write, read for a restore, delete for retention), each mounted
by its workload alone, while the site user that makes the buckets stays in Pulumi's state; on kubernetes and hpc sites, whose store is not fedeploy's, the plan says
so (advisory `backup-identity`). aws sites have the `catalog-backup` role and openstack sites
with `workload_identities` a Keystone project of their own (their own tests)."""

from __future__ import annotations

import json
from typing import Any

from fedeploy.config.services import CatalogBackup
from policies.findings import Subject
from policies.providers import backup_identity

OVH = "ovh-gra"
USER = "ovh:CloudProject/user:User"
POLICY = "ovh:CloudProject/s3Policy:S3Policy"
CREDENTIAL = "ovh:CloudProject/s3Credential:S3Credential"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _one(plan: Any, typ: str, name: str) -> Any:
    (found,) = [r for r in plan.by_type(typ) if r.name == name]
    return found


def test_an_ovh_sites_backups_have_a_user_limited_to_their_prefix(example_plans) -> None:
    plan = example_plans[OVH]
    user = _one(plan, USER, f"{OVH}-catalog-backup-s3-user")
    assert user.inputs["roleNames"] == ["objectstore_operator"]
    policy = json.loads(_one(plan, POLICY, f"{OVH}-catalog-backup-s3-policy").inputs["policy"])
    prefix = CatalogBackup().prefix + "/"  # the example keeps the default
    bucket = f"arn:aws:s3:::eofed-{OVH}-raw"
    objects = {r for s in policy["Statement"] for r in s["Resource"] if r != bucket}
    assert objects == {f"{bucket}/{prefix}*"}
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    # No bucket settings, no versions: what barman-cloud does under its prefix, nothing more.
    assert actions == {
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListMultipartUploadParts",
        "s3:AbortMultipartUpload",
    }
    credential = _one(plan, CREDENTIAL, f"{OVH}-catalog-backup-s3-credential")
    assert credential.inputs["userId"].startswith(f"{OVH}-catalog-backup-s3-user")
    # The backup sidecar mounts its own Secret.
    values = {r.inputs["name"]: r.inputs["values"] for r in plan.by_type(RELEASE)}
    assert values["catalog"]["backup"]["existingSecret"] == "fedeploy-storage-catalog-backup"


# Review of issue 27, finding 3: the asset endpoint, ingestion and inference mounted the site
# user's keys (the user that makes the buckets: delete, lifecycle, versioning on both buckets).
WORKLOAD_GRANTS = {
    # workload: (bucket, {statement: object prefixes})
    "assets": ("raw", {"Read": ["sentinel/", "observations/"]}),
    "ingestion": (
        "raw",
        {
            "Read": ["sentinel/", "observations/", ".fedeploy-uploads/sentinel/"],
            "Write": [
                "sentinel/",
                "observations/",
                "dead-letter/",
                ".fedeploy-uploads/sentinel/",
            ],
            "ResumeUploads": ["sentinel/"],
            "Delete": ["sentinel/", ".fedeploy-uploads/sentinel/"],
        },
    ),
    "inference": (
        "models",
        {"Read": ["observations/", "models/"], "Write": ["models/", "forecasts/"]},
    ),
}


def test_each_ovh_workload_has_a_user_limited_to_its_prefixes(example_plans) -> None:
    plan = example_plans[OVH]
    for workload, (logical, grants) in WORKLOAD_GRANTS.items():
        _one(plan, USER, f"{OVH}-{workload}-s3-user")
        policy = json.loads(_one(plan, POLICY, f"{OVH}-{workload}-s3-policy").inputs["policy"])
        bucket = f"arn:aws:s3:::eofed-{OVH}-{logical}"
        objects = {
            s["Sid"]: sorted(r.removeprefix(f"{bucket}/").removesuffix("*") for r in s["Resource"])
            for s in policy["Statement"]
            if s["Resource"] != [bucket]
        }
        assert objects == {sid: sorted(p) for sid, p in grants.items()}, workload
        buckets = {a for s in policy["Statement"] if s["Resource"] == [bucket] for a in s["Action"]}
        # Listing only: no bucket settings (versioning, lifecycle, encryption), no CreateBucket.
        assert buckets <= {"s3:ListBucket", "s3:ListBucketMultipartUploads"}, workload
        credential = _one(plan, CREDENTIAL, f"{OVH}-{workload}-s3-credential")
        assert credential.inputs["userId"].startswith(f"{OVH}-{workload}-s3-user")
    # The asset endpoint (internet-facing) only reads.
    policy = json.loads(_one(plan, POLICY, f"{OVH}-assets-s3-policy").inputs["policy"])
    assert {a for s in policy["Statement"] for a in s["Action"]} == {
        "s3:ListBucket",
        "s3:GetObject",
    }


def test_no_ovh_pod_holds_the_site_user_that_makes_the_buckets(example_plans) -> None:
    plan = example_plans[OVH]
    values = {r.inputs["name"]: r.inputs["values"] for r in plan.by_type(RELEASE)}
    assert values["ingestion"]["storage"]["existingSecret"] == "fedeploy-storage-ingestion"
    assert values["inference"]["storage"]["existingSecret"] == "fedeploy-storage-inference"
    assert values["catalog"]["assets"]["storage"]["existingSecret"] == "fedeploy-storage-assets"
    secrets = {s.inputs["metadata"]["name"] for s in plan.by_type("kubernetes:core/v1:Secret")}
    assert "fedeploy-storage" not in secrets
    assert {f"fedeploy-storage-{w}" for w in (*WORKLOAD_GRANTS, "catalog-backup")} <= secrets


def test_backups_on_stores_not_ours_are_an_advisory(example_plans) -> None:
    flagged = {}
    for stack, plan in example_plans.items():
        subjects = [
            Subject(r.type, r.name, r.inputs, tuple(r.secret_paths)) for r in plan.resources
        ]
        flagged[stack] = [f.resource for f in backup_identity(subjects)]
    # The kubernetes and hpc examples keep catalog backups on the site's shared keys.
    assert flagged["cf-waw"] == ["cf-waw-catalog"]
    assert flagged["hpc-kajaani"] == ["hpc-kajaani-catalog"]
    for stack in ("aws-frankfurt", "aws-dublin", "ovh-gra", "ewc-bologna", "eu-hub"):
        assert flagged[stack] == [], stack
    (finding,) = backup_identity(
        [
            Subject(
                RELEASE,
                "x-catalog",
                {
                    "name": "catalog",
                    "values": {
                        "site": {"kind": "hpc"},
                        "backup": {"enabled": True, "existingSecret": "fedeploy-storage"},
                    },
                },
                (),
            )
        ]
    )
    assert finding.enforcement == "advisory" and "not fedeploy's" in finding.message
