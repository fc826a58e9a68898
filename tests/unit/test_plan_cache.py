"""The plan's cache of planned stacks (fedeploy/offline/cache.py): a kept plan is reused only
while every input of it is the same; a changed stack file, referenced output or code is
planned again. And the warm-up of the provider SDKs before the planner forks its workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fedeploy.offline.cache import PlanCache, code_fingerprint, default_cache, fingerprint_files
from fedeploy.plan.formats import as_json
from fedeploy.plan.run import run_plan
from tests.builders import edit_site, example_stacks
from tests.conftest import ROOT

SITE = "cf-waw"  # a site that reads no other stack: planned alone


def _plan(stacks: Path, cache: PlanCache | None) -> str:
    """The report and every resource's inputs, as text."""
    report = run_plan(stacks, [SITE], jobs=1, cache=cache)
    assert not report.errors, report.errors
    resources = sorted(report.federation.plans[SITE].resources, key=lambda r: (r.type, r.name))
    return as_json(report) + json.dumps(
        [(r.type, r.name, r.inputs) for r in resources], sort_keys=True
    )


def test_an_unchanged_stack_comes_from_the_cache_and_a_changed_one_is_planned_again(tmp_path):
    stacks = example_stacks(tmp_path / "stacks", [SITE, "eu-hub"])
    cache = PlanCache(tmp_path / "cache")
    first = _plan(stacks, cache)
    assert (cache.hits, cache.misses) == (0, 1)
    assert _plan(stacks, cache) == first == _plan(stacks, None)
    assert cache.hits == 1

    new_url = "https://stac.waw.eofed.example.eu"
    edit_site(
        stacks / f"Pulumi.{SITE}.yaml", lambda s: s["services"]["catalog"].update(url=new_url)
    )
    changed = _plan(stacks, cache)
    assert cache.misses == 2, "a changed stack file must be planned again, not read back"
    assert changed == _plan(stacks, None) != first
    assert new_url in changed


def test_a_change_to_an_output_no_stack_reads_replans_only_its_own_stack(tmp_path):
    """aws-dublin's network CIDR changes its `network` output, which neither the hub (it reads
    site, catalog_url, storage and bridge) nor aws-frankfurt (storage) reads: both come from the
    cache, and the report is the one a plan without cache gives."""
    names = [path.name.split(".")[1] for path in (ROOT / "stacks").glob("Pulumi.*.yaml")]
    stacks = example_stacks(tmp_path / "stacks", names)
    cache = PlanCache(tmp_path / "cache")
    assert not run_plan(stacks, jobs=1, cache=cache).errors
    before = run_plan(stacks, jobs=1, cache=cache).federation.plans["aws-dublin"].outputs
    edit_site(
        stacks / "Pulumi.aws-dublin.yaml",
        lambda s: s["network"].update(cidr="10.31.0.0/16"),
    )
    report = run_plan(stacks, jobs=1, cache=cache)
    after = report.federation.plans["aws-dublin"].outputs
    assert before["network"] != after["network"]
    assert {k: v for k, v in before.items() if k != "network"} == {
        k: v for k, v in after.items() if k != "network"
    }
    assert "aws-dublin" not in report.federation.from_cache
    assert {"eu-hub", "aws-frankfurt"} <= report.federation.from_cache
    assert as_json(report) == as_json(run_plan(stacks, jobs=1, cache=None))


def test_the_key_covers_the_outputs_read_the_check_and_the_stack_file(tmp_path):
    stacks = example_stacks(tmp_path / "stacks", [SITE])
    path = stacks / f"Pulumi.{SITE}.yaml"
    cache = PlanCache(tmp_path / "cache")
    key = cache.key(path, {"aws-dublin": {"catalog": "a"}}, None)
    assert key == cache.key(path, {"aws-dublin": {"catalog": "a"}}, None)
    assert key != cache.key(path, {"aws-dublin": {"catalog": "b"}}, None)
    assert key != cache.key(path, {"aws-dublin": {"catalog": "a"}}, run_plan)
    copy = example_stacks(tmp_path / "elsewhere", [SITE]) / path.name
    assert key != cache.key(copy, {"aws-dublin": {"catalog": "a"}}, None)


def test_the_code_fingerprint_changes_with_any_file_the_plan_reads(tmp_path):
    for folder in ("fedeploy", "charts/catalog/templates", "policies"):
        (tmp_path / folder).mkdir(parents=True)
    chart = tmp_path / "charts/catalog/templates/route.yaml"
    chart.write_text("kind: Ingress\n")
    (tmp_path / "images.lock.yaml").write_text("images: {}\n")
    before = code_fingerprint(tmp_path)
    chart.write_text("kind: HTTPRoute\n")
    code_fingerprint.cache_clear()
    after_chart = code_fingerprint(tmp_path)
    (tmp_path / "images.lock.yaml").write_text("images: {catalog: x}\n")
    code_fingerprint.cache_clear()
    after_lock = code_fingerprint(tmp_path)
    assert len({before, after_chart, after_lock}) == 3


