"""Catalog database backups in the plan: every in-cluster catalog of the example federation backs
up to its own bucket, with a sidecar that is non-root, read-only and reaches only the store."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fedeploy.charts import ChartValuesError, pod_template, render_chart
from fedeploy.config.services import CatalogService
from fedeploy.errors import StackConfigError
from fedeploy.offline.engine import plan_stack
from fedeploy.values.services import catalog_values
from fedeploy.values.wiring import SiteWiring
from tests.builders import example_site
from tests.conftest import ROOT, STACKS

IN_CLUSTER = ["aws-dublin", "cf-waw", "ewc-bologna", "hpc-kajaani", "ovh-gra"]


def _catalog(example_report, stack: str):
    (release,) = [r for r in example_report.sites[stack].releases if r.name == "catalog"]
    return release


def _database(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (statefulset,) = [m for m in manifests if m["kind"] == "StatefulSet"]
    return statefulset


@pytest.mark.parametrize("stack", IN_CLUSTER)
def test_every_in_cluster_catalog_backs_up_to_its_own_bucket(example_report, stack) -> None:
    release = _catalog(example_report, stack)
    backup = release.values["backup"]
    assert backup["enabled"] is True
    assert backup["bucket"] == f"eofed-{stack}-raw"
    assert backup["prefix"] == "backups/catalog-db" and backup["retentionDays"] == 14
    pod = pod_template(_database(release.manifests))["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "backup")
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["BACKUP_URL"] == f"s3://eofed-{stack}-raw/backups/catalog-db"
    postgres = next(c for c in pod["containers"] if c["name"] == "postgres")
    assert "archive_mode=on" in postgres["args"]
    assert pod["serviceAccountName"] == "catalog-backup"


def test_an_rds_catalog_and_the_hubs_harvested_copy_have_no_sidecar(example_report) -> None:
    assert "backup" not in _catalog(example_report, "aws-frankfurt").values
    hub = _catalog(example_report, "eu-hub")
    assert "backup" not in hub.values
    pod = pod_template(_database(hub.manifests))["spec"]
    assert [c["name"] for c in pod["containers"]] == ["postgres"]


@pytest.mark.parametrize("stack", IN_CLUSTER)
def test_the_backup_sidecar_is_non_root_and_read_only(example_report, stack) -> None:
    pod = pod_template(_database(_catalog(example_report, stack).manifests))["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in [*pod["initContainers"], *pod["containers"]]:
        if not container["name"].startswith("backup"):
            continue
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "backup")
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    # It copies the data directory for base backups but can never change it.
    assert mounts["/var/lib/postgresql/data"]["readOnly"] is True
    assert mounts["/var/lib/postgresql/wal-spool"]["subPath"] == "wal-spool"


@pytest.mark.parametrize("stack", IN_CLUSTER)
def test_the_database_reaches_only_dns_and_the_store(example_report, stack) -> None:
    manifests = _catalog(example_report, stack).manifests
    (policy,) = [
        m
        for m in manifests
        if m["kind"] == "NetworkPolicy" and m["metadata"]["name"].endswith("-db")
    ]
    dns, store = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert all("namespaceSelector" in peer for peer in dns["to"])
    assert [p["port"] for p in store["ports"]] == [443]
    assert all(set(peer) == {"ipBlock"} for peer in store["to"])


def test_on_aws_the_backup_identity_is_a_role_of_its_own(example_report) -> None:
    backup = _catalog(example_report, "aws-dublin").values["backup"]
    assert backup["existingSecret"] == ""
    role = backup["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.endswith("aws-dublin-catalog-backup-role")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"retentionDays": 0}, ["retentionDays", "minimum"]),
        ({"prefix": "/backups/"}, ["prefix"]),
        ({"storeCIDRs": []}, ["storeCIDRs"]),
        ({"bucket": "Not_A_Bucket"}, ["bucket"]),
    ],
)
def test_the_chart_schema_refuses_bad_backup_values(change, words) -> None:
    values = {"database": {"existingSecret": "db"}, "backup": {"enabled": True, "bucket": "b-1"}}
    values["backup"].update(change)
    with pytest.raises(ChartValuesError) as caught:
        render_chart(ROOT / "charts/catalog", values)
    for word in words:
        assert word in str(caught.value)


def test_backups_on_without_a_bucket_fail_the_render_with_a_reason() -> None:
    with pytest.raises(Exception, match="backup.bucket is empty"):
        render_chart(ROOT / "charts/catalog", {"backup": {"enabled": True}})


def test_catalog_values_leave_backups_out_when_turned_off() -> None:
    wiring = SiteWiring(
        "s", "kubernetes", "ns", "https://s3.example", "r", "storage", {}, None, None
    )
    on = catalog_values(wiring, CatalogService(), database_secret="db", backup_bucket="b-1")
    assert on["backup"]["existingSecret"] == "storage" and on["backup"]["storePort"] == 443
    off = CatalogService.model_validate({"backup": {"enabled": False}})
    assert "backup" not in catalog_values(wiring, off, database_secret="db", backup_bucket="b-1")


@pytest.mark.parametrize(
    ("backup", "path", "words"),
    [
        (
            {"bucket": "archive"},
            "site",
            ["services.catalog.backup.bucket is 'archive'", "declared: models, raw"],
        ),
        ({"retention_days": 0}, "site.services.catalog.backup.retention_days", ["0"]),
        ({"prefix": "/backups/"}, "site.services.catalog.backup.prefix", ["'/'"]),
        (
            {"base_backup_interval_hours": 0},
            "site.services.catalog.backup.base_backup_interval_hours",
            ["0"],
        ),
    ],
)
def test_a_bad_backup_key_is_named_with_what_is_allowed(backup, path, words) -> None:
    site = copy.deepcopy(example_site("cf-waw"))
    site["services"]["catalog"]["backup"] = backup
    with pytest.raises(StackConfigError) as caught:
        plan_stack(STACKS / "Pulumi.cf-waw.yaml", config_override={"fedeploy:site": site})
    matching = [str(i) for i in caught.value.issues if i.path == path]
    assert matching, str(caught.value)
    for word in words:
        assert any(word in text for text in matching), (word, matching)


def _findings_with(stack: str, references: Any = None, **catalog: Any) -> list[str]:
    from fedeploy.plan.run import check_planned

    site = copy.deepcopy(example_site(stack))
    site["services"]["catalog"].update(catalog)
    plan = plan_stack(
        STACKS / f"Pulumi.{stack}.yaml",
        config_override={"fedeploy:site": site},
        references=references,
    )
    _, findings = check_planned(plan, None)
    return [f"{f.resource}: {f.message}" for f in findings if f.rule == "backups"]


def test_the_policy_refuses_a_production_catalog_without_backups() -> None:
    assert _findings_with("cf-waw") == []
    (found,) = _findings_with("cf-waw", backup={"enabled": False})
    assert "cf-waw-catalog" in found and "backup.enabled: true" in found


def test_the_policy_refuses_a_production_retention_under_a_week() -> None:
    (found,) = _findings_with("cf-waw", backup={"retention_days": 3})
    assert "kept 3 days" in found and "at least 7" in found


def test_a_staging_site_may_run_without_backups() -> None:
    site = copy.deepcopy(example_site("cf-waw"))
    site["environment"] = "staging"
    site["services"]["catalog"]["backup"] = {"enabled": False}
    from fedeploy.plan.run import check_planned

    plan = plan_stack(STACKS / "Pulumi.cf-waw.yaml", config_override={"fedeploy:site": site})
    assert not [f for f in check_planned(plan, None)[1] if f.rule == "backups"]


def test_the_policy_checks_production_rds_retention_protection_and_final_snapshot(
    example_plans,
) -> None:
    references = {"aws-dublin": example_plans["aws-dublin"].outputs}
    assert _findings_with("aws-frankfurt", references) == []
    found = _findings_with("aws-frankfurt", references, rds={"backup_retention_days": 2})
    assert any("RDS keeps automated backups 2 days" in f for f in found), found


def test_the_rds_rule_names_a_missing_protection_and_snapshot() -> None:
    from policies.cloud import backups_kept
    from policies.findings import Subject

    rds = Subject(
        "aws:rds/instance:Instance",
        "db",
        {"backupRetentionPeriod": 7, "deletionProtection": False, "skipFinalSnapshot": True},
    )
    messages = [f.message for f in backups_kept([rds])]
    assert messages == [
        "production RDS instance without deletion protection",
        "production RDS instance would be deleted without a final snapshot",
    ]


def test_a_bucket_that_expires_objects_before_the_retention_is_refused() -> None:
    site = copy.deepcopy(example_site("cf-waw"))
    site["storage"]["buckets"]["raw"] = {"lifecycle": {"expire_after_days": 10}}
    with pytest.raises(StackConfigError) as caught:
        plan_stack(STACKS / "Pulumi.cf-waw.yaml", config_override={"fedeploy:site": site})
    (issue,) = [str(i) for i in caught.value.issues if "expire_after_days (10)" in str(i)]
    assert "services.catalog.backup.retention_days (14)" in issue


def _refused(stack: str, site: dict) -> list[str]:
    with pytest.raises(StackConfigError) as caught:
        plan_stack(STACKS / f"Pulumi.{stack}.yaml", config_override={"fedeploy:site": site})
    return [str(i) for i in caught.value.issues]


def test_a_drill_asked_for_without_backups_is_refused_naming_the_key() -> None:
    site = copy.deepcopy(example_site("cf-waw"))
    site["services"]["catalog"]["backup"] = {"enabled": False, "drill": {"enabled": True}}
    (issue,) = [i for i in _refused("cf-waw", site) if "drill" in i]
    assert "services.catalog.backup.drill.enabled is true" in issue
    assert "services.catalog.backup.enabled is false" in issue
    # Backups off without a word about the drill (its default is on) stays as it was.
    site["services"]["catalog"]["backup"] = {"enabled": False}
    site["environment"] = "development"
    plan_stack(STACKS / "Pulumi.cf-waw.yaml", config_override={"fedeploy:site": site})


def test_the_stores_addresses_narrow_the_backup_and_drill_egress() -> None:
    """services.catalog.backup.store_cidrs feeds the chart's backup.storeCIDRs: the sidecar's
    and the drill's only HTTPS egress (before: no key, any address on 443)."""
    site = copy.deepcopy(example_site("cf-waw"))
    site["services"]["catalog"]["backup"] = {"store_cidrs": ["192.0.2.0/24"]}
    plan = plan_stack(STACKS / "Pulumi.cf-waw.yaml", config_override={"fedeploy:site": site})
    (release,) = [
        r
        for r in plan.resources
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("name") == "catalog"
    ]
    values = release.inputs["values"]
    assert values["backup"]["storeCIDRs"] == ["192.0.2.0/24"]
    manifests = render_chart(ROOT / "charts" / "catalog", values)
    drill = [
        m
        for m in manifests
        if m["kind"] == "NetworkPolicy" and "restore-drill" in m["metadata"]["name"]
    ]
    assert drill and "0.0.0.0/0" not in str(drill) and "192.0.2.0/24" in str(drill)
    # Unset: the chart's default, any address on the store's port.
    assert "storeCIDRs" not in _catalog_values("cf-waw")["backup"]


def _catalog_values(stack: str) -> dict[str, Any]:
    plan = plan_stack(STACKS / f"Pulumi.{stack}.yaml")
    (release,) = [
        r
        for r in plan.resources
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("name") == "catalog"
    ]
    return release.inputs["values"]
