"""MQTT is TLS unless the operator turns it off explicitly; a login never crosses in clear
by default (issue 12, item 5)."""

from __future__ import annotations

import logging
import os
import ssl

import pytest
from fedeploy_ingestion.errors import ConfigError
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.stream import Consumer
from pydantic import SecretStr

PASSWORD = "broker-canary-3f9a"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("INGEST_") or name == "JOB_COMPLETION_INDEX":
            monkeypatch.delenv(name)
    for name, value in {
        "INGEST_SITE": "site-a",
        "INGEST_BUCKET": "b",
        "INGEST_MQTT_HOST": "broker.example.org",
        "INGEST_MQTT_PORT": "8883",
    }.items():
        monkeypatch.setenv(name, value)


def _login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_MQTT_USERNAME", "ingest")
    monkeypatch.setenv("INGEST_MQTT_PASSWORD", PASSWORD)


def _consumer() -> Consumer:
    return Consumer(IngestSettings(), object(), object(), Metrics())  # type: ignore[arg-type]


def test_tls_is_the_default() -> None:
    settings = IngestSettings()
    assert settings.mqtt_tls is True
    assert "mqtt_tls" not in settings.model_fields_set


def test_a_login_with_the_default_connects_with_verified_tls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fails on the old default (mqtt_tls=False): the client then had no TLS context and
    # sent the password in clear.
    _login(monkeypatch)
    client = _consumer().client
    assert client._ssl_context is not None
    assert client._ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert client._ssl_context.check_hostname


def test_an_explicit_tls_off_with_a_login_is_allowed_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _login(monkeypatch)
    monkeypatch.setenv("INGEST_MQTT_TLS", "false")
    with caplog.at_level(logging.WARNING, logger="fedeploy_ingestion.stream"):
        client = _consumer().client
    assert client._ssl_context is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("INGEST_MQTT_TLS=false" in w and "in clear" in w for w in warnings)
    assert PASSWORD not in caplog.text


def test_tls_off_without_a_login_warns_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("INGEST_MQTT_TLS", "false")
    with caplog.at_level(logging.WARNING, logger="fedeploy_ingestion.stream"):
        assert _consumer().client._ssl_context is None
    assert not IngestSettings().mqtt_plaintext_login()
    assert "in clear" not in caplog.text


def test_tls_off_that_nobody_set_is_refused_without_the_password() -> None:
    # A guard: TLS can only be off unset if the default is ever changed back, or settings
    # are built without validation; the consumer then refuses rather than log in in clear.
    settings = IngestSettings.model_construct(
        _fields_set={"mqtt_username", "mqtt_password"},
        **{
            **IngestSettings().model_dump(),
            "mqtt_tls": False,
            "mqtt_username": "ingest",
            "mqtt_password": SecretStr(PASSWORD),
        },
    )
    with pytest.raises(ConfigError) as raised:
        settings.mqtt_plaintext_login()
    text = str(raised.value)
    assert "INGEST_MQTT_TLS" in text and "INGEST_MQTT_PASSWORD" in text
    assert PASSWORD not in text