def test_an_unreadable_entry_is_a_miss_and_the_cache_can_be_turned_off(tmp_path, monkeypatch):
    cache = PlanCache(tmp_path / "cache")
    cache.put("ab" * 32, ("plan", "checks"))
    assert cache.get("ab" * 32) == ("plan", "checks")
    (tmp_path / "cache" / "ab" / f"{'ab' * 32}.pickle").write_bytes(b"\x80truncated")
    assert cache.get("ab" * 32) is None
    monkeypatch.setenv("FEDEPLOY_PLAN_CACHE", "off")
    assert default_cache() is None
    monkeypatch.setenv("FEDEPLOY_PLAN_CACHE", str(tmp_path / "mine"))
    chosen = default_cache()
    assert chosen is not None and chosen.directory == tmp_path / "mine"


_WARM = """
import sys
from components.providers import SDK_WARM_UP, PROVIDERS, warm_provider_sdks
warm_provider_sdks()
missing = [m for m in PROVIDERS.values() if m not in sys.modules]
missing += [f"{sdk}.{c.rpartition('.')[0]}" for sdk, classes in SDK_WARM_UP.items()
            for c in classes if f"{sdk}.{c.rpartition('.')[0]}" not in sys.modules]
print(missing)
"""


def test_the_provider_warm_up_loads_every_kind_and_the_sdk_modules_they_use():
    done = subprocess.run(
        [sys.executable, "-c", _WARM], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_cache_keeps_within_its_limit_dropping_the_least_recently_used(tmp_path):
    cache = PlanCache(tmp_path / "cache", limit=2500)
    for n, key in enumerate(("a1" * 32, "b2" * 32, "c3" * 32)):
        cache.put(key, "x" * 1000)
        path = tmp_path / "cache" / key[:2] / f"{key}.pickle"
        os.utime(path, (1_000_000 + n, 1_000_000 + n))
    assert cache.get("a1" * 32) == "x" * 1000  # read now: the most recently used
    cache.prune()
    assert cache.get("b2" * 32) is None
    assert cache.get("a1" * 32) is not None and cache.get("c3" * 32) is not None


def test_a_project_outside_fedeploys_own_tree_is_what_the_default_cache_hashes(
    tmp_path, monkeypatch
):
    # A wheel-installed fedeploy plans a project that is not its source tree: the project's
    # charts must be in the key (a changed chart would otherwise be answered from the cache),
    # and so must the running fedeploy's own code wherever it is installed.
    import fedeploy.offline.cache as cache_module

    project = tmp_path / "project"
    (project / "charts" / "catalog").mkdir(parents=True)
    chart = project / "charts" / "catalog" / "values.yaml"
    chart.write_text("replicas: 1\n")
    monkeypatch.setattr(cache_module, "project_dir", lambda: project)
    monkeypatch.setenv("FEDEPLOY_PLAN_CACHE", str(tmp_path / "cache"))
    chosen = default_cache()
    assert chosen is not None and chosen.root == project
    names = cache_module.fingerprint_files(project)
    assert "charts/catalog/values.yaml" in names
    assert "pkg:fedeploy/offline/cache.py" in names
    assert "pkg:components/site.py" in names
    before = code_fingerprint(project)
    chart.write_text("replicas: 2\n")
    code_fingerprint.cache_clear()
    assert code_fingerprint(project) != before


def _small_project(root: Path) -> Path:
    """A project of one chart (with Helm's usual .helmignore) and an image lock."""
    templates = root / "charts" / "catalog" / "templates"
    templates.mkdir(parents=True)
    (root / "charts" / "catalog" / ".helmignore").write_text("*.bak\n*.orig\n")
    (templates / "route.yaml").write_text("kind: Ingress\n")
    (root / "images.lock.yaml").write_text("images: {}\n")
    return templates / "route.yaml"


def test_a_plan_is_not_kept_once_the_code_it_hashed_changed(tmp_path, capsys):
    # Review watch27 finding 1 (and S1): a chart saved, or a template added by a `git checkout`,
    # between the key and the put would keep the new chart's result under the old code's key.
    route = _small_project(tmp_path / "project")
    code_fingerprint.cache_clear()
    stacks = example_stacks(tmp_path / "stacks", [SITE])
    cache = PlanCache(tmp_path / "cache", root=tmp_path / "project")
    key = cache.key(stacks / f"Pulumi.{SITE}.yaml", {}, None)
    cache.put(key, "kept")
    assert cache.get(key) == "kept"
    route.write_text("kind: HTTPRoute\n")
    cache.put(key + "1", "edited")
    (route.parent / "zz-marker.yaml").write_text("kind: ConfigMap\n")
    cache.put(key + "2", "added")
    assert cache.get(key + "1") is None and cache.get(key + "2") is None
    assert cache.refused == 2
    assert capsys.readouterr().err.count("code changed during the plan") == 1
    code_fingerprint.cache_clear()
    fresh = PlanCache(tmp_path / "cache", root=tmp_path / "project")
    fresh.put(fresh.key(stacks / f"Pulumi.{SITE}.yaml", {}, None), "new")
    assert fresh.refused == 0


def test_editor_litter_is_not_hashed_and_a_template_edit_still_is(tmp_path):
    # Review watch27 finding 7: a swap file, a backup or vim's 4913 probe would miss the cache.
    route = _small_project(tmp_path)
    code_fingerprint.cache_clear()
    before = code_fingerprint(tmp_path)
    for litter in (".route.yaml.swp", "route.yaml~", "4913", ".#route.yaml", "route.yaml.bak"):
        (route.parent / litter).write_text("x\n")
    (tmp_path / "charts" / "catalog" / "values.yaml.orig").write_text("x\n")
    code_fingerprint.cache_clear()
    assert code_fingerprint(tmp_path) == before
    names = fingerprint_files(tmp_path)
    assert "charts/catalog/templates/route.yaml" in names
    assert sorted(n for n in names if n.startswith("charts/")) == [
        "charts/catalog/.helmignore",
        "charts/catalog/templates/route.yaml",
    ]
    route.write_text("kind: HTTPRoute\n")
    code_fingerprint.cache_clear()
    assert code_fingerprint(tmp_path) != before


def test_the_key_lists_installed_distributions_not_the_scripts_folder(tmp_path, monkeypatch):
    # A script run from a folder holding a .dist-info (sys.path[0]) keys plans as fedeploy does.
    (tmp_path / "stray-1.0.dist-info").mkdir()
    import fedeploy.offline.cache as cache_module

    before = cache_module._distributions()
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path[1:]])
    assert cache_module._distributions() == before
    assert before and not any("stray" in name for name in before)


