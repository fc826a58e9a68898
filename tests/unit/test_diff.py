"""`fedeploy diff` over a table of changes on a temporary git repository holding the project's
own program, charts and three of the example stacks: each case is one commit on the base, and
asserts exactly which resources and manifest objects the diff reports.

Planning a revision takes seconds, so each tree is planned once for the whole module (a case
whose tree equals the base's is not planned again)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.diff import copy_project
from fedeploy.diff.compare import (
    MISSING,
    SECRET,
    FederationDiff,
    InputChange,
    ManifestChange,
    ResourceChange,
    RevisionPlan,
    SiteDiff,
    diff_revisions,
    input_changes,
    mask_secret_data,
    plan_revision,
    replacement_reasons,
)
from fedeploy.diff.formats import as_json, as_markdown, as_text
from tests.builders import git

ROOT = Path(__file__).resolve().parents[2]
STACKS = ["aws-dublin", "aws-frankfurt", "hpc-kajaani"]
NAMESPACE = "kubernetes:core/v1:Namespace"
RELEASE = "kubernetes:helm.sh/v3:Release"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


class Project:
    """The repository and a planner that plans each distinct tree once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.plans: dict[str, RevisionPlan] = {}
        self.planned: list[str] = []

    def planner(self, tree: Path, stacks_dir: str, commit: str) -> RevisionPlan:
        tree_id = git(self.path, "rev-parse", f"{commit}^{{tree}}")
        if tree_id not in self.plans:
            self.planned.append(commit)
            self.plans[tree_id] = plan_revision(tree, stacks_dir, commit)
        cached = self.plans[tree_id]
        return RevisionPlan(
            commit, cached.stacks, cached.order, cached.readers, cached.secrets, cached.errors
        )

    def commit_on_base(self, name: str, change) -> str:
        git(self.path, "checkout", "-q", "-B", name, "base")
        change(self.path)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", name)
        return git(self.path, "rev-parse", "HEAD")

    def diff(self, head: str, **kwargs) -> FederationDiff:
        return diff_revisions(self.path, "base", head, planner=self.planner, **kwargs)


def change_a_stack_key(repo: Path) -> None:
    edit(repo / "stacks/Pulumi.aws-frankfurt.yaml", "replicas: 2", "replicas: 3")


def make_a_stack_invalid(repo: Path) -> None:
    edit(repo / "stacks/Pulumi.aws-dublin.yaml", "kind: aws", "kind: mainframe")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    repo = tmp_path_factory.mktemp("diff") / "repo"
    copy_project(repo, STACKS)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "tag", "base")
    return Project(repo)


def changed(site: SiteDiff) -> dict[str, list[str]]:
    """What a site's diff names: resource keys and manifest objects by status."""
    named: dict[str, list[str]] = {}
    for r in site.resources:
        named.setdefault(f"resources {r.status}", []).append(r.key)
    for m in site.manifests:
        named.setdefault(f"manifests {m.status}", []).append(f"{m.release}: {m.key}")
    return named


# ---- the table of changes ------------------------------------------------------------------------


@pytest.mark.slow
def test_nothing_changed_is_exit_0_and_plans_one_tree(project: Project) -> None:
    head = project.commit_on_base("nothing", lambda repo: None)
    before = len(project.planned)
    diff = project.diff(head)
    assert diff.errors == []
    assert diff.exit_code == 0
    assert {name: site.status for name, site in diff.sites.items()} == dict.fromkeys(
        STACKS, "unchanged"
    )
    assert diff.waves == [["aws-dublin", "hpc-kajaani"], ["aws-frankfurt"]]
    assert len(project.planned) - before <= 1  # equal trees: planned once


@pytest.mark.slow
def test_a_chart_value_changes_only_the_rendered_objects_of_every_site_releasing_it(
    project: Project,
) -> None:
    head = project.commit_on_base(
        "chart-value",
        lambda repo: edit(
            repo / "charts/catalog/values.yaml", "dbMaxConnections: 10", "dbMaxConnections: 12"
        ),
    )
    diff = project.diff(head)
    assert diff.exit_code == 1
    for stack in STACKS:
        site = diff.sites[stack]
        assert changed(site) == {
            "manifests changed": ["catalog: apps/v1 Deployment fedeploy/catalog"]
        }, stack
        (manifest,) = site.manifests
        assert "-          value: '10'\n+          value: '12'\n" in manifest.diff
        assert site.summary == "+0 ~0 -0 resources, 1 manifest changed"


