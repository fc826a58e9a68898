"""MQTT from the stack file to the consumer: TLS by default, a CA passed through, plain MQTT only
when asked for and then an advisory finding."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fedeploy.config.services import Mqtt
from policies.cloud import RULES, mqtt_in_clear
from policies.findings import Subject
from tests.builders import TEST_CA_PEM

CA = TEST_CA_PEM
RELEASE = "kubernetes:helm.sh/v3:Release"


def _release(mqtt: dict) -> Subject:
    values = {"stream": {"enabled": True, "mqtt": {"host": "b", "port": 8883, **mqtt}}}
    return Subject(RELEASE, "site-ingestion", {"name": "ingestion", "values": values})


def test_tls_is_the_default_and_a_ca_needs_it():
    assert Mqtt(host="broker").tls is True
    assert Mqtt(host="broker", ca_certificate=CA).ca_certificate == CA
    with pytest.raises(ValidationError, match="ca_certificate is set but tls is false"):
        Mqtt(host="broker", tls=False, ca_certificate=CA)
    with pytest.raises(ValidationError, match="ca_certificate"):
        Mqtt(host="broker", ca_certificate="not a certificate")
    # The body is parsed (review sweep33: the markers around any text were taken), and text
    # outside the blocks is kept, as OpenSSL skips it.
    with pytest.raises(ValidationError, match="is not a PEM certificate bundle"):
        Mqtt(
            host="broker",
            ca_certificate="-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n",
        )
    commented = "# Corp CA\n" + CA + "# end\n"
    assert Mqtt(host="broker", ca_certificate=commented).ca_certificate == commented


def test_the_site_passes_tls_and_the_ca_to_the_chart(example_plans):
    releases = [
        r
        for plan in example_plans.values()
        for r in plan.by_type(RELEASE)
        if r.inputs["name"] == "ingestion" and (r.inputs["values"].get("stream") or {}).get("mqtt")
    ]
    assert releases
    for release in releases:
        mqtt = release.inputs["values"]["stream"]["mqtt"]
        assert mqtt["tls"] is True and mqtt["caCertificate"] == ""


def test_plain_mqtt_with_an_account_is_an_advisory_finding():
    (finding,) = mqtt_in_clear([_release({"tls": False, "existingSecret": "mqtt-login"})])
    assert finding.enforcement == "advisory" and "password" in finding.message
    (anonymous,) = mqtt_in_clear([_release({"tls": False, "existingSecret": ""})])
    assert "password" not in anonymous.message
    assert list(mqtt_in_clear([_release({"tls": True, "existingSecret": "mqtt-login"})])) == []
    assert any(rule.name == "mqtt-tls" and rule.enforcement == "advisory" for rule in RULES)
