"""The text plan report a platform engineer reads every day: sites in deployment order (the hub
last), each advisory found in several places printed once with its places, counts that say
what they count; and `fedeploy --version`."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from fedeploy import __version__
from fedeploy.cli import app
from fedeploy.plan.formats import as_text


def test_sites_are_in_deployment_order_with_the_hub_last(example_report) -> None:
    text = as_text(example_report)
    shown = re.findall(r"^site (\S+) ", text, re.M)
    order = [name for wave in example_report.to_dict()["deployment_order"] for name in wave]
    assert shown == order and shown[-1] == "eu-hub"


def test_a_repeated_advisory_is_printed_once_with_its_places(example_report) -> None:
    text = as_text(example_report)
    lines = text.splitlines()
    advisories = [line.strip() for line in lines if line.strip().startswith("advisory [")]
    assert len(advisories) == len(set(advisories))
    ingestion = [
        i
        for i, line in enumerate(lines)
        if line.startswith("  advisory [image-digest] ")
        and "not pinned by digest: ghcr.io/fedeploy/ingestion:0.1.0;" in line
    ]
    assert len(ingestion) == 1  # was once per site
    places = lines[ingestion[0] + 1]
    assert places.strip().startswith("at 6 places: aws-dublin/ingestion, aws-frankfurt/ingestion")
    assert "3 advisory finding(s) shared with other sites: see below" in text


def test_counts_say_what_they_count(example_report) -> None:
    verdict = as_text(example_report).rstrip().splitlines()[-1]
    assert re.fullmatch(
        r"clean: 7 site\(s\), \d+ resources \(of them \d+ provider\(s\) and 7 stack "
        r"reference\(s\)\), \d+ advisory finding\(s\), \d+ distinct",
        verdict,
    ), verdict


def test_the_version_is_printed() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"fedeploy {__version__}\n"


def test_every_rule_the_plan_prints_is_described_in_docs_plan() -> None:
    """Six of the rules a plan could print (image-digest, mqtt-tls, the OpenStack and OVHcloud
    ones) had no line in docs/plan.md's table."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    rules: set[str] = set()
    for path in [*(root / "policies").glob("*.py"), *(root / "fedeploy").rglob("*.py")]:
        text = path.read_text()
        rules |= set(re.findall(r'(?:Rule|Finding)\(\s*"([a-z0-9-]+)"', text))
        rules |= set(re.findall(r'rule="([a-z0-9-]+)"', text))
    table = [
        line for line in (root / "docs/plan.md").read_text().splitlines() if line.startswith("| `")
    ]
    described = {
        name for line in table for name in re.findall(r"`([a-z0-9-]+)`", line.split("|")[1])
    }
    assert len(rules) > 20 and rules <= described, sorted(rules - described)
