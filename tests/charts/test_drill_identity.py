"""The restore drill reads the backups as an identity of its own, never the backup writer's
(review of issue 27, finding 4): its own ServiceAccount (on aws annotated with its read-only
role) and, where the store has static keys, its own storage Secret; the backup sidecar keeps
`catalog-backup` and the writer's keys."""

from __future__ import annotations

from tests.charts.test_restore_drill import DRILL, one, render

ROLE = "arn:aws:iam::123456789012:role/site-catalog-drill-role"


def _pod(manifests: list) -> dict:
    return one(manifests, "CronJob", DRILL)["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_the_drill_runs_as_its_own_account_with_its_own_keys():
    manifests = render(
        {
            "backup": {
                "existingSecret": "fedeploy-storage-catalog-backup",
                "drill": {"credentialsSecret": "fedeploy-storage-catalog-drill"},
            }
        }
    )
    pod = _pod(manifests)
    assert pod["serviceAccountName"] == "catalog-drill"
    account = one(manifests, "ServiceAccount", "catalog-drill")
    assert account["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["storage-credentials"]["secret"]["secretName"] == (
        "fedeploy-storage-catalog-drill"
    )
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert "fedeploy-storage-catalog-backup" not in secrets
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/etc/fedeploy/storage/credentials"


def test_on_aws_the_drill_assumes_its_own_role_and_mounts_no_keys():
    manifests = render(
        {
            "backup": {
                "existingSecret": "",
                "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "writer"}},
                "drill": {
                    "credentialsSecret": "",
                    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": ROLE}},
                },
            }
        }
    )
    pod = _pod(manifests)
    assert pod["serviceAccountName"] == "catalog-drill"
    account = one(manifests, "ServiceAccount", "catalog-drill")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE}
    assert "storage-credentials" not in {v["name"] for v in pod["volumes"]}
    (container,) = pod["containers"]
    assert "AWS_SHARED_CREDENTIALS_FILE" not in {e["name"] for e in container["env"]}


# The example federation's plan (review of issue 27, finding 4: every site's drill ran as
# catalog-backup, with put and delete on the backups).
PREFIX = "backups/catalog-db/"


def _statements(plan, typ: str, name: str) -> list[dict]:
    """The statements of the policy resource `name` of type `typ` in the plan."""
    import json

    (policy,) = [p for p in plan.by_type(typ) if p.name == name]
    return json.loads(policy.inputs["policy"])["Statement"]


def _drill_pod(plan, stack: str) -> dict:
    (release,) = [
        r
        for r in plan.by_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "catalog" and r.name.startswith(stack)
    ]
    return release.inputs["values"]["backup"]["drill"]


def test_on_aws_the_drill_role_only_lists_and_reads_the_backup_prefix(example_plans) -> None:
    plan = example_plans["aws-dublin"]
    statements = _statements(
        plan, "aws:iam/rolePolicy:RolePolicy", "aws-dublin-catalog-drill-role-access"
    )
    actions = {a for s in statements for a in s["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}
    reads = [s for s in statements if s["Action"] == ["s3:GetObject"]]
    assert [r.split("/", 1)[1] for s in reads for r in s["Resource"]] == [f"{PREFIX}*"]
    drill = _drill_pod(plan, "aws-dublin")
    assert drill["serviceAccount"]["name"] == "catalog-drill"
    role = drill["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.endswith("aws-dublin-catalog-drill-role")
    assert drill["credentialsSecret"] == ""


def test_on_ovh_the_drill_has_a_read_only_user_of_its_own(example_plans) -> None:
    plan = example_plans["ovh-gra"]
    statements = _statements(
        plan, "ovh:CloudProject/s3Policy:S3Policy", "ovh-gra-catalog-drill-s3-policy"
    )
    assert {a for s in statements for a in s["Action"]} == {"s3:ListBucket", "s3:GetObject"}
    (read,) = [s for s in statements if s["Action"] == ["s3:GetObject"]]
    assert read["Resource"] == [f"arn:aws:s3:::eofed-ovh-gra-raw/{PREFIX}*"]
    assert _drill_pod(plan, "ovh-gra")["credentialsSecret"] == "fedeploy-storage-catalog-drill"