@pytest.mark.slow
def test_a_components_code_changes_one_resource_per_site_with_its_input_path(
    project: Project,
) -> None:
    def change(repo: Path) -> None:
        edit(
            repo / "components/site.py",
            '"pod-security.kubernetes.io/audit": "restricted",',
            '"pod-security.kubernetes.io/audit": "restricted",\n                    "fedeploy.io/team": "eo",',
        )

    diff = project.diff(project.commit_on_base("component", change))
    for stack in STACKS:
        site = diff.sites[stack]
        key = f"{NAMESPACE}::{stack}-namespace"
        assert changed(site) == {"resources changed": [key]}, stack
        (resource,) = site.resources
        assert [c.to_dict() for c in resource.inputs] == [
            {"path": "metadata.labels.fedeploy.io/team", "new": "eo", "secret": False}
        ]
        assert resource.replaced_by == []  # a label is not the object's identity


@pytest.mark.slow
def test_a_stack_file_key_changes_that_sites_release_and_its_objects_only(project: Project) -> None:
    diff = project.diff(project.commit_on_base("stack-key", change_a_stack_key))
    assert [n for n, s in diff.sites.items() if s.status != "unchanged"] == ["aws-frankfurt"]
    site = diff.sites["aws-frankfurt"]
    assert changed(site) == {
        "resources changed": [f"{RELEASE}::aws-frankfurt-ingestion"],
        "manifests changed": ["ingestion: apps/v1 StatefulSet fedeploy/ingestion-stream"],
    }
    (resource,) = site.resources
    assert [(c.path, c.old, c.new) for c in resource.inputs] == [("values.stream.replicas", 2, 3)]
    assert "-  replicas: 2\n+  replicas: 3\n" in site.manifests[0].diff


@pytest.mark.slow
def test_a_secrets_ciphertext_shows_as_a_changed_secret_and_never_its_value(
    project: Project,
) -> None:
    old = "v1:aHBja3ViZQ==:aHBjLWt1YmVjb25maWctY2lwaGVydGV4dA=="
    new = "v1:aHBja3ViZQ==:bmV3LWt1YmVjb25maWctY2lwaGVydGV4dA=="

    def change(repo: Path) -> None:
        edit(repo / "stacks/Pulumi.hpc-kajaani.yaml", old, new)

    diff = project.diff(project.commit_on_base("secret", change))
    assert [n for n, s in diff.sites.items() if s.status != "unchanged"] == ["hpc-kajaani"]
    site = diff.sites["hpc-kajaani"]
    assert changed(site) == {}
    assert site.secrets == [("fedeploy:site.cluster.kubeconfig", "changed")]
    assert diff.exit_code == 1
    for text in (as_text(diff), as_json(diff), as_markdown(diff)):
        assert "1 secret changed" in text
        assert new not in text and old not in text and "bmV3" not in text


@pytest.mark.slow
def test_a_renamed_site_is_one_stack_removed_and_one_added(project: Project) -> None:
    def change(repo: Path) -> None:
        (repo / "stacks/Pulumi.hpc-kajaani.yaml").rename(repo / "stacks/Pulumi.hpc-oulu.yaml")

    diff = project.diff(project.commit_on_base("rename", change))
    assert diff.removed == ["hpc-kajaani"]
    assert diff.sites["hpc-kajaani"].status == "removed"
    assert diff.sites["hpc-kajaani"].wave is None
    assert diff.sites["hpc-oulu"].status == "added"
    assert diff.waves == [["aws-dublin", "hpc-oulu"], ["aws-frankfurt"]]
    removed = {r.key for r in diff.sites["hpc-kajaani"].resources}
    added = {r.key for r in diff.sites["hpc-oulu"].resources}
    assert {r.status for r in diff.sites["hpc-kajaani"].resources} == {"removed"}
    assert {k.replace("hpc-kajaani", "hpc-oulu") for k in removed} == added
    assert f"{NAMESPACE}::hpc-oulu-namespace" in added
    assert {m.status for m in diff.sites["hpc-oulu"].manifests} == {"added"}
    assert diff.sites["hpc-kajaani"].outputs and all(
        o.new is MISSING for o in diff.sites["hpc-kajaani"].outputs
    )
    text = as_text(diff)
    assert text.index("wave 2") < text.index("removed stacks") < text.index("hpc-kajaani: stack")


