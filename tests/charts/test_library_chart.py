"""The helpers the three charts share live once, in the library chart fedeploy-common, and each
chart's committed copy of it is current, so a chart directory renders on its own."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fedeploy.charts import lint_chart, render_chart
from tests.charts.conftest import ALL_CASES, NAMESPACE

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = "fedeploy-common"
DEPENDENTS = ("catalog", "ingestion", "inference")
_DEFINE = re.compile(r'\{\{-?\s*define\s+"([^"]+)"')


def _chart_deps():
    spec = importlib.util.spec_from_file_location("chart_deps", ROOT / "scripts" / "chart_deps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chart_deps = _chart_deps()


def _defines(chart_dir: Path) -> list[str]:
    return [
        name
        for template in sorted((chart_dir / "templates").glob("*.tpl"))
        for name in _DEFINE.findall(template.read_text())
    ]


def test_the_library_is_a_library_chart_every_service_chart_depends_on(charts_dir):
    library = yaml.safe_load((charts_dir / LIBRARY / "Chart.yaml").read_text())
    assert library["type"] == "library"
    for chart in DEPENDENTS:
        dependencies = chart_deps.local_dependencies(charts_dir / chart)
        assert [(name, version) for name, version, _ in dependencies] == [
            (LIBRARY, library["version"])
        ], chart
        assert dependencies[0][2] == (charts_dir / LIBRARY).resolve()


def test_no_helper_is_defined_twice(charts_dir):
    library = _defines(charts_dir / LIBRARY)
    assert library and all(name.startswith(f"{LIBRARY}.") for name in library)
    shared = {name.removeprefix(f"{LIBRARY}.") for name in library}
    seen: dict[str, str] = {}
    for chart in DEPENDENTS:
        for name in _defines(charts_dir / chart):
            prefix, _, helper = name.partition(".")
            assert prefix == chart, f"{chart} defines {name}: helpers are named for their chart"
            assert helper not in shared, f"{chart} defines {name}, which {LIBRARY} already has"
            assert seen.setdefault(helper, chart) == chart, (
                f"{seen[helper]} and {chart} both define {helper}: it belongs in {LIBRARY}"
            )


def test_each_charts_packaged_library_is_its_source_and_not_ignored(charts_dir):
    for chart in DEPENDENTS:
        assert chart_deps.problems(charts_dir / chart) == [], "run `make chart-deps`"
        version = chart_deps.local_dependencies(charts_dir / chart)[0][1]
        archive = f"charts/{chart}/charts/{LIBRARY}-{version}.tgz"
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", archive], cwd=ROOT, check=False
        ).returncode
        assert ignored == 1, f"{archive} is ignored by git: a fresh clone would not have it"


def test_the_library_lints_clean(charts_dir):
    findings = lint_chart(charts_dir / LIBRARY, {}, strict=True)
    assert [f for f in findings if f.severity in ("warning", "error")] == []


def test_a_repackaged_library_touches_each_chart_that_depends_on_it():
    """`fedeploy affected` reads a change to the library through the archives it repackages: each
    is a change to its chart, so every site releasing one is affected."""
    from fedeploy.gitops.path_rules import classify

    for chart in DEPENDENTS:
        touch = classify(f"charts/{chart}/charts/{LIBRARY}-0.1.0.tgz", "M", frozenset())
        assert (touch.scope, touch.name) == ("chart", chart)


def test_the_check_finds_a_library_change_not_packaged(tmp_path, charts_dir):
    copy = tmp_path / "charts"
    shutil.copytree(charts_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
    helper = copy / LIBRARY / "templates" / "_names.tpl"
    helper.write_text(helper.read_text() + "\n{{/* a change */}}\n")
    (copy / LIBRARY / "templates" / "_new.tpl").write_text("{{/* new */}}\n")
    found = chart_deps.problems(copy / "catalog")
    assert len(found) == 1 and "_names.tpl" in found[0] and "_new.tpl" in found[0]
    (copy / "catalog" / "Chart.yaml").write_text(
        (copy / "catalog" / "Chart.yaml").read_text().replace("    version: 0.", "    version: 9.")
    )
    assert any("missing" in p for p in chart_deps.problems(copy / "catalog"))


@pytest.mark.slow
@pytest.mark.parametrize("chart", DEPENDENTS)
def test_a_copy_of_one_chart_directory_renders_and_lints_as_the_repository(
    tmp_path, charts_dir, chart
):
    """Nothing outside the chart's own directory (its committed charts/ included) is read: no
    `helm dependency update`, no ../fedeploy-common, no archive built on this machine."""
    alone = tmp_path / chart
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", f"charts/{chart}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for file in files:
        if (ROOT / file).is_file():
            target = alone / Path(file).relative_to(f"charts/{chart}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / file, target)
    version = chart_deps.local_dependencies(charts_dir / chart)[0][1]
    assert (alone / "charts" / f"{LIBRARY}-{version}.tgz").is_file()
    for case in [c for c in ALL_CASES if c.chart == chart]:
        ours = render_chart(charts_dir / chart, case.values, case.release, NAMESPACE)
        copied = render_chart(alone, case.values, case.release, NAMESPACE)
        assert _without_random(copied) == _without_random(ours), case
        findings = lint_chart(alone, case.values, kube_version="1.29", namespace=NAMESPACE)
        assert [f for f in findings if f.severity in ("warning", "error")] == [], case


def _without_random(manifests):
    # The catalog's generated database password is random on every render.
    return [
        {**m, "data": {**m["data"], "password": "-"}}
        if m.get("kind") == "Secret" and "password" in m.get("data", {})
        else m
        for m in manifests
    ]
