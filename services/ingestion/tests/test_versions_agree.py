"""One source of truth for the catalog's versions: loopback/src/loopback/versions.py.

The tests run the pypgstac and stac-fastapi-pgstac installed here; the catalog chart deploys
images. All must name the same versions.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import yaml

from loopback import versions

ROOT = Path(__file__).resolve().parents[3]
CHART_VALUES = ROOT / "charts" / "catalog" / "values.yaml"


def chart_values() -> dict:
    assert CHART_VALUES.exists(), f"{CHART_VALUES} is missing: the catalog chart pins the tags"
    return yaml.safe_load(CHART_VALUES.read_text())


def test_the_installed_packages_are_the_tested_versions() -> None:
    assert version("pypgstac") == versions.PGSTAC_VERSION
    assert version("stac-fastapi-pgstac") == versions.STAC_FASTAPI_PGSTAC_VERSION


def test_the_test_extra_pins_the_same_versions() -> None:
    project = tomllib.loads((ROOT / "services/ingestion/pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["optional-dependencies"]["test"]:
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)$", requirement)
        if match:
            pins[match[1]] = match[3]
    assert pins["pypgstac"] == versions.PGSTAC_VERSION
    assert pins["stac-fastapi-pgstac"] == versions.STAC_FASTAPI_PGSTAC_VERSION


def test_the_catalog_chart_deploys_the_tested_versions() -> None:
    values = chart_values()
    api = f"{values['image']['repository']}:{values['image']['tag']}"
    database = values["database"]["internal"]["image"]
    migration = values["migration"]["image"]
    assert api == versions.STAC_FASTAPI_PGSTAC_IMAGE
    assert f"{database['repository']}:{database['tag']}" == versions.PGSTAC_IMAGE
    assert f"{migration['repository']}:{migration['tag']}" == versions.PYPGSTAC_IMAGE
    assert values["migration"]["pgstacVersion"] == versions.PGSTAC_VERSION
