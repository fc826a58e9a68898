"""The agencies' sources from the stack file to the service: ECMWF open data and the EUMETSAT
Data Store declared under `services.ingestion.sentinel`, the chart's values and CronJob, the
service's settings, and the plan's lines naming each source's credentials."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from fedeploy.charts import pod_template, render_chart
from fedeploy.config.services import IngestionService
from fedeploy.plan.formats import sources
from fedeploy.values.services import ingestion_values
from fedeploy.values.wiring import SiteWiring

ECMWF = {"name": "ecmwf-ifs", "steps": [0, 6], "params": ["2t", "msl"], "bbox": [5, 45, 11, 48]}
EUMETSAT = {"name": "eumetsat-seviri", "collections": ["EO:EUM:DAT:MSG:HRSEVIRI"]}
# Secrets not issued yet (`pending:`), as a stack file may hold them offline.
KEY = {"consumer_key": {"pending": True}, "consumer_secret": {"pending": True}}


def spec(**sentinel: Any) -> IngestionService:
    return IngestionService.model_validate({"sentinel": sentinel})


def values_of(
    ingestion: IngestionService, eumetsat_secret: str = "", **secrets: str
) -> dict[str, Any]:
    """The ingestion chart's values of a site `eu-site` (aws) with `ingestion`; `secrets` are
    ingestion_values' other Secret names (polytope_secret, eodag_secret)."""
    wiring = SiteWiring("eu", "aws", "fedeploy", "", "eu-central-1", "", {}, None, None)
    values = ingestion_values(
        wiring,
        ingestion,
        bucket="raw-data",
        catalog="http://catalog",
        sentinel_secret="",
        mqtt_secret="",
        eumetsat_secret=eumetsat_secret,
        **secrets,
    )
    values["site"] = {"name": "eu-site", "kind": "aws"}
    return values


def test_the_stack_files_sources_reach_the_services_settings(charts_dir) -> None:
    from fedeploy_ingestion.settings import IngestSettings

    values = values_of(
        spec(ecmwf=[ECMWF], eumetsat=[EUMETSAT], eumetsat_credentials=KEY), "eumetsat-credentials"
    )
    manifests = render_chart(charts_dir / "ingestion", values, "ingestion", "fedeploy")
    cronjob = next(m for m in manifests if m["kind"] == "CronJob")
    pod = pod_template(cronjob)["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    settings = IngestSettings(
        ecmwf_sources=json.loads(env["INGEST_ECMWF_SOURCES"]),
        eumetsat_sources=json.loads(env["INGEST_EUMETSAT_SOURCES"]),
    )
    [ecmwf], [eumetsat] = settings.ecmwf_sources, settings.eumetsat_sources
    assert (ecmwf.url, ecmwf.steps, ecmwf.params) == (
        "https://data.ecmwf.int/forecasts",
        [0, 6],
        ["2t", "msl"],
    )
    assert ecmwf.bbox == (5, 45, 11, 48)
    assert (eumetsat.url, eumetsat.collections) == (
        "https://api.eumetsat.int",
        ["EO:EUM:DAT:MSG:HRSEVIRI"],
    )
    # The API key: files in the settings directory, never variables.
    assert env["INGEST_SETTINGS_DIR"] == "/var/run/secrets/fedeploy"
    assert not any("CONSUMER" in name for name in env)
    volume = next(v for v in pod["volumes"] if v["name"] == "credentials")
    [source] = volume["projected"]["sources"]
    assert source["secret"]["name"] == "eumetsat-credentials"
    assert {i["path"] for i in source["secret"]["items"]} == {
        "ingest_eumetsat_consumer_key",
        "ingest_eumetsat_consumer_secret",
    }


def test_a_site_without_agency_sources_renders_as_before() -> None:
    sentinel = values_of(
        spec(
            sources=[
                {
                    "name": "s2-alps",
                    "collections": ["sentinel-2-l2a"],
                    "bbox": [10, 45, 13, 48],
                    "assets": ["B04"],
                }
            ]
        )
    )["sentinel"]
    assert not {"ecmwfSources", "eumetsatSources", "eumetsatCredentialsSecret"} & set(sentinel)


