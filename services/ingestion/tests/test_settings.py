"""Settings from the environment, as the chart sets them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fedeploy_ingestion.errors import ConfigError
from fedeploy_ingestion.settings import (
    COPERNICUS_TOKEN_URL,
    HarvestSettings,
    IngestSettings,
)
from pydantic import ValidationError

SOURCE = (
    '[{"name": "cdse", "collections": ["sentinel-2-l2a"], "assets": ["B04", "B08"], '
    '"bbox": [10, 46, 12, 47], "datetime": "P2D", "maxCloudCover": 20}]'
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("INGEST_", "HARVEST_")) or name == "JOB_COMPLETION_INDEX":
            monkeypatch.delenv(name)


def test_sources_parse_from_json_with_the_copernicus_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INGEST_SOURCES", SOURCE)
    source = IngestSettings().sources[0]
    assert source.url == "https://stac.dataspace.copernicus.eu/v1"
    assert source.token_url == COPERNICUS_TOKEN_URL
    assert source.max_cloud_cover == 20
    now = datetime(2024, 6, 3, 12, tzinfo=UTC)
    assert source.search_datetime(now) == "2024-06-01T12:00:00Z/2024-06-03T12:00:00Z"


def test_another_stac_api_gets_no_token_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_SOURCES", SOURCE.replace('"name"', '"url": "http://up", "name"'))
    assert IngestSettings().sources[0].token_url is None


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("INGEST_WINDOW_SECONDS", "700", ["divide a day"]),
        ("INGEST_SITE", "Site_A", ["pattern"]),
        ("INGEST_SOURCES", SOURCE.replace("[10, 46, 12, 47]", "[10, 47, 12, 46]"), ["south"]),
        ("INGEST_SOURCES", SOURCE.replace('"P2D"', '"P2X"'), ["ISO 8601"]),
        ("INGEST_SOURCES", SOURCE.replace("20}", "120}"), ["100"]),
        ("INGEST_SOURCES", SOURCE.replace('"assets"', '"asset"'), ["asset"]),
        ("INGEST_MAX_PENDING_MESSAGES", "100000", ["65535"]),
    ],
)
def test_bad_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: list[str]
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        IngestSettings()
    for word in words:
        assert word in str(raised.value)


def test_an_indexed_job_sets_the_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "3")
    monkeypatch.setenv("INGEST_SHARD_COUNT", "4")
    assert IngestSettings().shard_index == 3
    monkeypatch.setenv("INGEST_SHARD_COUNT", "3")
    with pytest.raises(ValidationError, match="below the count"):
        IngestSettings()


def test_topics_default_to_the_site_and_split_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_SITE", "site-a")
    assert IngestSettings().topics() == ["fedeploy/site-a/stations/+/observations"]
    assert IngestSettings().client_id() == "fedeploy-ingest-site-a-0"
    monkeypatch.setenv("INGEST_MQTT_TOPICS", "a/+/b, c/#")
    assert IngestSettings().topics() == ["a/+/b", "c/#"]


def test_secrets_never_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_SOURCE_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("INGEST_MQTT_PASSWORD", "broker-secret")
    text = repr(IngestSettings()) + str(IngestSettings().model_dump())
    assert "hunter2-secret" not in text and "broker-secret" not in text


def test_require_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as raised:
        IngestSettings().require("site", "bucket")
    assert "INGEST_SITE" in str(raised.value) and "INGEST_BUCKET" in str(raised.value)


def test_harvest_sources_must_have_unique_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "HARVEST_SOURCES",
        '[{"name": "site-a", "url": "http://a"}, {"name": "site-a", "url": "http://b"}]',
    )
    with pytest.raises(ValidationError, match="site-a"):
        HarvestSettings()


def test_credentials_are_read_from_files_in_the_secrets_dir(tmp_path, monkeypatch) -> None:
    (tmp_path / "ingest_source_username").write_text("bob")
    (tmp_path / "ingest_source_password").write_text("file-secret\n")
    (tmp_path / "ingest_mqtt_password").write_text("broker-file-secret")
    monkeypatch.setenv("INGEST_SETTINGS_DIR", str(tmp_path))
    for name in ("INGEST_SOURCE_USERNAME", "INGEST_SOURCE_PASSWORD", "INGEST_MQTT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = IngestSettings()
    assert settings.source_username is not None and settings.source_password is not None
    assert settings.source_username.get_secret_value() == "bob"
    assert settings.source_password.get_secret_value() == "file-secret"
    assert settings.mqtt_password is not None
    assert settings.mqtt_password.get_secret_value() == "broker-file-secret"
    assert "file-secret" not in repr(settings)


SEVIRI = '"collections": ["EO:EUM:DAT:MSG:HRSEVIRI"]'


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        (
            {
                "INGEST_EUMETSAT_SOURCES": f'[{{"name": "dup", "url": "http://a", {SEVIRI}}}, '
                f'{{"name": "dup", "url": "http://b", {SEVIRI}}}]'
            },
            "'dup' in INGEST_EUMETSAT_SOURCES, INGEST_EUMETSAT_SOURCES",
        ),
        (
            {
                "INGEST_ECMWF_SOURCES": '[{"name": "dup", "url": "http://a", "steps": [0], "params": ["2t"]}]',
                "INGEST_POLYTOPE_SOURCES": '[{"name": "dup", "url": "http://b", "requests": '
                '[{"class": "d1", "dataset": "climate-dt", "param": "2t", "date": "20300101"}]}]',
            },
            "'dup' in INGEST_ECMWF_SOURCES, INGEST_POLYTOPE_SOURCES",
        ),
    ],
    ids=["within-a-kind", "across-kinds"],
)
def test_agency_sources_must_have_unique_names(
    variables: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two sources of one name would share the `<name>:budget` bookkeeping (review agency29 F3).
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=re.escape(named)):
        IngestSettings()
