"""`plan --out DIR` holds exactly one plan: an earlier run's sites and manifests are gone, two
plans into one folder leave one of them whole, and a folder of other files is refused before
planning (a scan of --out, checkov or a reviewer, saw sites that would not be deployed)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedeploy.cli import app
from fedeploy.plan.run import OUT_MARK, PlanReport, run_plan, write_out
from tests.conftest import STACKS


@pytest.fixture(scope="module")
def reports() -> dict[str, PlanReport]:
    return {name: run_plan(STACKS, [name], jobs=1) for name in ("aws-dublin", "hpc-kajaani")}


def _sites(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_dir())


def test_a_second_plan_replaces_the_first(reports, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_out(reports["aws-dublin"], out)
    assert _sites(out) == ["aws-dublin"]
    write_out(reports["hpc-kajaani"], out)
    assert _sites(out) == ["hpc-kajaani"]
    assert (out / OUT_MARK).read_text() == '{"sites": ["hpc-kajaani"]}\n'


def test_two_plans_at_once_leave_one_whole(reports, tmp_path: Path) -> None:
    out = tmp_path / "out"
    threads = [threading.Thread(target=write_out, args=(r, out)) for r in reports.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _sites(out) in (["aws-dublin"], ["hpc-kajaani"])
    site = _sites(out)[0]
    assert sorted(p.name for p in (out / site).iterdir()) == [
        "manifests",
        "monitoring",
        "outputs.json",
        "resources.json",
    ]


def test_a_folder_of_other_files_is_refused_before_planning(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    result = CliRunner().invoke(app, ["plan", "--stacks-dir", str(STACKS), "--out", str(out)])
    assert result.exit_code == 2
    assert "holds files fedeploy plan did not write (notes.txt)" in result.output
    assert result.stdout == "" and (out / "notes.txt").read_text() == "keep me\n"


def test_the_monitoring_objects_a_cluster_with_the_operator_installs_are_written_too(
    reports, tmp_path: Path
) -> None:
    """With monitoring.enabled auto the plan renders as a cluster without the operator, so the
    monitors, rules and dashboards are in no manifests/ file: they go to monitoring/<release>.yaml."""
    import yaml

    out = tmp_path / "out"
    write_out(reports["aws-dublin"], out)
    written = list(yaml.safe_load_all((out / "aws-dublin/monitoring/ingestion.yaml").read_text()))
    kinds = {m["kind"] for m in written}
    assert {"PrometheusRule", "ConfigMap"} <= kinds
    alerts = {
        rule.get("alert")
        for m in written
        if m["kind"] == "PrometheusRule"
        for group in m["spec"]["groups"]
        for rule in group["rules"]
    }
    assert "IngestSentinelCopiedNothing" in alerts
    manifests = (out / "aws-dublin/manifests/ingestion.yaml").read_text()
    assert "PrometheusRule" not in manifests