def test_code_changed_sees_new_files_and_distributions_but_not_editor_litter(tmp_path, monkeypatch):
    # The watcher checks it every second and before each plan (review watch27 1, 7, S2).
    import fedeploy.offline.cache as cache_module

    route = _small_project(tmp_path / "project")
    site = tmp_path / "site-packages"
    (site / "helm_python-1.0.dist-info").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [sys.path[0], str(site), *sys.path[1:]])
    project = tmp_path / "project"
    code_fingerprint.cache_clear()
    code_fingerprint(project)
    assert not cache_module.code_changed(project)
    (route.parent / ".route.yaml.swp").write_text("x\n")
    assert not cache_module.code_changed(project)
    (site / "helm_python-1.0.dist-info").rename(site / "helm_python-1.1.dist-info")
    assert cache_module.code_changed(project)
    code_fingerprint.cache_clear()
    code_fingerprint(project)
    (route.parent / "new.yaml").write_text("kind: ConfigMap\n")
    assert cache_module.code_changed(project)


def test_a_replanned_stack_renders_only_the_releases_whose_inputs_changed(tmp_path, monkeypatch):
    """A stack planned again because its catalog moved: the catalog's release is rendered, linted
    and validated again; its other releases' checks come from the cache, and the report is the
    one a plan without any cache makes. A chart edit is a new key for its releases."""
    import fedeploy.charts

    rendered: list[str] = []
    render = fedeploy.charts.render_chart

    def counting(chart_dir, values, name, namespace, *args, **options):  # type: ignore[no-untyped-def]
        if not args and not options:  # the release's own render (not the operator objects')
            rendered.append(name)
        return render(chart_dir, values, name, namespace, *args, **options)

    monkeypatch.setattr(fedeploy.charts, "render_chart", counting)
    stacks = example_stacks(tmp_path / "stacks", [SITE])
    cache = PlanCache(tmp_path / "cache")
    _plan(stacks, cache)
    releases = sorted(rendered)
    assert len(releases) >= 3 and "catalog" in releases, releases

    edit_site(
        stacks / f"Pulumi.{SITE}.yaml",
        lambda s: s["services"]["catalog"].update(url="https://stac.waw.eofed.example.eu"),
    )
    rendered.clear()
    changed = _plan(stacks, cache)
    assert rendered == ["catalog"], "only the release whose values changed is rendered again"
    rendered.clear()
    assert changed == _plan(stacks, None)
    assert sorted(rendered) == releases, "without a cache every release is rendered"

    # The stack replanned (its key's code fingerprint changed) with its releases' values the
    # same: every release from the cache; the code of the checks changed too (a chart, a
    # template, fedeploy, Helm, the schemas): every release rendered again.
    rendered.clear()
    monkeypatch.setattr("fedeploy.offline.cache.code_fingerprint", lambda root: "stack code")
    _plan(stacks, cache)
    assert rendered == []
    monkeypatch.setattr("fedeploy.plan.checks.code_fingerprint", lambda root: "checks' code")
    monkeypatch.setattr("fedeploy.offline.cache.code_fingerprint", lambda root: "stack code 2")
    _plan(stacks, cache)
    assert sorted(rendered) == releases


