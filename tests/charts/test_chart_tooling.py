"""fedeploy.charts: rendering, linting and validation behave as the plan and the tests rely on."""

from __future__ import annotations

import re
import shutil

import pytest

from fedeploy.charts import (
    ChartError,
    ChartValuesError,
    lint_chart,
    pod_template,
    render_chart,
    validate_manifests,
)


def _write_chart(root, templates):
    (root / "templates").mkdir(parents=True)
    (root / "Chart.yaml").write_text(
        "apiVersion: v2\nname: probe\nversion: 0.1.0\nappVersion: '1'\n"
    )
    (root / "values.yaml").write_text("name: probe\n")
    for name, text in templates.items():
        (root / "templates" / name).write_text(text)
    return root


def test_render_drops_notes_and_empty_documents_and_parses_the_rest(tmp_path):
    chart = _write_chart(
        tmp_path / "probe",
        {
            "NOTES.txt": "Installed {{ .Release.Name }}.\n",
            "empty.yaml": "{{- if false }}\nkind: Never\n{{- end }}\n",
            "two.yaml": (
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a-{{ .Release.Name }}\n"
                "---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
                "  namespace: {{ .Release.Namespace }}\n"
            ),
        },
    )
    manifests = render_chart(chart, {}, "rel", "space")
    assert [m["metadata"]["name"] for m in manifests] == ["a-rel", "b"]
    assert manifests[1]["metadata"]["namespace"] == "space"


def test_render_reports_schema_violations_as_values_errors(charts_dir):
    with pytest.raises(ChartValuesError, match=r"(?s)charts/catalog.*/site/kind"):
        render_chart(charts_dir / "catalog", {"site": {"kind": "mainframe"}})


def test_render_reports_template_errors_with_the_chart(tmp_path):
    chart = _write_chart(tmp_path / "probe", {"bad.yaml": '{{ fail "no good" }}\n'})
    with pytest.raises(ChartError, match="no good") as raised:
        render_chart(chart)
    assert not isinstance(raised.value, ChartValuesError)


def test_render_rejects_a_missing_chart_and_a_bad_release_name(tmp_path, charts_dir):
    with pytest.raises(ChartError, match="cannot be loaded"):
        render_chart(tmp_path / "absent")
    with pytest.raises(ChartError, match="Not_A_Release"):
        render_chart(charts_dir / "catalog", {}, "Not_A_Release")


def test_render_rejects_a_template_that_is_not_an_object(tmp_path):
    chart = _write_chart(tmp_path / "probe", {"list.yaml": "- a\n- b\n"})
    with pytest.raises(ChartError, match="list.yaml rendered a list"):
        render_chart(chart)


def test_lint_returns_findings_and_warnings_of_a_broken_chart(tmp_path, charts_dir):
    broken = tmp_path / "catalog"
    shutil.copytree(charts_dir / "catalog", broken)
    (broken / "Chart.yaml").write_text(
        re.sub(r"(?m)^version: .*$", "version: one", (broken / "Chart.yaml").read_text())
    )
    findings = lint_chart(broken, {}, strict=True, kube_version="1.29")
    assert any(f.severity == "error" and "version" in f.message for f in findings)
    clean = lint_chart(charts_dir / "catalog", {}, strict=True, kube_version="v1.33.2")
    assert {f.severity for f in clean} <= {"info"}


def test_validate_reports_unknown_fields_with_kind_name_and_path():
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "web", "image": "nginx", "imagePullPolcy": "Always"}]
                },
            },
        },
    }
    errors = validate_manifests([deployment], "1.29")
    assert len(errors) == 1
    assert errors[0].startswith("Deployment/web: spec/template/spec/containers/0")
    assert "imagePullPolcy" in errors[0]
    assert validate_manifests([deployment], "1.29", strict=False) == []


def test_validate_knows_which_fields_a_version_lacks():
    # Sidecar containers (restartPolicy on an init container) arrived in Kubernetes 1.28.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "s", "image": "busybox", "restartPolicy": "Always"}],
            "containers": [{"name": "c", "image": "busybox"}],
        },
    }
    assert validate_manifests([pod], "1.29") == []
    assert validate_manifests([pod], "1.27") != []


def test_validate_reports_objects_without_a_schema_and_rejects_unknown_versions():
    custom = {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert validate_manifests([custom], "1.33") == [
        "Widget/w: no schema for example.org/v1 Widget in Kubernetes 1.33"
    ]
    with pytest.raises(ValueError, match="1.12.*allowed: 1.25"):
        validate_manifests([custom], "1.12")


def test_pod_template_covers_every_workload_kind():
    pod_spec = {"containers": []}
    template = {"metadata": {"labels": {"a": "b"}}, "spec": pod_spec}
    assert pod_template({"kind": "Deployment", "spec": {"template": template}}) == template
    assert pod_template({"kind": "Job", "spec": {"template": template}}) == template
    cronjob = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": template}}}}
    assert pod_template(cronjob) == template
    assert pod_template({"kind": "Pod", "metadata": {}, "spec": pod_spec})["spec"] is pod_spec
    assert pod_template({"kind": "Service", "spec": {}}) is None
