"""The catalog's backups hold keys that reach only the backup prefix wherever fedeploy makes the
store's identities: on ovh sites an S3 user of their own, whose policy grants `workload_policy`'s
statements on the backup prefix (write, read for a restore, delete for retention), mounted by the
backup sidecar alone; on kubernetes and hpc sites, whose store is not fedeploy's, the plan says
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
    # The backup sidecar mounts its own Secret; ingestion and inference keep the site user's.
    values = {r.inputs["name"]: r.inputs["values"] for r in plan.by_type(RELEASE)}
    assert values["catalog"]["backup"]["existingSecret"] == "fedeploy-storage-catalog-backup"
    assert values["ingestion"]["storage"]["existingSecret"] == "fedeploy-storage"
    secrets = {s.inputs["metadata"]["name"] for s in plan.by_type("kubernetes:core/v1:Secret")}
    assert {"fedeploy-storage", "fedeploy-storage-catalog-backup"} <= secrets


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