@pytest.mark.slow
def test_the_sites_asked_for_are_the_only_ones_shown_and_an_unknown_one_is_an_error(
    project: Project,
) -> None:
    head = git(project.path, "rev-parse", "chart-value")
    diff = project.diff(head, sites=["aws-frankfurt"])
    assert list(diff.sites) == ["aws-frankfurt"]
    assert diff.waves == [["aws-frankfurt"]]
    wrong = project.diff(head, sites=["nowhere"])
    assert wrong.exit_code == 2
    assert "no stack 'nowhere' at either revision" in wrong.errors[0]


@pytest.mark.slow
def test_an_invalid_stack_at_the_head_is_exit_2_naming_the_file(project: Project) -> None:
    diff = project.diff(project.commit_on_base("invalid", make_a_stack_invalid))
    assert diff.exit_code == 2
    assert any("Pulumi.aws-dublin.yaml" in e and "kind" in e for e in diff.errors)


@pytest.mark.slow
def test_the_command_exit_status_forms_and_bytes_are_stable(
    project: Project, tmp_path, monkeypatch
) -> None:
    import fedeploy.diff.compare as diff_module
    from fedeploy import cli

    # The command plans with plan_revision: route it through the module's cache.
    monkeypatch.setattr(diff_module, "plan_revision", project.planner)
    # Its own branches (the same trees as the tests above, so planned once): it runs alone too.
    project.commit_on_base("stack-key", change_a_stack_key)
    project.commit_on_base("nothing", lambda repo: None)
    project.commit_on_base("invalid", make_a_stack_invalid)
    runner = CliRunner()
    args = ["diff", "--repo", str(project.path), "--base", "base"]
    first = runner.invoke(
        cli.app, [*args, "--head", "stack-key", "-f", "json", "--out", str(tmp_path)]
    )
    second = runner.invoke(cli.app, [*args, "--head", "stack-key", "-f", "json"])
    nothing = runner.invoke(cli.app, [*args, "--head", "nothing", "-f", "markdown"])
    invalid = runner.invoke(cli.app, [*args, "--head", "invalid"])
    no_base = runner.invoke(cli.app, ["diff", "--repo", str(project.path)])
    assert first.exit_code == 1, first.output
    assert first.stdout == second.stdout
    data = json.loads(first.stdout)
    assert data["sites"]["aws-frankfurt"]["summary"] == "+0 ~1 -0 resources, 1 manifest changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "comment.md",
        "diff.json",
        "diff.md",
        "diff.txt",
    ]
    assert (tmp_path / "diff.json").read_text() == first.stdout
    assert nothing.exit_code == 0, nothing.output
    assert "no change on any of 3 site(s)" in nothing.stdout
    assert invalid.exit_code == 2
    assert no_base.exit_code == 2 and "--base" in no_base.output


# ---- pure pieces ----------------------------------------------------------------------------------


def test_secret_inputs_read_secret_on_both_sides_and_only_their_presence_shows() -> None:
    old = {
        "inputs": {"a": 1, "token": SECRET, "data": {"k": SECRET}},
        "secret_inputs": ["token", "data"],
    }
    new = {
        "inputs": {"a": 2, "token": SECRET, "data": {"k": SECRET, "j": SECRET}},
        "secret_inputs": ["token", "data"],
    }
    assert input_changes(old, new) == [
        InputChange("a", 1, 2),
        InputChange("data.j", MISSING, SECRET, secret=True),
    ]
    # A value that becomes secret is shown as [secret] on both sides, never in plain.
    became = {
        "inputs": {"a": 1, "token": SECRET, "data": {"k": SECRET}, "pw": SECRET},
        "secret_inputs": ["token", "data", "pw"],
    }
    was = {
        "inputs": {"a": 1, "token": SECRET, "data": {"k": SECRET}, "pw": "hunter2"},
        "secret_inputs": ["token", "data"],
    }
    (change,) = input_changes(was, became)
    assert change == InputChange("pw", SECRET, SECRET, secret=True)
    assert "hunter2" not in json.dumps(change.to_dict())


def test_replacement_only_where_the_table_knows_it() -> None:
    def paths(*names: str) -> list[InputChange]:
        return [InputChange(n, 1, 2) for n in names]

    assert replacement_reasons("aws:ec2/vpc:Vpc", paths("cidrBlock", "tags.a")) == ["cidrBlock"]
    assert replacement_reasons("aws:ec2/vpc:Vpc", paths("tags.a")) == []
    assert replacement_reasons("aws:eks/nodeGroup:NodeGroup", paths("instanceTypes[0]")) == [
        "instanceTypes[0]"
    ]
    assert replacement_reasons(NAMESPACE, paths("metadata.name", "metadata.labels.x")) == [
        "metadata.name"
    ]
    assert replacement_reasons(RELEASE, paths("name", "values.x")) == []
    assert replacement_reasons("aws:unknown/thing:Thing", paths("anything")) == []
    assert replacement_reasons("random:index/randomPassword:RandomPassword", paths("length")) == [
        "length"
    ]