def test_what_helm_loads_from_a_chart_is_hashed_dotfiles_and_linked_folders_too(
    tmp_path, monkeypatch
):
    # Review rcache29 F2: Helm loads a chart's dotfiles (not templates/.*) and follows a
    # symlinked folder; the fingerprint skipped both, so a release kept in the cache stayed
    # stale after such a file changed.
    _small_project(tmp_path)
    chart = tmp_path / "charts" / "catalog"
    elsewhere = tmp_path / "shared-files"
    elsewhere.mkdir()
    (elsewhere / "banner.txt").write_text("one\n")
    (chart / "files").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(chart, target_is_directory=True)  # walked once, not forever
    (chart / ".settings").write_text("a: 1\n")
    (chart / "templates" / ".hidden.yaml").write_text("x\n")  # Helm leaves templates/.* out
    code_fingerprint.cache_clear()
    names = fingerprint_files(tmp_path)
    assert "charts/catalog/files/banner.txt" in names
    assert "charts/catalog/.settings" in names
    assert "charts/catalog/templates/.hidden.yaml" not in names
    before = code_fingerprint(tmp_path)
    for edit in (
        lambda: (elsewhere / "banner.txt").write_text("two\n"),
        lambda: (chart / ".settings").write_text("a: 2\n"),
        lambda: monkeypatch.setenv("HELM_C_LIB", str(chart / ".settings")),
    ):
        edit()
        code_fingerprint.cache_clear()
        after = code_fingerprint(tmp_path)
        assert after != before
        before = after


def test_a_release_checked_in_another_copy_of_the_project_is_not_its_answer(tmp_path):
    # Review rcache29 F1: the key held the chart's name only; a chart's findings name the folder
    # it was rendered from, so a copy's plan (`fedeploy diff`) answered for the project's.
    from fedeploy.plan.checks import RenderedRelease, _release_key, release_checks_kept_in

    release = RenderedRelease(name="catalog", chart="charts/catalog", namespace="c", values={})
    with release_checks_kept_in(PlanCache(tmp_path / "cache")):
        here = _release_key(release, ROOT / "charts/catalog", "catalog", "1.31")
        copy = _release_key(release, tmp_path / "copy/charts/catalog", "catalog", "1.31")
        assert here and copy and here != copy
        assert here != _release_key(release, ROOT / "charts/catalog", "catalog", "1.30")
        release.values = {"a": float("nan")}  # JSON cannot spell it: never kept
        assert _release_key(release, ROOT / "charts/catalog", "catalog", "1.31") is None
    assert _release_key(release, ROOT / "charts/catalog", "catalog", "1.31") is None


def test_a_release_entry_of_another_shape_is_a_miss_not_a_crash(tmp_path, monkeypatch):
    # Review rcache29 F5: a readable entry of the wrong shape crashed the plan (ValueError) or,
    # as (None, []), dropped the release from the report without a word.
    stacks = example_stacks(tmp_path / "stacks", [SITE])
    expected = _plan(stacks, None)
    cache = PlanCache(tmp_path / "cache")
    _plan(stacks, cache)
    import pickle

    entries = sorted((tmp_path / "cache").glob("*/*.pickle"))
    for bad in ((None, []), ("x",), ([], [], []), ((1, 2, 3), [])):
        for path in entries:
            value = pickle.loads(path.read_bytes())
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], list):
                path.write_bytes(pickle.dumps(bad))  # a release entry
        monkeypatch.setattr(
            "fedeploy.offline.cache.code_fingerprint", lambda root, bad=bad: repr(bad)
        )
        assert _plan(stacks, cache) == expected


def test_a_cache_opened_after_the_code_changed_takes_the_fingerprint_again(tmp_path):
    # Review rcache29 S1: a process that planned, then planned again after a chart was edited,
    # keyed the second plan with the first fingerprint (its releases came back stale).
    route = _small_project(tmp_path / "project")
    root = tmp_path / "project"
    code_fingerprint.cache_clear()
    PlanCache(tmp_path / "cache", root=root)
    before = code_fingerprint(root)
    route.write_text("kind: HTTPRoute\n")
    assert code_fingerprint(root) == before  # taken once per process...
    PlanCache(tmp_path / "cache", root=root)
    assert code_fingerprint(root) != before  # ...and again by a cache opened after the edit
