"""The ingestion chart during a change of the stream's replica count (docs/ingestion.md)."""

from __future__ import annotations

import pytest

from fedeploy.charts import pod_template, render_chart

NAMESPACE = "fedeploy"


def _stream(manifests):
    [statefulset] = [m for m in manifests if m["kind"] == "StatefulSet"]
    container = pod_template(statefulset)["spec"]["containers"][0]
    return statefulset, {e["name"]: e.get("value") for e in container.get("env", [])}


@pytest.mark.parametrize(("replicas", "previous", "pods"), [(3, 2, 3), (2, 3, 3), (2, None, 2)])
def test_step_one_runs_both_counts_on_the_larger_number_of_pods(
    site_values, merge, charts_dir, replicas, previous, pods
):
    values = merge(
        site_values("aws", "ingestion"),
        {"stream": {"replicas": replicas, "previousReplicas": previous}},
    )
    statefulset, env = _stream(
        render_chart(charts_dir / "ingestion", values, "ingestion", NAMESPACE)
    )
    assert statefulset["spec"]["replicas"] == pods
    assert env["INGEST_SHARD_COUNT"] == str(replicas)
    assert env.get("INGEST_PREVIOUS_SHARD_COUNT") == (None if previous is None else str(previous))


def test_the_stack_files_previous_replicas_reaches_the_consumers(charts_dir):
    from fedeploy.config.services import IngestionService
    from fedeploy.values.services import ingestion_values
    from fedeploy.values.wiring import SiteWiring

    spec = IngestionService.model_validate(
        {
            "stream": {"replicas": 3, "previous_replicas": 2, "mqtt": {"host": "broker.example"}},
            "sentinel": None,
        }
    )
    wiring = SiteWiring("eu", "aws", NAMESPACE, "", "eu-central-1", "", {}, None, None)
    values = ingestion_values(
        wiring, spec, bucket="raw", catalog="http://catalog", sentinel_secret="", mqtt_secret=""
    )
    values["site"] = {"name": "eu-site", "kind": "aws"}
    statefulset, env = _stream(
        render_chart(charts_dir / "ingestion", values, "ingestion", NAMESPACE)
    )
    assert statefulset["spec"]["replicas"] == 3
    assert (env["INGEST_SHARD_COUNT"], env["INGEST_PREVIOUS_SHARD_COUNT"]) == ("3", "2")