def test_secret_objects_are_masked_in_manifest_diffs() -> None:
    old = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "b2xk", "b": "c2FtZQ=="}}
    new = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "bmV3", "b": "c2FtZQ=="}}
    a, b = mask_secret_data(old, new)
    assert a["data"] == {"a": SECRET, "b": SECRET}
    assert b["data"] == {"a": "[secret, changed]", "b": SECRET}
    from fedeploy.diff.compare import manifest_changes

    (change,) = manifest_changes({"r": {"v1 Secret s": old}}, {"r": {"v1 Secret s": new}})
    assert "b2xk" not in change.diff and "bmV3" not in change.diff
    assert "+  a: '[secret, changed]'" in change.diff


def _big_diff(sites: int) -> FederationDiff:
    body = "\n".join(f"+  line{i}: {'x' * 60}" for i in range(200))
    diff = FederationDiff("a" * 40, "b" * 40, [[f"site-{i:03d}" for i in range(sites)]], {})
    for i in range(sites):
        name = f"site-{i:03d}"
        diff.sites[name] = SiteDiff(
            name,
            "changed",
            1,
            resources=[
                ResourceChange(
                    f"t::{name}", "t", name, "changed", [InputChange("v", "x" * 500, "y")]
                )
            ],
            manifests=[ManifestChange("catalog", "apps/v1 Deployment ns/catalog", "changed", body)],
        )
    return diff


def test_markdown_fits_a_comment_by_summarising_and_points_at_the_full_artifact() -> None:
    small = as_markdown(_big_diff(2))
    assert "<details><summary><code>site-000</code>" in small and "line199" in small
    assert "Shortened" not in small
    big = _big_diff(60)
    comment = as_markdown(big, full_url="https://ci.example/artifacts/diff.md")
    assert len(comment) < 65_536
    assert "Shortened to fit a comment" in comment
    assert "[the full diff](https://ci.example/artifacts/diff.md)" in comment
    assert "| 1 | `site-059` | +0 ~1 -0 resources, 1 manifest changed |" in comment
    full = as_markdown(big, limit=None)
    assert len(full) > 65_536 and "line199" in full


def test_text_colours_only_when_asked() -> None:
    diff = _big_diff(1)
    assert "\033[" not in as_text(diff)
    coloured = as_text(diff, colour=True)
    assert "\033[33m    ~ t::site-000" in coloured


def test_the_replacement_table_in_the_docs_is_the_codes() -> None:
    from fedeploy.diff.compare import KUBERNETES_IDENTITY, REPLACEMENTS

    text = (ROOT / "docs/plan.md").read_text()
    rows = {}
    for line in text.split("| resource type | paths that force replacement |", 1)[1].splitlines()[
        2:
    ]:
        if not line.startswith("|"):
            break
        typ, paths = (cell.strip() for cell in line.strip("|").split("|"))
        rows[typ] = paths
    expected = {
        f"`{typ}`": "any input" if props == ("*",) else ", ".join(f"`{p}`" for p in props)
        for typ, props in REPLACEMENTS.items()
    }
    expected["any `kubernetes:` object but a Helm release"] = ", ".join(
        f"`{p}`" for p in KUBERNETES_IDENTITY
    )
    assert rows == expected


def test_a_changed_output_names_the_stacks_that_read_it_and_a_secret_stays_masked() -> None:
    from fedeploy.diff.compare import PlannedStack, compare

    def revision(commit: str, bucket: str, token: str) -> RevisionPlan:
        stacks = {
            "aws-dublin": PlannedStack(
                {}, {"storage": {"bucket": bucket}, "kubeconfig": token}, {}
            ),
            "aws-frankfurt": PlannedStack({}, {"storage": {"bucket": "f"}}, {}),
        }
        readers = {("aws-dublin", "storage"): ["aws-frankfurt", "eu-hub"]}
        return RevisionPlan(commit, stacks, [["aws-dublin"], ["aws-frankfurt"]], readers)

    diff = compare(revision("a" * 40, "raw-1", SECRET), revision("b" * 40, "raw-2", SECRET))
    (output,) = diff.sites["aws-dublin"].outputs
    assert (output.output, output.old, output.new) == (
        "storage",
        {"bucket": "raw-1"},
        {"bucket": "raw-2"},
    )
    assert output.read_by == ["aws-frankfurt", "eu-hub"]
    assert diff.sites["aws-frankfurt"].status == "unchanged"
    assert (
        '~ output storage: {"bucket": "raw-1"} → {"bucket": "raw-2"} (read by aws-frankfurt, eu-hub)'
        in as_text(diff)
    )
    assert (
        diff.sites["aws-dublin"].summary
        == "+0 ~0 -0 resources, 0 manifests changed, 1 output changed"
    )


