"""The WIS2 consumer: a second StatefulSet, TLS always on, its topics and download hosts, the
broker credentials as files, and egress to the broker and https only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from fedeploy.charts import render_chart
from fedeploy.config.services import Wis2
from tests.charts.conftest import CHARTS_DIR, NAMESPACE, SITES

TOPIC = "cache/a/wis2/+/data/core/weather/surface-based-observations/synop"
WIS2 = {
    "enabled": True,
    "host": "globalbroker.example.org",
    "port": 8883,
    "topics": [TOPIC],
    "downloadHosts": ["*.example.org"],
    "existingSecret": "wis2-credentials",
}


def _render(wis2: dict[str, Any] | None) -> list[dict[str, Any]]:
    values = dict(SITES["kubernetes"]["ingestion"])
    stream = dict(values["stream"])
    if wis2 is not None:
        stream["wis2"] = wis2
    values["stream"] = stream
    values["networkPolicy"] = {**values.get("networkPolicy", {}), "enabled": True}
    return render_chart(CHARTS_DIR / "ingestion", values, "ingestion", NAMESPACE)


def _named(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith("-wis2")]


def test_no_wis2_consumer_unless_enabled():
    assert _named(_render(None), "StatefulSet") == []
    assert _named(_render({"enabled": False}), "StatefulSet") == []


def test_the_wis2_consumer_reads_its_topics_over_tls_and_downloads_from_its_hosts_only():
    manifests = _render(WIS2)
    (statefulset,) = _named(manifests, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["INGEST_STREAM_FORMAT"] == "wis2"
    assert env["INGEST_MQTT_TLS"] == "true"
    assert (env["INGEST_MQTT_HOST"], env["INGEST_MQTT_PORT"]) == (
        "globalbroker.example.org",
        "8883",
    )
    assert env["INGEST_MQTT_TOPICS"] == TOPIC
    assert json.loads(env["INGEST_WIS2_DOWNLOAD_HOSTS"]) == ["*.example.org"]
    assert env["INGEST_DEAD_LETTER_PREFIX"] == "dead-letter/wis2/"
    # Credentials are files from the Secret, never environment variables.
    assert not any("PASSWORD" in name for name in env)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "credentials"]
    assert volume["secret"]["secretName"] == "wis2-credentials"
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    (policy,) = _named(manifests, "NetworkPolicy")
    ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", []))
    assert 8883 in ports and 443 in ports and 80 not in ports


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"broker": "mqtt://globalbroker.example.org:1883"}, "broker"),
        ({"broker": "mqtts://globalbroker.example.org:99999"}, "99999"),
        ({"topics": ["fedeploy/site-a/stations/+/observations"]}, "topics"),
        ({"download_hosts": []}, "download_hosts"),
    ],
)
def test_the_stack_file_refuses_a_wis2_subscription_without_tls_or_outside_wis2(change, message):
    spec = {
        "broker": "mqtts://globalbroker.example.org",
        "topics": [TOPIC],
        "download_hosts": ["*.example.org"],
        **change,
    }
    with pytest.raises(ValidationError) as refused:
        Wis2.model_validate(spec)
    assert message in str(refused.value)
