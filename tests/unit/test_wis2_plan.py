"""The offline plan renders a site's WIS2 subscription and its report lists the WIS2 topics."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from fedeploy.cli import app
from tests.builders import edit_site, example_stacks

TOPICS = [
    "cache/a/wis2/+/data/core/weather/surface-based-observations/synop",
    "origin/a/wis2/de-dwd/data/core/weather/surface-based-observations/synop",
]


def test_the_plan_report_lists_the_wis2_topics_a_site_subscribes_to(tmp_path: Path) -> None:
    stacks = example_stacks(tmp_path / "stacks", ("aws-dublin", "aws-frankfurt"))
    wis2 = {
        "broker": "mqtts://globalbroker.example.org:8883",
        "topics": TOPICS,
        "download_hosts": ["*.example.org"],
    }
    edit_site(
        stacks / "Pulumi.aws-frankfurt.yaml",
        lambda site: site["services"]["ingestion"]["stream"].update(wis2=wis2),
        sort_keys=True,
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["plan", "--stacks-dir", str(stacks), "--jobs", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"WIS2 topics (broker globalbroker.example.org:8883): {', '.join(TOPICS)}" in result.output
    )
    rendered = (out / "aws-frankfurt" / "manifests" / "ingestion.yaml").read_text()
    wis2 = [
        m
        for m in yaml.safe_load_all(rendered)
        if m and m["metadata"]["name"].endswith("stream-wis2") and m["kind"] == "StatefulSet"
    ]
    assert len(wis2) == 1
    # Dublin subscribes to nothing: no line for it.
    assert result.output.count("WIS2 topics") == 1