def test_a_repo_that_is_not_a_git_repository_is_named_as_such(tmp_path) -> None:
    from fedeploy.errors import FedeployError

    with pytest.raises(FedeployError, match="is not a git repository") as raised:
        diff_revisions(tmp_path, "HEAD")
    assert "fetch it first" not in str(raised.value)  # not "the ref is missing from this clone"


@pytest.mark.parametrize("outside", ["../etc", "/etc", "stacks/../../etc"])
def test_a_stacks_dir_outside_the_repository_is_refused_before_any_git_call(
    outside: str, tmp_path
) -> None:
    from fedeploy.errors import FedeployError

    with pytest.raises(FedeployError, match="must be a directory inside the repository"):
        diff_revisions(tmp_path, "HEAD", stacks_dir=outside)  # tmp_path is no repository


def test_an_out_directory_that_cannot_be_made_is_a_usage_error_before_planning(tmp_path) -> None:
    from fedeploy import cli

    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(
        cli.app,
        ["diff", "--repo", str(tmp_path), "--base", "HEAD", "--out", str(tmp_path / "a-file/out")],
    )
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and "cannot create the directory" in result.output
    assert "git repository" not in result.output  # refused before the repository is read


# The review's repro (issue 27, second review, finding 2): a recorded plan's error that ends the
# code span at a bare CR and opens an HTML comment swallowing the verdict.
HOSTILE = "plan crashed\r\r## fedeploy diff\r\rno change on any site\r\r<!-- " + "x" * 10
HOSTILE_KEY = "k\r\r````\r</details>\r\r<!-- [x](https://e.invalid) ![p](https://e.invalid/p.png)"


def _outside_fences(markdown: str) -> str:
    """The rule the comment is checked by (no renderer in the environment): no line end but
    `\\n` and no control character; every fenced block closes only at its own fence (no line
    inside starts with as many backticks). Returns the text outside the fences."""
    assert not any(c in markdown for c in "\r\x0b\x0c\x85\u2028\u2029")
    fence, outside = 0, []
    for line in markdown.split("\n"):
        ticks = len(line) - len(line.lstrip("`"))
        if not fence and ticks >= 3:
            fence = ticks
        elif fence and ticks >= fence:
            assert line == "`" * fence, line  # only the block's own closing fence
            fence = 0
        elif not fence:
            outside.append(line)
    assert not fence
    return "\n".join(outside)


def test_a_recorded_plans_text_reaches_the_comment_only_as_literal_text(tmp_path: Path) -> None:
    from fedeploy.diff.compare import compare, read_plan_out
    from fedeploy.gitops.planned_sites import read_recorded_plan

    recorded = tmp_path / "plan"
    (recorded / "aws-dublin").mkdir(parents=True)
    (recorded / "plan.json").write_text(
        json.dumps({"sites": {"aws-dublin": {}}, "errors": [HOSTILE], "deployment_order": []})
    )
    resource = {"type": "t", "name": HOSTILE_KEY, "inputs": {HOSTILE_KEY: HOSTILE}}
    (recorded / "aws-dublin" / "resources.json").write_text(json.dumps([resource]))
    (recorded / "aws-dublin" / "outputs.json").write_text("{}")
    report, failure = read_recorded_plan(recorded)
    assert failure == ""
    head = read_plan_out("b" * 40, report, recorded)
    errors = as_markdown(compare(RevisionPlan("a" * 40), head))
    outside = _outside_fences(errors)
    assert "<!--" not in outside and outside.count("## fedeploy diff") == 1
    assert "```text\nhead bbbbbbbbbbbb: plan crashed\n\n## fedeploy diff\n" in errors
    # The same plan without the error: the site's body holds the key, in a fence it cannot close.
    head.errors, head.order = [], [["aws-dublin"]]
    body = as_markdown(compare(RevisionPlan("a" * 40), head))
    outside = _outside_fences(body)
    assert "<!--" not in outside and "](" not in outside
    assert outside.count("<details>") == outside.count("</details>") == 1
    assert "\n`````diff\n+ t::k\n\n````\n</details>\n" in body
