"""The documentation shows what the code does: schema, variables, settings, metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.observation import VARIABLES, message_json_schema
from fedeploy_ingestion.settings import HarvestSettings, IngestSettings

DOCS = Path(__file__).resolve().parents[3] / "docs"
SCHEMA_PAGE = (DOCS / "observation-schema.md").read_text()
INGESTION_PAGE = (DOCS / "ingestion.md").read_text()


def between(text: str, marker: str) -> str:
    return text.split(f"<!-- {marker}:start -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]


def test_the_schema_page_shows_the_message_models_json_schema() -> None:
    shown = between(SCHEMA_PAGE, "json-schema").split("```json\n", 1)[1].split("\n```", 1)[0]
    expected = json.dumps(message_json_schema(), indent=2)
    assert json.loads(shown) == message_json_schema(), f"replace the block with:\n{expected}"


def test_the_schema_page_lists_every_variable_with_its_units_and_range() -> None:
    rows = {}
    for line in between(SCHEMA_PAGE, "variables").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].strip("`") in VARIABLES:
            rows[cells[0].strip("`")] = cells
    assert set(rows) == set(VARIABLES)
    for name, variable in VARIABLES.items():
        _, unit, accepted, bounds = rows[name]
        assert unit == f"`{variable.unit}`"
        assert set(re.findall(r"`([^`]+)`", accepted)) == set(variable.conversions)
        assert bounds == f"{variable.minimum:g} to {variable.maximum:g}"


def test_every_setting_is_documented() -> None:
    for prefix, model in (("INGEST_", IngestSettings), ("HARVEST_", HarvestSettings)):
        for field in model.model_fields:
            assert f"{prefix}{field.upper()}" in INGESTION_PAGE, f"{prefix}{field.upper()}"


def test_every_metric_is_documented() -> None:
    for metric in Metrics().registry.collect():
        name = metric.name + ("_total" if metric.type == "counter" else "")
        assert f"`{name}`" in INGESTION_PAGE, name
