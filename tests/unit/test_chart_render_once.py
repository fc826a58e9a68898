"""The operator's monitoring objects are rendered from the chart reduced to their templates and
its helpers (fedeploy.charts.render_chart's `only`): a release's other templates run once, in
its main render, and what the reduced render gives is what the whole chart gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from fedeploy import charts
from fedeploy.plan.monitoring import OPERATOR_API, OPERATOR_TEMPLATES

ROOT = Path(__file__).resolve().parents[2]


def _whole_chart(chart: Path, values: dict, api: list[str]) -> list[dict]:
    """The whole chart rendered, then filtered to OPERATOR_TEMPLATES (the former way)."""
    loaded = charts._load(chart)
    try:
        rendered = charts._render(loaded, values, "rel", "ns", api)
    finally:
        loaded.close()
    return [
        document
        for template in sorted(rendered)
        if template.rsplit("/templates/", 1)[-1] in OPERATOR_TEMPLATES
        for document in yaml.safe_load_all(rendered[template])
        if document
    ]


@pytest.mark.parametrize("chart", ["catalog", "ingestion"])
def test_the_reduced_render_gives_what_the_whole_chart_gives(chart):
    path = ROOT / "charts" / chart
    reduced = charts.render_chart(path, {}, "rel", "ns", [OPERATOR_API], only=OPERATOR_TEMPLATES)
    assert reduced
    assert reduced == _whole_chart(path, {}, [OPERATOR_API])


def test_the_templates_left_out_do_not_run(tmp_path):
    chart = tmp_path / "ingestion"
    shutil.copytree(ROOT / "charts" / "ingestion", chart)
    (chart / "templates" / "zz-fails.yaml").write_text('{{ fail "this template ran" }}\n')
    with pytest.raises(charts.ChartError, match="this template ran"):
        charts.render_chart(chart, {}, "rel", "ns", [OPERATOR_API])
    monitors = charts.render_chart(chart, {}, "rel", "ns", [OPERATOR_API], only="monitoring.yaml")
    assert monitors
    assert monitors == _whole_chart(ROOT / "charts" / "ingestion", {}, [OPERATOR_API])


def test_a_changed_template_is_rendered_anew(tmp_path):
    chart = tmp_path / "ingestion"
    shutil.copytree(ROOT / "charts" / "ingestion", chart)
    first = charts.render_chart(chart, {}, "rel", "ns", [OPERATOR_API], only="monitoring.yaml")
    monitoring = chart / "templates" / "monitoring.yaml"
    monitoring.write_text(
        monitoring.read_text() + "\n---\napiVersion: v1\nkind: ConfigMap\n"
        "metadata:\n  name: added\n"
    )
    second = charts.render_chart(chart, {}, "rel", "ns", [OPERATOR_API], only="monitoring.yaml")
    assert second[:-1] == first
    assert second[-1]["metadata"]["name"] == "added"


def test_values_already_checked_are_not_checked_again_in_the_reduced_render():
    path = ROOT / "charts" / "ingestion"
    bad = {"monitoring": {"enabled": "auto", "namespace": 7}}
    with pytest.raises(charts.ChartValuesError):
        charts.render_chart(path, bad, "rel", "ns", [OPERATOR_API], only=OPERATOR_TEMPLATES)
    charts.render_chart(
        path, bad, "rel", "ns", [OPERATOR_API], only=OPERATOR_TEMPLATES, schema_checked=True
    )
