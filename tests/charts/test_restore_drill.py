"""The catalog chart's restore drill and the backup image's PostgreSQL major (issue 30).

The drill's CronJob renders only where backups are on and the drill is asked for; its pod is
non-root with a read-only root and restores into an emptyDir; its NetworkPolicy reaches DNS, the
store, the database and the Pushgateway only; the migration creates its read-only role; its
alerts fire (promtool) where no Pushgateway is configured too. The backup image and the database
image must carry one PostgreSQL major, or the chart refuses to render.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from fedeploy.charts import ChartError, ChartValuesError, render_chart
from fedeploy.config.services import CatalogBackup
from fedeploy.values.services import backup_values
from tests.charts.conftest import CHARTS_DIR, NAMESPACE, SITES, deep_merge
from tests.charts.test_monitoring import (
    OPERATOR_API,
    _job_cases,
    rules_of,
    run_alert_cases,
)

CATALOG = CHARTS_DIR / "catalog"
DRILL = "catalog-restore-drill"


def render(extra: dict[str, Any] | None = None, api: bool = False) -> list[dict[str, Any]]:
    """The published site's catalog (backups and the drill on) with `extra` merged in."""
    values = deep_merge(copy.deepcopy(SITES["published"]["catalog"]), extra or {})
    apis = [OPERATOR_API] if api else []
    return render_chart(CATALOG, values, "catalog", NAMESPACE, api_versions=apis)


