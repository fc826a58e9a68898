"""lint_chart's `schema_checked`: Helm lint skips only its copies of the values.schema.json check
that render_chart has already made; every other lint rule still runs."""

from __future__ import annotations

import re
import shutil

import pytest

from fedeploy.charts import ChartValuesError, lint_chart, render_chart
from tests.conftest import ROOT

CATALOG = ROOT / "charts" / "catalog"
BAD_VALUES = {"replicaCount": "two"}


def _problems(findings):
    return [f for f in findings if f.severity in ("warning", "error")]


def test_lint_checks_the_values_schema_by_default():
    findings = _problems(lint_chart(CATALOG, BAD_VALUES, kube_version="1.31"))
    # Reported by the values rule and again before rendering the templates.
    assert {f.path for f in findings} >= {"values.yaml", "templates/"}
    assert all("/replicaCount" in f.message for f in findings)


def test_schema_checked_leaves_the_values_schema_to_render_chart():
    with pytest.raises(ChartValuesError, match="/replicaCount"):
        render_chart(CATALOG, BAD_VALUES)
    assert (
        _problems(lint_chart(CATALOG, BAD_VALUES, kube_version="1.31", schema_checked=True)) == []
    )


@pytest.mark.parametrize(
    ("path", "change", "reported"),
    [
        ("Chart.yaml", lambda text: re.sub(r"(?m)^version: .*$", "version: one", text), "version"),
        ("templates/extra.yaml", lambda text: "kind: [unclosed\n", "extra.yaml"),
        ("templates/extra.yaml", lambda text: "{{ .Values.noSuchKey.deeper }}\n", "noSuchKey"),
    ],
)
def test_schema_checked_still_runs_every_other_rule(tmp_path, path, change, reported):
    broken = tmp_path / "catalog"
    shutil.copytree(CATALOG, broken)
    target = broken / path
    target.write_text(change(target.read_text() if target.exists() else ""))
    values = {"replicaCount": 1}
    findings = lint_chart(broken, values, kube_version="1.31", schema_checked=True)
    assert findings == lint_chart(broken, values, kube_version="1.31")
    assert reported in " ".join(f"{f.path} {f.message}" for f in _problems(findings))


def test_schema_checked_gives_the_same_findings_for_values_that_pass_the_schema():
    values = {"replicaCount": 3, "site": {"name": "aws-dublin", "kind": "aws"}}
    render_chart(CATALOG, values)
    assert lint_chart(CATALOG, values, kube_version="1.33", schema_checked=True) == lint_chart(
        CATALOG, values, kube_version="1.33"
    )
