"""Each chart hands its service the site's settings: storage, catalog, GPU, bridge, shards."""

from __future__ import annotations

import json

import pytest

from fedeploy.charts import pod_template, render_chart

NAMESPACE = "fedeploy"


def _only(manifests, kind, component=None):
    found = [
        m
        for m in manifests
        if m["kind"] == kind
        and (
            component is None
            or m["metadata"]["labels"].get("app.kubernetes.io/component") == component
        )
    ]
    assert len(found) == 1, f"expected one {kind} {component or ''}, found {len(found)}"
    return found[0]


def _container(manifest, name=None):
    containers = pod_template(manifest)["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def _env(container):
    """Plain env values by name; secret references as ("secret", name, key), resource
    references (OMP_NUM_THREADS from the CPU limit) as ("resource", resource)."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = ("secret", ref["name"], ref["key"])
        elif "resourceFieldRef" in item.get("valueFrom", {}):
            env[item["name"]] = ("resource", item["valueFrom"]["resourceFieldRef"]["resource"])
        else:
            env[item["name"]] = ("field", item["valueFrom"]["fieldRef"]["fieldPath"])
    return env


# ------------------------------------------------------------------ inference: GPU and autoscaling


def test_gpu_site_gets_a_gpu_limit_node_selector_and_toleration(rendered):
    deployment = _only(rendered("inference", "aws"), "Deployment")
    spec = pod_template(deployment)["spec"]
    server = _container(deployment)
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] == {"fedeploy.io/accelerator": "nvidia"}
    assert {
        "key": "nvidia.com/gpu",
        "operator": "Equal",
        "value": "present",
        "effect": "NoSchedule",
    } in spec["tolerations"]
    assert _env(server)["INFER_DEVICE"] == "cuda"


@pytest.mark.parametrize("site", ["kubernetes", "hpc"])
def test_cpu_sites_get_no_gpu_limit_selector_or_toleration(rendered, site):
    manifests = rendered("inference", site)
    deployment = _only(manifests, "Deployment")
    spec = pod_template(deployment)["spec"]
    assert "nvidia.com/gpu" not in json.dumps(manifests)
    assert "nodeSelector" not in spec and "tolerations" not in spec
    assert _env(_container(deployment))["INFER_DEVICE"] == "cpu"


def test_gpu_count_and_site_placement_merge_with_general_placement(site_values, merge, charts_dir):
    values = merge(
        site_values("aws", "inference"),
        {
            "gpu": {"count": 4},
            "nodeSelector": {"topology.kubernetes.io/zone": "eu-central-1a"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        },
    )
    deployment = _only(
        render_chart(charts_dir / "inference", values, "inference", NAMESPACE), "Deployment"
    )
    spec = pod_template(deployment)["spec"]
    assert _container(deployment)["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert spec["nodeSelector"] == {
        "topology.kubernetes.io/zone": "eu-central-1a",
        "fedeploy.io/accelerator": "nvidia",
    }
    assert [t["key"] for t in spec["tolerations"]] == ["dedicated", "nvidia.com/gpu"]


@pytest.mark.parametrize("site", ["aws", "kubernetes"])
def test_autoscaled_inference_has_an_hpa_owning_the_replica_count(rendered, site_values, site):
    manifests = rendered("inference", site)
    deployment, hpa = _only(manifests, "Deployment"), _only(manifests, "HorizontalPodAutoscaler")
    scaling = {"minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}
    scaling.update(site_values(site, "inference").get("autoscaling", {}))
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] == scaling["minReplicas"]
    assert hpa["spec"]["maxReplicas"] == scaling["maxReplicas"]
    target = hpa["spec"]["metrics"][0]["resource"]
    assert target["target"]["averageUtilization"] == scaling["targetCPUUtilizationPercentage"]
    assert "replicas" not in deployment["spec"]


def test_fixed_size_inference_has_replicas_and_no_hpa(rendered):
    manifests = rendered("inference", "hpc")
    assert not [m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"]
    assert _only(manifests, "Deployment")["spec"]["replicas"] == 1


def test_inference_serves_beyond_loopback_on_the_probed_port(rendered):
    server = _container(_only(rendered("inference", "kubernetes"), "Deployment"))
    env = _env(server)
    assert (env["INFER_HOST"], env["INFER_PORT"]) == ("0.0.0.0", "8080")
    assert server["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert server["command"] == ["fedeploy-infer", "serve"]


def test_stream_without_topics_leaves_the_service_default(site_values, merge, charts_dir):
    values = merge(site_values("hpc", "ingestion"), {"stream": {"mqtt": {"topics": []}}})
    manifests = render_chart(charts_dir / "ingestion", values, "ingestion", NAMESPACE)
    assert "INGEST_MQTT_TOPICS" not in _env(_container(_only(manifests, "StatefulSet")))


def test_inference_reads_the_model_from_the_site_bucket(rendered):
    env = _env(_container(_only(rendered("inference", "kubernetes"), "Deployment")))
    assert env["INFER_S3_ENDPOINT_URL"] == "https://s3.eu-cloud.example.org:8443"
    assert env["INFER_S3_REGION"] == "eu-west-1"
    assert env["INFER_BUCKET"] == "fedeploy-eu-cloud-models"
    assert env["INFER_MODEL_NAME"] == "nowcast"
    assert env["INFER_MODEL_VERSION"] == "latest"
    # The static keys are a mounted file (test_storage_credentials_file), not variables.
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/etc/fedeploy/storage/credentials"
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env


def test_aws_services_use_irsa_and_no_static_keys(rendered):
    for chart in ("catalog", "ingestion", "inference"):
        manifests = rendered(chart, "aws")
        account = _only(manifests, "ServiceAccount")
        assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
            "arn:aws:iam::"
        )
        for manifest in manifests:
            template = pod_template(manifest)
            for container in template["spec"]["containers"] if template else []:
                names = {e["name"] for e in container.get("env", [])}
                assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, chart
                assert (
                    "INGEST_S3_ENDPOINT_URL" not in names and "INFER_S3_ENDPOINT_URL" not in names
                )


def test_bridge_site_retrains_on_slurm_with_the_token_from_a_mounted_secret(rendered):
    cronjob = _only(rendered("inference", "hpc"), "CronJob", "retrain")
    env = _env(_container(cronjob))
    assert env["INFER_BRIDGE_URL"] == "https://bridge.hpc.example.org:6820"
    assert env["INFER_BRIDGE_PARTITION"] == "gpu"
    assert env["INFER_BRIDGE_USER_FILE"] == "/etc/fedeploy/bridge/user"
    assert "INFER_BRIDGE_USER" not in env
    assert env["INFER_BRIDGE_TOKEN_FILE"] == "/etc/fedeploy/bridge/token"
    assert "INFER_BRIDGE_TOKEN" not in env
    # The server never submits: no bridge setting at all.
    server = _env(_container(_only(rendered("inference", "hpc"), "Deployment")))
    assert not [name for name in server if name.startswith("INFER_BRIDGE_")]


def test_bridge_token_and_ca_are_mounted_together_for_the_submitting_pod(rendered):
    cronjob = _only(rendered("inference", "hpc"), "CronJob", "retrain")
    pod = pod_template(cronjob)["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "bridge"]
    assert volume["secret"]["secretName"] == "slurm-bridge"
    assert volume["secret"]["items"] == [
        {"key": "token", "path": "token"},
        {"key": "user", "path": "user"},
        {"key": "ca.crt", "path": "ca.crt"},
    ]
    assert _env(_container(cronjob))["INFER_BRIDGE_CA_FILE"] == "/etc/fedeploy/bridge/ca.crt"


def test_bridge_without_a_private_ca_trusts_the_system_store(site_values, merge, charts_dir):
    values = merge(site_values("hpc", "inference"), {"bridge": {"caKey": ""}})
    cronjob = _only(
        render_chart(charts_dir / "inference", values, "inference", NAMESPACE), "CronJob"
    )
    assert "INFER_BRIDGE_CA_FILE" not in _env(_container(cronjob))
    (volume,) = [v for v in pod_template(cronjob)["spec"]["volumes"] if v["name"] == "bridge"]
    assert volume["secret"]["items"] == [
        {"key": "token", "path": "token"},
        {"key": "user", "path": "user"},
    ]


@pytest.mark.parametrize("site", ["aws", "kubernetes"])
def test_sites_without_a_bridge_set_no_bridge_settings(rendered, site):
    env = _env(_container(_only(rendered("inference", site), "Deployment")))
    assert not [name for name in env if name.startswith("INFER_BRIDGE_")]


# ------------------------------------------------------------------ ingestion


def test_sentinel_run_splits_its_work_over_indexed_workers(rendered):
    cronjob = _only(rendered("ingestion", "aws"), "CronJob")
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == 6
    worker = _container(cronjob)
    env = _env(worker)
    assert worker["command"] == ["fedeploy-ingest", "sentinel"]
    assert env["INGEST_SHARD_COUNT"] == "6"
    assert env["INGEST_SHARD_INDEX"] == (
        "field",
        "metadata.annotations['batch.kubernetes.io/job-completion-index']",
    )


def test_sentinel_sources_are_passed_as_json_with_the_default_source_filled_in(
    rendered, site_values
):
    env = _env(_container(_only(rendered("ingestion", "aws"), "CronJob")))
    sources = json.loads(env["INGEST_SOURCES"])
    given = site_values("aws", "ingestion")["sentinel"]["sources"]
    assert [s["name"] for s in sources] == [s["name"] for s in given]
    assert sources[0]["url"] == "https://stac.dataspace.copernicus.eu/v1"
    assert sources[0]["bbox"] == given[0]["bbox"]
    assert sources[0]["maxCloudCover"] == 40
    assert sources[0]["assets"] == ["B04", "B08", "SCL"]
    assert sources[1]["assets"] == ["vv", "vh"]
    assert sources[1]["maxCloudCover"] is None
    assert sources[1]["maxItems"] == 200
    assert sources[1]["datetime"] == "2025-01-01T00:00:00Z/.."


def test_source_login_comes_from_its_secret(rendered):
    cronjob = _only(rendered("ingestion", "kubernetes"), "CronJob")
    _assert_secret_files(cronjob, "cdse-login", "ingest_source")


def test_stream_replicas_each_own_a_shard_given_by_their_ordinal(rendered):
    statefulset = _only(rendered("ingestion", "aws"), "StatefulSet")
    stream = _container(statefulset)
    env = _env(stream)
    assert statefulset["spec"]["replicas"] == 3
    assert stream["command"] == ["fedeploy-ingest", "stream"]
    assert env["INGEST_SHARD_COUNT"] == "3"
    assert env["INGEST_SHARD_INDEX"] == ("field", "metadata.labels['apps.kubernetes.io/pod-index']")
    assert (
        statefulset["spec"]["serviceName"]
        == _only(rendered("ingestion", "aws"), "Service")["metadata"]["name"]
    )


def test_stream_consumer_gets_broker_topics_window_and_login(rendered):
    stream = _container(_only(rendered("ingestion", "kubernetes"), "StatefulSet"))
    env = _env(stream)
    assert env["INGEST_MQTT_HOST"] == "broker.eu-cloud.example.org"
    assert env["INGEST_MQTT_PORT"] == "8883"
    assert env["INGEST_MQTT_TOPICS"] == "stations/+/obs,buoys/+/obs"
    assert env["INGEST_WINDOW_SECONDS"] == "600"
    assert env["INGEST_MQTT_TLS"] == "true"  # the login never crosses in clear
    _assert_secret_files(
        _only(rendered("ingestion", "kubernetes"), "StatefulSet"), "mqtt-login", "ingest_mqtt"
    )
    assert stream["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert stream["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize(
    ("site", "kind", "expected"),
    [
        (
            "kubernetes",
            "CronJob",
            {
                "INGEST_SITE": "eu-cloud",
                "INGEST_S3_ENDPOINT_URL": "https://s3.eu-cloud.example.org:8443",
                "INGEST_S3_REGION": "eu-west-1",
                "INGEST_BUCKET": "fedeploy-eu-cloud-data",
            },
        ),
        (
            "hpc",
            "StatefulSet",
            {
                "INGEST_SITE": "hpc-centre",
                "INGEST_S3_ENDPOINT_URL": "http://s3.hpc.example.org:8333",
                "INGEST_S3_REGION": "hpc",
                "INGEST_BUCKET": "fedeploy-hpc-data",
            },
        ),
    ],
)
def test_ingestion_writes_to_the_site_bucket_and_catalog(rendered, site, kind, expected):
    env = _env(_container(_only(rendered("ingestion", site), kind)))
    assert {name: env[name] for name in expected} == expected
    assert env["INGEST_CATALOG_URL"] == "http://catalog.fedeploy.svc.cluster.local:8080"
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/etc/fedeploy/storage/credentials"
    assert "AWS_ACCESS_KEY_ID" not in env


def test_ingestion_image_defaults_to_the_chart_app_version(rendered):
    stream = _container(_only(rendered("ingestion", "aws"), "StatefulSet"))
    assert stream["image"] == "ghcr.io/fedeploy/ingestion:0.1.0"


# ------------------------------------------------------------------ catalog


PINNED = {
    "api": "ghcr.io/stac-utils/stac-fastapi-pgstac:7.2.0",
    "database": "ghcr.io/stac-utils/pgstac:v0.10.0",
    "migration": "ghcr.io/stac-utils/pgstac-pypgstac:v0.10.0",
}


def test_catalog_images_are_the_pinned_stac_utils_releases(rendered):
    manifests = rendered("catalog", "kubernetes")
    assert _container(_only(manifests, "Deployment"), "api")["image"] == PINNED["api"]
    assert _container(_only(manifests, "StatefulSet"))["image"] == PINNED["database"]
    assert _container(_only(manifests, "Job"))["image"] == PINNED["migration"]


def test_migration_and_the_api_schema_wait_agree_on_the_pgstac_version(rendered):
    manifests = rendered("catalog", "kubernetes")
    migrate = _container(_only(manifests, "Job"))
    api_pod = pod_template(_only(manifests, "Deployment"))["spec"]
    wait = api_pod["initContainers"][0]
    assert 'pypgstac migrate --toversion "$PGSTAC_VERSION"' in migrate["command"][-1]
    assert _env(migrate)["PGSTAC_VERSION"] == _env(wait)["PGSTAC_VERSION"] == "0.10.0"
    assert "pgstac.get_version()" in wait["command"][-1]


def test_migration_job_name_changes_with_what_it_runs(site_values, merge, charts_dir):
    def job_name(values):
        manifests = render_chart(charts_dir / "catalog", values, "catalog", NAMESPACE)
        return _only(manifests, "Job")["metadata"]["name"]

    base = site_values("kubernetes", "catalog")
    same = job_name(base)
    assert job_name(base) == same
    assert job_name(merge(base, {"migration": {"image": {"tag": "v0.10.1"}}})) != same
    assert len(same) <= 63


def test_in_cluster_database_is_a_statefulset_with_a_claim_and_the_api_connects_to_it(rendered):
    manifests = rendered("catalog", "kubernetes")
    statefulset = _only(manifests, "StatefulSet")
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    postgres = _container(statefulset)
    assert "shared_buffers=256MB" in postgres["args"]
    env = _env(_container(_only(manifests, "Deployment"), "api"))
    service = next(
        m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == env["PGHOST"]
    )
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "database"
    assert env["PGSSLMODE"] == "disable"
    assert env["PGUSER"] == ("secret", "catalog-db", "username")
    assert env["PGPASSWORD"] == ("secret", "catalog-db", "password")
    assert env["ENABLE_TRANSACTIONS_EXTENSIONS"] == "true"


def test_external_database_replaces_the_statefulset(rendered):
    manifests = rendered("catalog", "aws")
    assert not [
        m for m in manifests if m["kind"] in ("StatefulSet", "PersistentVolumeClaim", "Secret")
    ]
    env = _env(_container(_only(manifests, "Deployment"), "api"))
    assert env["PGHOST"] == "fedeploy-aws-eu.abc123.eu-central-1.rds.amazonaws.com"
    assert env["PGPORT"] == "5432"
    assert env["PGSSLMODE"] == "verify-full"
    assert env["PGPASSWORD"] == ("secret", "catalog-db", "password")


def test_external_database_requires_tls_unless_told_otherwise(site_values, merge, charts_dir):
    values = merge(site_values("aws", "catalog"), {"database": {"sslMode": ""}})
    manifests = render_chart(charts_dir / "catalog", values, "catalog", NAMESPACE)
    assert _env(_container(_only(manifests, "Deployment"), "api"))["PGSSLMODE"] == "require"


def test_generated_database_password_is_created_once_at_install(rendered):
    secret = _only(rendered("catalog", "hpc"), "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install"
    statefulset = _only(rendered("catalog", "hpc"), "StatefulSet")
    env = _env(_container(statefulset))
    assert env["POSTGRES_PASSWORD"] == ("secret", secret["metadata"]["name"], "password")


def test_hub_harvests_every_member_site_into_its_own_catalog(rendered, site_values):
    manifests = rendered("catalog", "hub")
    cronjob = _only(manifests, "CronJob")
    harvester = _container(cronjob)
    env = _env(harvester)
    federation = site_values("hub", "catalog")["federation"]
    service = next(
        m for m in manifests if m["kind"] == "Service" and m["spec"].get("clusterIP") != "None"
    )
    assert cronjob["spec"]["schedule"] == federation["schedule"]
    assert harvester["command"] == ["fedeploy-ingest", "harvest"]
    assert harvester["image"] == "ghcr.io/fedeploy/ingestion:0.1.0"
    assert json.loads(env["HARVEST_SOURCES"]) == federation["sites"]
    assert env["HARVEST_TARGET_URL"] == (
        f"http://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:8080"
    )


@pytest.mark.parametrize("site", ["aws", "kubernetes", "hpc"])
def test_member_sites_run_no_harvester(rendered, site):
    assert not [m for m in rendered("catalog", site) if m["kind"] == "CronJob"]


def _assert_secret_files(workload, secret, prefix):
    """The Secret's username and password are files in INGEST_SETTINGS_DIR, not variables."""
    from fedeploy.charts import pod_template

    pod = pod_template(workload)["spec"]
    container = pod["containers"][0]
    env = _env(container)
    assert not any(isinstance(v, tuple) and v[1] == secret for v in env.values())
    directory = env["INGEST_SETTINGS_DIR"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == directory)
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])["secret"]
    assert volume["secretName"] == secret
    assert {i["key"]: i["path"] for i in volume["items"]} == {
        "username": f"{prefix}_username",
        "password": f"{prefix}_password",
    }
