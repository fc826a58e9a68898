"""The stream consumers speak MQTT over TLS by default, trusting the configured CA."""

from __future__ import annotations

from typing import Any

from fedeploy.charts import render_chart
from tests.charts.conftest import CHARTS_DIR, NAMESPACE, SITES

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _render(mqtt: dict[str, Any]) -> list[dict[str, Any]]:
    values = dict(SITES["kubernetes"]["ingestion"])
    stream = dict(values["stream"])
    stream["mqtt"] = {**stream["mqtt"], **mqtt}
    values["stream"] = stream
    return render_chart(CHARTS_DIR / "ingestion", values, "ingestion", NAMESPACE)


def _stream(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (statefulset,) = [m for m in manifests if m["kind"] == "StatefulSet"]
    return statefulset["spec"]["template"]["spec"]


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}


def test_tls_is_on_by_default_on_the_tls_port():
    env = _env(_stream(_render({})))
    assert env["INGEST_MQTT_TLS"] == "true" and env["INGEST_MQTT_PORT"] == "8883"
    assert "INGEST_MQTT_CA_FILE" not in env  # the system's CAs


def test_a_private_ca_is_mounted_from_a_config_map_and_named_to_the_consumer():
    manifests = _render({"caCertificate": CA})
    (config_map,) = [
        m for m in manifests if m["kind"] == "ConfigMap" and "mqtt-ca" in m["metadata"]["name"]
    ]
    assert config_map["data"]["ca.crt"] == CA
    pod = _stream(manifests)
    assert _env(pod)["INGEST_MQTT_CA_FILE"] == "/etc/fedeploy/mqtt/ca.crt"
    (volume,) = [v for v in pod["volumes"] if v["name"] == "mqtt-ca"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]


def test_plain_mqtt_only_when_asked_for():
    manifests = _render({"tls": False, "port": 1883})
    assert _env(_stream(manifests))["INGEST_MQTT_TLS"] == "false"
    assert not [
        m for m in manifests if m["kind"] == "ConfigMap" and "mqtt-ca" in m["metadata"]["name"]
    ]
