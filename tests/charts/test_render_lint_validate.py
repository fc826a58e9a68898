"""Every chart renders, lints clean (strict) and validates strictly, for every kind of site."""

from __future__ import annotations

import pytest

from fedeploy.charts import ChartValuesError, lint_chart, render_chart, validate_manifests

# Oldest and newest minor versions the sites are expected to run, and the one Helm renders for.
KUBE_VERSIONS = ("1.29", "1.33", "1.36")


def test_renders_objects_of_this_release_only(chart_case, rendered):
    manifests = rendered(chart_case)
    assert manifests, f"{chart_case} rendered nothing"
    for manifest in manifests:
        assert manifest["metadata"]["namespace"] == "fedeploy", manifest["metadata"]["name"]
        assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == chart_case.release


@pytest.mark.parametrize("kube_version", ["1.29", "1.33"])
def test_lints_clean_in_strict_mode(chart_case, kube_version):
    findings = lint_chart(
        chart_case.chart_dir, chart_case.values, strict=True, kube_version=kube_version
    )
    problems = [f for f in findings if f.severity not in ("info",)]
    assert problems == []


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_validates_strictly(chart_case, rendered, kube_version):
    assert validate_manifests(rendered(chart_case), kube_version, strict=True) == []


@pytest.mark.parametrize("chart", ["catalog", "ingestion"])
@pytest.mark.parametrize("kube_version", ["1.29", "1.33"])
def test_defaults_alone_lint_and_validate_clean(charts_dir, chart, kube_version):
    """Catalog and ingestion install with no values (inference needs its bucket)."""
    findings = lint_chart(charts_dir / chart, {}, strict=True, kube_version=kube_version)
    assert [f for f in findings if f.severity != "info"] == []
    manifests = render_chart(charts_dir / chart, {}, chart, "fedeploy")
    assert validate_manifests(manifests, kube_version) == []


def test_inference_without_site_values_names_what_is_missing(charts_dir):
    with pytest.raises(ChartValuesError) as raised:
        render_chart(charts_dir / "inference", {}, "inference", "fedeploy")
    for key in ("/storage/bucket", "/storage/region", "/storage/existingSecret"):
        assert key in str(raised.value)
