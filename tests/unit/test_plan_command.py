"""`fedeploy plan` as pipelines run it: reports, exit statuses, and errors that name the place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fedeploy.cli import app
from tests.builders import edit_site, example_stacks

runner = CliRunner()
PAIR = ["aws-dublin", "aws-frankfurt"]


@pytest.fixture()
def project(tmp_path) -> Path:
    """A project with the two aws example sites (Frankfurt replicates to Dublin)."""
    return example_stacks(tmp_path / "stacks", PAIR)


def _edit(stacks: Path, stack: str, edit) -> None:
    edit_site(stacks / f"Pulumi.{stack}.yaml", edit, sort_keys=True)


def _plan(stacks: Path, *args: str):
    return runner.invoke(app, ["plan", "--stacks-dir", str(stacks), "--jobs", "1", *args])


def test_clean_federation_exits_zero_with_order_and_wiring(project):
    result = _plan(project)
    assert result.exit_code == 0, result.output
    assert "deployment order: [aws-dublin]  ->  [aws-frankfurt]" in result.output
    assert (
        "identity=IAM role arn:aws:iam::123456789012:role/aws-frankfurt-ingestion-role"
        in result.output
    )
    assert (
        "aws-frankfurt reads aws-dublin.storage (site.storage.buckets.raw.replicate_to.site)"
        in result.output
    )


def test_json_and_markdown_reports(project, tmp_path):
    result = _plan(project, "--format", "json", "--out", str(tmp_path / "out"))
    report = json.loads(result.output)
    assert report["deployment_order"] == [["aws-dublin"], ["aws-frankfurt"]]
    assert (
        report["sites"]["aws-frankfurt"]["resources"][
            "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
        ]
        == 1
    )
    manifests = tmp_path / "out" / "aws-frankfurt" / "manifests" / "inference.yaml"
    assert any(
        d["kind"] == "HorizontalPodAutoscaler" for d in yaml.safe_load_all(manifests.read_text())
    )
    assert json.loads((tmp_path / "out" / "aws-dublin" / "resources.json").read_text())
    markdown = _plan(project, "--format", "markdown").output
    assert "```mermaid" in markdown and "aws_frankfurt -. replicates raw .-> aws_dublin" in markdown


def test_naming_one_stack_plans_what_it_reads_too(project):
    result = _plan(project, "aws-frankfurt", "--format", "json")
    assert result.exit_code == 0
    assert set(json.loads(result.output)["sites"]) == set(PAIR)


def test_policy_violation_exits_one_naming_resource_and_rule(project):
    _edit(project, "aws-dublin", lambda s: s["cluster"].update(public_access_cidrs=["0.0.0.0/0"]))
    result = _plan(project)
    assert result.exit_code == 1
    assert (
        "VIOLATION [no-open-ingress] aws-dublin-cluster: EKS API endpoint open to the whole internet"
        in result.output
    )


def test_bad_chart_value_exits_one_naming_release_and_key(project, monkeypatch):
    # The stack file refuses every value the charts would (test_stack_values_reach_charts), so
    # a value the chart's schema refuses is made past it here, as a drift between the two would.
    import components.site

    made = components.site.ingestion_values

    def drifted(*args, **kwargs):
        values = made(*args, **kwargs)
        if "mqtt" in values.get("stream", {}):  # aws-frankfurt's stream
            values["stream"]["mqtt"]["topics"] = ["stations, observations"]
        return values

    monkeypatch.setattr(components.site, "ingestion_values", drifted)
    result = _plan(project)
    assert result.exit_code == 1
    assert "[chart-values] aws-frankfurt-ingestion (chart charts/ingestion)" in result.output
    assert "topics" in result.output


def test_invalid_stack_file_exits_two_naming_file_and_key(project):
    _edit(
        project,
        "aws-dublin",
        lambda s: s["storage"]["buckets"]["raw"]["lifecycle"].update(expire_after_days=0),
    )
    result = _plan(project)
    assert result.exit_code == 2
    assert "Pulumi.aws-dublin.yaml" in result.output
    assert "site.storage.buckets.raw.lifecycle.expire_after_days: given 0" in result.output


def test_reference_to_a_missing_stack_exits_two_naming_both(project):
    (project / "Pulumi.aws-dublin.yaml").unlink()
    result = _plan(project)
    assert result.exit_code == 2
    assert "unknown replication target 'aws-dublin'" in result.output
    assert "Pulumi.aws-frankfurt.yaml" in result.output


def test_reference_to_a_missing_output_names_both_stacks_and_the_output(project):
    from fedeploy.offline import federation as fed
    from fedeploy.references import Reference

    plan = fed.load_federation(project)
    plan.references.append(Reference("aws-frankfurt", "aws-dublin", "bucket_registry", "site.test"))
    original = fed.load_federation
    try:
        fed.load_federation = lambda *a, **k: plan  # type: ignore[assignment]
        result = fed.plan_federation(project, jobs=1)
    finally:
        fed.load_federation = original  # type: ignore[assignment]
    (error,) = result.errors
    assert "stack 'aws-frankfurt' reads output 'bucket_registry' of stack 'aws-dublin'" in str(
        error
    )


def test_cycle_in_references_is_an_error():
    from fedeploy.errors import FederationError
    from fedeploy.references import deployment_order

    with pytest.raises(FederationError, match="cycle"):
        deployment_order({"a": {"b"}, "b": {"a"}})


def test_overlapping_address_ranges_are_an_error(project):
    _edit(project, "aws-frankfurt", lambda s: s["network"].update(cidr="10.30.0.0/16"))
    result = _plan(project)
    assert result.exit_code == 2
    # Each file names the other: the message says where to look whichever file one opens.
    assert (
        "site.network.cidr: 10.30.0.0/16 overlaps network.cidr (10.30.0.0/16) of site "
        "'aws-dublin' (Pulumi.aws-dublin.yaml)" in result.output
    )
    assert "of site 'aws-frankfurt' (Pulumi.aws-frankfurt.yaml)" in result.output


def test_schema_command_prints_the_stack_file_schema():
    result = runner.invoke(app, ["schema"])
    schema = json.loads(result.output)
    assert "fedeploy:site" in schema["properties"]["config"]["properties"]