@pytest.mark.parametrize(
    ("sentinel", "problem"),
    [
        ({}, "at least one source"),
        ({"eumetsat": [EUMETSAT]}, "eumetsat_credentials"),
        ({"ecmwf": [{**ECMWF, "datetime": "2026-12-01/.."}]}, "closed interval"),
        ({"ecmwf": [{**ECMWF, "times": [3]}]}, "times"),
        (
            {"eumetsat": [{**EUMETSAT, "collections": ["HRSEVIRI"]}], "eumetsat_credentials": KEY},
            "collections",
        ),
    ],
)
def test_a_bad_declaration_is_refused_naming_what(sentinel: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        spec(**sentinel)


def test_the_plan_names_each_source_and_the_credentials_it_needs() -> None:
    values = values_of(
        spec(
            sources=[
                {
                    "name": "s2-alps",
                    "collections": ["sentinel-2-l2a"],
                    "bbox": [10, 45, 13, 48],
                    "assets": ["B04"],
                }
            ],
            ecmwf=[ECMWF],
            eumetsat=[EUMETSAT],
            eumetsat_credentials=KEY,
        ),
        "eumetsat-credentials",
    )
    values["sentinel"]["credentialsSecret"] = "sentinel-credentials"
    lines = sources(SimpleNamespace(values=values))
    assert lines == [
        "source s2-alps (Sentinel, STAC API https://stac.dataspace.copernicus.eu/v1): "
        "credentials: Secret sentinel-credentials (username, password)",
        "source ecmwf-ifs (ECMWF open data, ifs oper/fc, https://data.ecmwf.int/forecasts): "
        "no credentials (anonymous)",
        "source eumetsat-seviri (EUMETSAT Data Store, EO:EUM:DAT:MSG:HRSEVIRI, "
        "https://api.eumetsat.int): API key: Secret eumetsat-credentials "
        "(consumer_key, consumer_secret)",
    ]
    assert sources(SimpleNamespace(values={"sentinel": {"enabled": False}})) == []
    values["sentinel"]["credentialsSecret"] = ""
    assert sources(SimpleNamespace(values=values))[0].endswith(
        "no credentials set: Copernicus Data Space downloads need an account (credentials)"
    )


def test_the_charts_schema_wants_the_api_key_with_eumetsat_sources(charts_dir) -> None:
    from fedeploy.charts import ChartValuesError

    values = values_of(spec(eumetsat=[EUMETSAT], eumetsat_credentials=KEY), "")
    with pytest.raises(ChartValuesError, match="eumetsatCredentialsSecret"):
        render_chart(charts_dir / "ingestion", values, "ingestion", "fedeploy")
    values["sentinel"]["eumetsatSources"] = []
    with pytest.raises(ChartValuesError):  # enabled with no source of any kind
        render_chart(charts_dir / "ingestion", values, "ingestion", "fedeploy")


def test_the_chart_refuses_two_sources_of_one_name(charts_dir) -> None:
    """Values written by hand (not from a stack file, which refuses it too): one name for an
    ECMWF and a EUMETSAT source fails the render naming both, where the service would refuse
    to start in the CronJob."""
    from fedeploy.charts import ChartError

    values = values_of(
        spec(ecmwf=[ECMWF], eumetsat=[EUMETSAT], eumetsat_credentials=KEY), "eumetsat-credentials"
    )
    values["sentinel"]["eumetsatSources"][0]["name"] = ECMWF["name"]
    with pytest.raises(
        ChartError,
        match=r"sentinel.eumetsatSources\[0\].name \"ecmwf-ifs\" is also sentinel.ecmwfSources\[0\].name",
    ):
        render_chart(charts_dir / "ingestion", values, "ingestion", "fedeploy")