def one(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def test_the_drill_runs_only_with_backups_and_only_when_asked():
    assert one(render(), "CronJob", DRILL)["spec"]["schedule"] == "17 3 * * 0"
    off = {"backup": {"drill": {"enabled": False}}}
    assert not [m for m in render(off) if m["metadata"]["name"] == DRILL]
    no_backups = {"backup": {"enabled": False}}
    assert not [m for m in render(no_backups) if "restore-drill" in m["metadata"]["name"]]
    weekly = one(render({"backup": {"drill": {"schedule": "0 2 * * 6"}}}), "CronJob", DRILL)
    assert weekly["spec"]["schedule"] == "0 2 * * 6"


def test_the_drill_needs_its_read_only_roles_secret():
    with pytest.raises(ChartValuesError, match="existingSecret"):
        render({"backup": {"drill": {"existingSecret": ""}}})


def test_the_drill_pod_is_non_root_read_only_and_restores_into_an_empty_dir():
    job = one(render(), "CronJob", DRILL)["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert job["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] >= 10000
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/fedeploy/restore-drill:0.1.0-pg17"
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
    assert context["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {
        m["mountPath"]: m["name"] for m in container["volumeMounts"] if not m.get("readOnly")
    }
    assert writable == {"/scratch": "scratch", "/tmp": "tmp", "/dev/shm": "shm"}
    assert all("emptyDir" in volumes[name] for name in writable.values())
    # As large as the database volume unless told otherwise.
    assert volumes["scratch"]["emptyDir"]["sizeLimit"] == "20Gi"
    assert "--workdir=/scratch/restore" in container["args"]
    # Archive timeout 300 s + twice the upload interval (10 s) + 60 s.
    assert "--settle-seconds=380" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DRILL_LIVE_DSN"] == "postgresql://catalog-db:5432/pgstac?sslmode=disable"
    assert env["DRILL_LIVE_PASSWORD_FILE"] == "/etc/fedeploy/drill-db/password"
    assert volumes["drill-db"]["secret"]["secretName"] == "catalog-drill-db"


def _egress(policy: dict[str, Any]) -> list[str]:
    """Each egress rule in words: dns, cidr:<c>:<port>, pod:<component>:<port>, ns:<ns>:<port>."""
    found = []
    for rule in policy["spec"]["egress"]:
        ports = sorted({p["port"] for p in rule["ports"]})
        for peer in rule["to"]:
            if "ipBlock" in peer:
                found.append(f"cidr:{peer['ipBlock']['cidr']}:{ports}")
            elif peer.get("podSelector", {}).get("matchLabels", {}).get("k8s-app") == "kube-dns":
                found.append("dns")
            elif "namespaceSelector" in peer:
                namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                found.append(f"ns:{namespace}:{ports}")
            else:
                component = peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                found.append(f"pod:{component}:{ports}")
    return sorted(found)


def test_the_drill_reaches_dns_the_store_the_database_and_the_pushgateway_only():
    narrow = {"backup": {"storeCIDRs": ["192.0.2.0/24"]}}
    policy = one(render(narrow), "NetworkPolicy", DRILL)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"]
    assert _egress(policy) == ["cidr:192.0.2.0/24:[443]", "dns", "pod:database:[5432]"]
    pushing = {**narrow, "monitoring": {"pushgateway": {"url": "http://pg.monitoring:9091"}}}
    assert _egress(one(render(pushing), "NetworkPolicy", DRILL)) == [
        "cidr:192.0.2.0/24:[443]",
        "dns",
        "ns:monitoring:[9091]",
        "pod:database:[5432]",
    ]
    database = one(render(), "NetworkPolicy", "catalog-db")
    (rule,) = database["spec"]["ingress"]
    (components,) = [
        e["values"]
        for e in rule["from"][0]["podSelector"]["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component"
    ]
    assert components == ["api", "migration", "restore-drill"]


def test_the_migration_creates_the_drills_read_only_role():
    manifests = render()
    (job,) = [m for m in manifests if m["kind"] == "Job"]
    (sql,) = [m for m in manifests if m["metadata"]["name"].endswith("-migrate-sql")]
    script = sql["data"]["drill-role.py"]
    assert "GRANT SELECT ON pgstac.items, pgstac.collections TO" in script
    assert "GRANT pgstac_read" not in script and "CONNECTION LIMIT 2" in script
    assert "NOSUPERUSER" in script
    pod = job["spec"]["template"]["spec"]
    assert "python /sql/drill-role.py;" in pod["containers"][0]["command"][2]
    assert {
        "name": "drill-db",
        "secret": {"secretName": "catalog-drill-db", "defaultMode": 288},
    } in (pod["volumes"])
    # Without the drill the migration is what it was.
    (plain,) = [m for m in render({"backup": {"drill": {"enabled": False}}}) if m["kind"] == "Job"]
    assert "drill-role" not in yaml.safe_dump(plain)


def test_the_drill_alerts_fire_from_the_jobs_without_a_pushgateway(tmp_path):
    (spec,) = rules_of(render(api=True))
    (group,) = [g for g in spec["groups"] if g["name"] == "catalog-restore-drill"]
    assert {r["alert"] for r in group["rules"]} == {
        "CatalogRestoreDrillFailed",
        "CatalogRestoreDrillStale",
    }
    assert all(r["annotations"]["runbook_url"].endswith(r["alert"].lower()) for r in group["rules"])
    cases = _job_cases(f"{DRILL}-29400000", DRILL, 691200)
    failed = [
        {**case, "fires": case["fires"] and {**case["fires"], "severity": "critical"}}
        for case in cases["Failed"]
    ]
    run_alert_cases(
        {"groups": [group]},
        {"CatalogRestoreDrillFailed": failed, "CatalogRestoreDrillStale": cases["NoSuccess"]},
        tmp_path,
    )


# ------------------------------------------------------------------ PostgreSQL majors


def test_the_backup_image_carries_the_database_images_postgresql_major():
    """pgstac v0.10.0's image runs PostgreSQL 17 (its docker/pgstac/Dockerfile: ARG PG_MAJOR=17
    since v0.9.2); the backup image's tag says pg17. Another major is refused at render."""
    assert render()  # the defaults agree
    with pytest.raises(
        ChartError, match="carries PostgreSQL 16 but the database image runs PostgreSQL 17"
    ):
        render({"backup": {"image": {"tag": "0.1.0-pg16"}}})
    # CloudNativePG's tags name the major first.
    cnpg = {"repository": "ghcr.io/cloudnative-pg/postgresql", "tag": "17-system-trixie"}
    assert render({"backup": {"image": cnpg}})
    with pytest.raises(ChartError, match="carries PostgreSQL 15"):
        render({"backup": {"image": {**cnpg, "tag": "15-system-bookworm"}}})
    # pgstac before v0.9.2 ran PostgreSQL 15.
    with pytest.raises(ChartError, match="database image runs PostgreSQL 15"):
        render({"database": {"internal": {"image": {"tag": "v0.9.1"}}}})
    # A tag that names no major, or a database image the chart does not know, is refused too.
    with pytest.raises(ChartError, match="of no major its tag names"):
        render({"backup": {"image": {"tag": "latest"}}})
    custom = {"database": {"internal": {"image": {"repository": "registry.example.org/pg"}}}}
    with pytest.raises(ChartError, match="set database.internal.postgresMajor"):
        render(custom)
    assert render(deep_merge(custom, {"database": {"internal": {"postgresMajor": 17}}}))


# ------------------------------------------------------------------ stack file -> values


def test_the_stack_file_schedules_the_drill_weekly_where_backups_are_on():
    wiring = SimpleNamespace(
        role_arns={},
        storage_endpoint="https://s3.example.org",
        storage_region="eu-west-1",
        secret_for=lambda account: f"{account}-keys",
    )
    values = backup_values(wiring, CatalogBackup(), "bucket", "catalog-drill-db")
    assert values["drill"] == {
        "enabled": True,
        "schedule": "17 3 * * 0",
        "existingSecret": "catalog-drill-db",
        # Its own read-only storage identity (tests/charts/test_drill_identity.py).
        "serviceAccount": {"name": "catalog-drill", "annotations": {}},
        "credentialsSecret": "catalog-drill-keys",
    }
    chosen = CatalogBackup.model_validate({"drill": {"schedule": "0 4 * * 1"}})
    assert backup_values(wiring, chosen, "bucket", "s")["drill"]["schedule"] == "0 4 * * 1"
    off = CatalogBackup.model_validate({"drill": {"enabled": False}})
    assert backup_values(wiring, off, "bucket", None)["drill"]["enabled"] is False
    with pytest.raises(ValueError, match="drill.schedule"):
        CatalogBackup.model_validate({"drill": {"schedule": "weekly please"}})


def test_the_release_pipelines_build_the_image_the_chart_names():
    """Both release pipelines build services/restore-drill tagged <catalog appVersion>-pg<the
    Dockerfile's PG_MAJOR>: the tag the chart's backup.image names, and the script builds."""
    import re

    root = CHARTS_DIR.parent
    major = re.search(
        r"^ARG PG_MAJOR=(\d+)$", (root / "services/restore-drill/Dockerfile").read_text(), re.M
    )
    assert major
    version = yaml.safe_load((CATALOG / "Chart.yaml").read_text())["appVersion"]
    image = yaml.safe_load((CATALOG / "values.yaml").read_text())["backup"]["image"]
    assert image["repository"] == "ghcr.io/fedeploy/restore-drill"
    assert image["tag"] == f"{version}-pg{major[1]}"
    for pipeline, entry in (
        ("github/workflows/release.yml", "service: restore-drill, dockerfile: Dockerfile, "
         f'suffix: "-pg{major[1]}", chart: catalog'),
        ("gitlab/.gitlab-ci.yml", "SERVICE: restore-drill, DOCKERFILE: Dockerfile, "
         f'SUFFIX: "-pg{major[1]}", CHART: catalog'),
    ):  # fmt: skip
        text = (root / "examples/gitops" / pipeline).read_text()
        assert entry in text, pipeline
        assert "charts/$CHART/Chart.yaml" in text, pipeline
