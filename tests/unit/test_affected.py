"""`fedeploy affected`: which stacks a change affects and in which waves, on git repositories
built in each test from the example federation's stack files.

The offline plan is replaced by a stand-in that reads `tests/fake-plan.json` from the planned
tree (the base's copy for the base, the head's for the head), so contract changes are set per
commit; the real plan is exercised at the end on the example federation itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from fedeploy.affected.command import affected_command
from fedeploy.affected.find import AffectedError, find_affected
from fedeploy.errors import FedeployError
from fedeploy.gitops.closure import ContractDiff, Decision, close_over_contracts, waves
from fedeploy.gitops.git_tree import GitError
from fedeploy.gitops.path_rules import classify
from fedeploy.gitops.planned_sites import (
    PlannedFederation,
    PlannedSite,
    container_images,
    image_name,
    plan_tree,
)
from fedeploy.references import Reference
from tests.builders import git

ROOT = Path(__file__).resolve().parents[2]
FULL_ORDER = [
    ["aws-dublin", "cf-waw", "ewc-bologna", "hpc-kajaani", "ovh-gra"],
    ["aws-frankfurt"],
    ["eu-hub"],
]
CHARTS = {
    "aws-dublin": ["catalog", "inference"],
    "aws-frankfurt": ["catalog", "ingestion", "inference"],
    "hpc-kajaani": ["catalog", "ingestion", "inference"],
    "ovh-gra": ["catalog", "ingestion", "inference"],
    "eu-hub": ["catalog"],
}
# The hub's catalog chart runs the ingestion image for its harvester.
IMAGES = {site: ["stac-fastapi-pgstac", *charts] for site, charts in CHARTS.items()}
IMAGES["eu-hub"] = ["stac-fastapi-pgstac", "ingestion"]


def fake_plan(**changes: dict[str, object]) -> dict[str, object]:
    """The stand-in plan: every site's contract, with `changes[site]` merged into its outputs."""
    sites = {}
    for site, charts in CHARTS.items():
        outputs = {
            "site": {"name": site},
            "storage": f"{site}-buckets-v1",
            "catalog_url": f"https://{site}",
            "bridge": None,
        }
        outputs.update(changes.get(site, {}))
        sites[site] = {"outputs": outputs, "charts": charts, "images": IMAGES[site]}
    return {"sites": sites, "errors": []}


class Planner:
    """Reads the stand-in plan of the tree it is given; counts the trees it planned."""

    def __init__(self) -> None:
        self.trees: list[Path] = []

    def __call__(self, tree: Path, stacks_dir: str) -> PlannedFederation:
        self.trees.append(tree)
        data = json.loads((tree / "tests" / "fake-plan.json").read_text())
        return PlannedFederation(
            sites={
                name: PlannedSite(
                    outputs=s["outputs"],
                    charts=frozenset(s["charts"]),
                    images=frozenset(s["images"]),
                )
                for name, s in data["sites"].items()
            },
            errors=data["errors"],
        )


class Repo:
    """A git repository in a temporary directory, committed to by the test."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return git(self.path, *args)

    def write(self, path: str, text: str) -> None:
        target = self.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def edit(self, path: str, old: str, new: str) -> None:
        text = (self.path / path).read_text()
        assert old in text, f"{old!r} not in {path}"
        self.write(path, text.replace(old, new))

    def delete(self, path: str) -> None:
        (self.path / path).unlink()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """The example federation's stack files, a program whose `__main__.py` loads one component,
    a module the program never loads, two charts, a service, bridge templates and docs."""
    repo = Repo(tmp_path / "repo")
    shutil.copytree(ROOT / "stacks", repo.path / "stacks")
    repo.write("__main__.py", "from components import shared\n")
    repo.write("components/__init__.py", "")
    repo.write("components/shared.py", "VALUE = 1\n")
    repo.write("fedeploy/__init__.py", "")
    repo.write("fedeploy/cli_only.py", "VALUE = 1\n")
    repo.write("charts/catalog/values.yaml", "replicas: 1\n")
    repo.write("charts/ingestion/values.yaml", "replicas: 1\n")
    repo.write("services/ingestion/app.py", "VALUE = 1\n")
    repo.write("services/ingestion/tests/test_app.py", "VALUE = 1\n")
    repo.write("templates/bridge/slurm.conf.j2", "ClusterName={{ name }}\n")
    repo.write("README.md", "# federation\n")
    repo.write("tests/fake-plan.json", json.dumps(fake_plan()))
    repo.commit("base")
    return repo


def affected_after(repo: Repo, planner: Planner | None = None, base: str = "HEAD~1"):
    return find_affected(repo.path, base, planner=planner or Planner())


# ---- the table of changes -------------------------------------------------------------------


def test_one_stack_file_affects_that_site_only_when_its_contract_stays(repo: Repo) -> None:
    repo.edit(
        "stacks/Pulumi.ovh-gra.yaml",
        "owner: eo-platform",
        "owner: eo-platform\n      team: gra-ops",
    )
    repo.commit("tag the OVH site")
    planner = Planner()
    result = affected_after(repo, planner)
    assert result.waves == [["ovh-gra"]]
    assert result.reasons == {"ovh-gra": ["stacks/Pulumi.ovh-gra.yaml changed"]}
    # The hub reads ovh-gra: its contract was compared at base and head.
    assert len(planner.trees) == 2


def test_a_chart_affects_every_site_that_releases_it_in_one_wave(repo: Repo) -> None:
    repo.write("charts/ingestion/values.yaml", "replicas: 2\n")
    repo.commit("two ingestion replicas")
    result = affected_after(repo)
    # Frankfurt reads Dublin, which is not affected: nothing orders the three.
    assert result.waves == [["aws-frankfurt", "hpc-kajaani", "ovh-gra"]]
    assert result.reasons["ovh-gra"] == [
        "charts/ingestion/values.yaml changed: the site releases chart ingestion"
    ]


def test_a_shared_component_affects_every_site_in_deployment_order(repo: Repo) -> None:
    repo.write("components/shared.py", "VALUE = 2\n")
    repo.commit("change a component")
    planner = Planner()
    result = affected_after(repo, planner)
    assert result.waves == FULL_ORDER
    assert all(
        r == ["components/shared.py changed: program code changed"] for r in result.reasons.values()
    )
    assert planner.trees == []  # every reader is already affected: nothing to plan


def test_a_changed_output_that_others_read_affects_the_readers_after_it(repo: Repo) -> None:
    repo.edit(
        "stacks/Pulumi.aws-dublin.yaml",
        "        models: {}",
        "        models: {}\n        scratch: {}",
    )
    repo.write(
        "tests/fake-plan.json",
        json.dumps(fake_plan(**{"aws-dublin": {"storage": "aws-dublin-buckets-v2"}})),
    )
    repo.commit("a scratch bucket in Dublin")
    result = affected_after(repo)
    assert result.waves == [["aws-dublin"], ["aws-frankfurt"], ["eu-hub"]]
    assert result.reasons["aws-frankfurt"] == ["reads aws-dublin.storage, which changes"]
    assert result.reasons["eu-hub"] == ["reads aws-dublin.storage, which changes"]


def test_a_changed_output_nobody_reads_affects_nobody_else(repo: Repo) -> None:
    repo.edit("stacks/Pulumi.aws-dublin.yaml", 'version: "1.33"', 'version: "1.34"')
    repo.write("tests/fake-plan.json", json.dumps(fake_plan(**{"aws-dublin": {"cluster": "1.34"}})))
    repo.commit("upgrade Dublin's cluster")
    assert affected_after(repo).waves == [["aws-dublin"]]


def test_a_readme_change_affects_nothing_and_plans_nothing(repo: Repo) -> None:
    repo.write("README.md", "# the federation\n")
    repo.write("docs/gitops.md", "# GitOps\n")
    repo.commit("docs")
    planner = Planner()
    result = affected_after(repo, planner)
    assert (result.waves, result.stacks, result.removed) == ([], [], {})
    assert set(result.ignored) == {"README.md", "docs/gitops.md"}
    assert result.to_dict()["waves"] == []
    assert planner.trees == []


# ---- the other rules ------------------------------------------------------------------------


def test_a_deleted_stack_file_is_reported_removed_never_deployed(repo: Repo) -> None:
    repo.delete("stacks/Pulumi.hpc-kajaani.yaml")
    repo.edit("stacks/Pulumi.eu-hub.yaml", " hpc-kajaani,", "")
    repo.commit("retire Kajaani")
    result = affected_after(repo)
    assert result.waves == [["eu-hub"]]
    assert list(result.removed) == ["hpc-kajaani"]
    assert "pulumi destroy" in result.removed["hpc-kajaani"]
    assert result.to_dict()["removed"] == ["hpc-kajaani"]


def test_bridge_templates_affect_the_sites_with_a_bridge(repo: Repo) -> None:
    repo.write("templates/bridge/slurm.conf.j2", "ClusterName={{ name }}\nAuthType=auth/jwt\n")
    repo.commit("bridge template")
    assert affected_after(repo).waves == [["hpc-kajaani"]]


def test_a_service_affects_the_sites_running_its_image_and_its_tests_nothing(repo: Repo) -> None:
    repo.write("services/ingestion/app.py", "VALUE = 2\n")
    repo.write("services/ingestion/tests/test_app.py", "VALUE = 2\n")
    repo.commit("ingestion service")
    result = affected_after(repo)
    assert result.waves == [["aws-frankfurt", "hpc-kajaani", "ovh-gra"], ["eu-hub"]]
    assert result.reasons["eu-hub"] == [
        "services/ingestion/app.py changed: the site runs image ingestion"
    ]
    assert "services/ingestion/tests/test_app.py" in result.ignored


def test_fedeploys_own_code_affects_every_site_even_where_the_program_never_loads_it(
    repo: Repo,
) -> None:
    # The CLI, the offline plan, `fedeploy diff` and `fedeploy verify` review and gate every
    # site: a change there is reviewed as one to every site, never as nothing.
    for path in ("fedeploy/cli_only.py", "fedeploy/py.typed"):
        repo.write(path, "VALUE = 2\n")
    repo.commit("CLI")
    result = affected_after(repo)
    assert result.waves == FULL_ORDER
    assert result.reasons["eu-hub"][0].startswith("fedeploy/")
    assert "fedeploy's own code changed" in " ".join(result.reasons["eu-hub"])
    assert "fedeploy/cli_only.py" not in result.ignored


def test_an_unknown_path_is_assumed_to_affect_every_site(repo: Repo) -> None:
    repo.write("site-secrets.env.example", "TOKEN=\n")
    repo.commit("something new")
    result = affected_after(repo)
    assert result.waves == FULL_ORDER
    assert "unrecognised path" in result.reasons["eu-hub"][0]


def test_a_base_that_does_not_exist_is_a_clear_error(repo: Repo) -> None:
    with pytest.raises(GitError, match="'origin/nope' is not a commit.*fetch-depth: 0"):
        find_affected(repo.path, "origin/nope", planner=Planner())


def test_a_base_without_stacks_affects_every_stack_without_planning(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.write("README.md", "# new\n")
    repo.commit("empty")
    shutil.copytree(ROOT / "stacks", repo.path / "stacks")
    repo.commit("the federation")
    planner = Planner()
    result = find_affected(repo.path, "HEAD~1", planner=planner)
    assert result.waves == FULL_ORDER
    assert result.reasons["aws-dublin"] == ["stacks/Pulumi.aws-dublin.yaml added"]
    assert planner.trees == []


def test_a_base_that_does_not_plan_counts_every_contract_as_changed(repo: Repo) -> None:
    broken = fake_plan()
    broken["errors"] = ["stacks/Pulumi.aws-dublin.yaml: the program failed"]
    del broken["sites"]["aws-dublin"]  # type: ignore[attr-defined]
    repo.write("tests/fake-plan.json", json.dumps(broken))
    repo.commit("a base that fails")
    repo.write("tests/fake-plan.json", json.dumps(fake_plan()))
    repo.edit(
        "stacks/Pulumi.aws-dublin.yaml",
        "owner: eo-platform",
        "owner: eo-platform\n      team: dublin",
    )
    repo.commit("fix it")
    result = affected_after(repo)
    assert result.waves == [["aws-dublin"], ["aws-frankfurt"], ["eu-hub"]]
    assert "assumed to change" in result.reasons["aws-frankfurt"][0]


def test_a_head_that_does_not_plan_is_an_error_when_the_plan_is_needed(repo: Repo) -> None:
    broken = fake_plan()
    broken["errors"] = ["stacks/Pulumi.eu-hub.yaml: the program failed: KeyError"]
    repo.write("tests/fake-plan.json", json.dumps(broken))
    repo.write("charts/catalog/values.yaml", "replicas: 2\n")
    repo.commit("catalog")
    with pytest.raises(AffectedError, match="(?s)does not plan offline.*KeyError"):
        affected_after(repo)


def test_an_invalid_stack_at_the_head_is_an_error_naming_it(repo: Repo) -> None:
    repo.edit("stacks/Pulumi.cf-waw.yaml", "kind: kubernetes", "kind: kubernets")
    repo.commit("typo")
    with pytest.raises(
        AffectedError, match=r"(?s)- stacks/Pulumi\.cf-waw\.yaml: 1 problem.*\n +- site\.kind"
    ):
        affected_after(repo)


# ---- the command ----------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("affected")(affected_command)
    app.command("version")(lambda: None)  # a second command keeps `affected` a subcommand
    return app


def test_the_command_prints_the_matrix_json_and_writes_every_form(
    repo: Repo, tmp_path: Path
) -> None:
    repo.edit(
        "stacks/Pulumi.eu-hub.yaml",
        'harvest_schedule: "*/15 * * * *"',
        'harvest_schedule: "*/30 * * * *"',
    )
    repo.commit("harvest less often")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        _cli(),
        [
            "affected",
            "--repo",
            str(repo.path),
            "--base",
            "HEAD~1",
            "--format",
            "json",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["waves"] == [["eu-hub"]] and data["stacks"] == ["eu-hub"]
    assert data["sites"]["eu-hub"] == {
        "kind": "hub",
        "environment": "production",
        "region": None,
        "wave": 1,
    }
    assert data["reasons"] == {"eu-hub": ["stacks/Pulumi.eu-hub.yaml changed"]}
    assert sorted(p.name for p in out.iterdir()) == [
        "affected.json",
        "affected.md",
        "affected.txt",
        "gitlab-pipeline.yml",
    ]
    assert "| 1 | `eu-hub` | production |" in (out / "affected.md").read_text()


def test_the_gitlab_form_is_a_child_pipeline_with_a_stage_per_wave(repo: Repo) -> None:
    result = CliRunner().invoke(
        _cli(), ["affected", "--repo", str(repo.path), "--all", "--format", "gitlab"]
    )
    assert result.exit_code == 0, result.output
    pipeline = yaml.safe_load(result.stdout)
    assert pipeline["stages"] == ["wave-1", "wave-2", "wave-3"]
    job = pipeline["up aws-frankfurt"]
    assert job["stage"] == "wave-2" and job["extends"] == ".fedeploy-up"
    assert job["resource_group"] == "deploy-aws-frankfurt"
    assert job["environment"] == {
        "name": "production/aws-frankfurt",
        "deployment_tier": "production",
    }
    assert job["variables"] == {
        "SITE": "aws-frankfurt",
        "SITE_KIND": "aws",
        "AWS_REGION": "eu-central-1",
    }
    assert pipeline["include"] == [{"local": ".gitlab/fedeploy.yml"}]


def test_the_gitlab_form_of_nothing_is_still_a_valid_pipeline(repo: Repo) -> None:
    repo.write("README.md", "# changed\n")
    repo.commit("docs")
    result = CliRunner().invoke(
        _cli(), ["affected", "--repo", str(repo.path), "--base", "HEAD~1", "--format", "gitlab"]
    )
    assert result.exit_code == 0, result.output
    pipeline = yaml.safe_load(result.stdout)
    assert [k for k in pipeline if k != "stages"] == ["nothing affected"]


def test_the_command_without_base_or_all_is_a_usage_error(repo: Repo) -> None:
    result = CliRunner().invoke(_cli(), ["affected", "--repo", str(repo.path)])
    assert result.exit_code == 2
    assert "--base" in result.output


def test_project_errors_carry_the_cli_exit_status() -> None:
    assert issubclass(AffectedError, FedeployError) and AffectedError.exit_code == 2
    assert issubclass(GitError, FedeployError)


# ---- pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "scope", "name"),
    [
        ("stacks/Pulumi.aws-dublin.yaml", "M", "stack", "aws-dublin"),
        ("stacks/Pulumi.aws-dublin.yaml", "D", "stack", "aws-dublin"),
        ("stacks/README.md", "M", "nothing", ""),
        ("charts/catalog/templates/deployment.yaml", "M", "chart", "catalog"),
        ("charts/catalog/README.md", "M", "nothing", ""),
        ("services/inference/Dockerfile", "M", "service", "inference"),
        ("services/inference/tests/test_x.py", "M", "nothing", ""),
        ("policies/cloud.py", "M", "every", ""),
        ("templates/bridge/setup.sh.j2", "A", "bridges", ""),
        ("Pulumi.yaml", "M", "every", ""),
        ("pyproject.toml", "M", "every", ""),
        ("fedeploy/program.py", "M", "every", ""),
        ("fedeploy/plan/formats.py", "M", "every", ""),
        ("fedeploy/old_module.py", "D", "every", ""),
        ("fedeploy/regions.json", "M", "every", ""),
        ("fedeploy/py.typed", "M", "every", ""),
        ("loopback/src/loopback/s3.py", "M", "nothing", ""),
        ("loopback/pyproject.toml", "M", "nothing", ""),
        ("components/README.txt", "A", "every", ""),
        ("tests/unit/test_x.py", "M", "nothing", ""),
        ("examples/gitops/github/deploy.yml", "M", "nothing", ""),
        ("Makefile", "M", "nothing", ""),
        ("terraform/main.tf", "A", "every", ""),
    ],
)
def test_what_a_path_touches(path: str, status: str, scope: str, name: str) -> None:
    touch = classify(path, status, frozenset({"__main__.py", "fedeploy/program.py"}))
    assert (touch.scope, touch.name) == (scope, name)
    assert touch.why


def test_a_stack_file_under_another_stacks_dir_is_recognised() -> None:
    assert (
        classify("infra/stacks/Pulumi.a-site.yaml", "M", frozenset(), "./infra/stacks").name
        == "a-site"
    )


def _refs(*pairs: str) -> list[Reference]:
    return [
        Reference(p.split(">")[0], p.split(">")[1].split(".")[0], p.split(".")[1], "test")
        for p in pairs
    ]


def test_contract_closure_is_transitive_and_follows_only_changed_outputs() -> None:
    references = _refs("b>a.storage", "c>b.catalog_url", "d>a.cluster", "e>c.site")
    changed = {"a": {"storage"}, "b": {"catalog_url"}, "c": set()}
    decision = Decision(reasons={"a": ["edited"]})
    asked: list[str] = []

    def diff(site: str) -> ContractDiff:
        asked.append(site)
        return ContractDiff(outputs=frozenset(changed[site]))

    close_over_contracts(decision, references, diff)
    assert sorted(decision.reasons) == ["a", "b", "c"]
    assert decision.reasons["c"] == ["reads b.catalog_url, which changes"]
    assert asked == ["a", "b", "c"]


def test_waves_keep_order_through_unaffected_stacks_and_parallelise_the_rest() -> None:
    references = _refs("b>a.x", "c>b.x", "d>a.x")
    # c reads a through b (not affected): c still comes after a; d and c share a wave.
    assert waves({"a", "c", "d"}, references) == [["a"], ["c", "d"]]
    assert waves(set(), references) == []


def test_container_images_are_found_in_pod_templates_and_named_by_repository() -> None:
    manifest = {
        "kind": "CronJob",
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "initContainers": [{"name": "wait", "image": "busybox:1.36"}],
            "containers": [{"name": "run", "image": "ghcr.io/fedeploy/ingestion:0.1.0"}],
        }}}}},
    }  # fmt: skip
    assert sorted(container_images(manifest)) == [
        "busybox:1.36",
        "ghcr.io/fedeploy/ingestion:0.1.0",
    ]
    assert image_name("registry:5000/team/inference@sha256:abc") == "inference"
    assert image_name("ghcr.io/fedeploy/ingestion:0.1.0") == "ingestion"


# ---- the real offline plan --------------------------------------------------------------------


@pytest.mark.slow
def test_the_offline_plan_of_the_example_federation_names_charts_images_and_contracts() -> None:
    planned = plan_tree(ROOT)
    assert planned.errors == []
    frankfurt = planned.sites["aws-frankfurt"]
    assert frankfurt.charts == {"catalog", "ingestion", "inference"}
    assert {"ingestion", "inference"} <= frankfurt.images
    assert frankfurt.unrendered_releases == 0
    assert planned.sites["eu-hub"].charts == {"catalog"}
    assert set(frankfurt.outputs["storage"]["buckets"]) == {"raw", "models"}


def test_the_changes_names_reach_the_affected_table_only_as_literal_text() -> None:
    """Reasons carry the change's paths and its recorded plan's output names: escaped by the
    rule of gitops.markdown (control characters normalised, then `& < >` as entities and
    ``\\ ` * _ [ ] ! | ~`` behind a backslash), so nothing renders as Markdown or HTML."""
    from fedeploy.gitops.closure import SiteInfo
    from fedeploy.gitops.formats import as_markdown
    from fedeploy.gitops.result import Affected

    hostile = "x|y`\r\r## fedeploy plan\r\r<!-- ![p](https://e.invalid/p.png)"
    affected = Affected(
        base="a",
        head="b",
        waves=[["eu-hub"]],
        reasons={"eu-hub": [f"reads aws-dublin.{hostile}, which changes"]},
        sites={"eu-hub": SiteInfo("eu-hub", "aws", "production")},
        removed={"gone": f"stacks/{hostile} deleted"},
    )
    table = as_markdown(affected)
    assert "\r" not in table and "<!--" not in table and "![" not in table
    assert "\n## fedeploy plan" not in table
    row = next(line for line in table.split("\n") if line.startswith("| 1 |"))
    assert row.count(" | ") == 3  # four cells: the reason's pipe is escaped
    escaped = r"x\|y\`<br/><br/>## fedeploy plan<br/><br/>&lt;\!-- \!\[p\](https://e.invalid/p.png)"
    assert f"reads aws-dublin.{escaped}, which changes" in row
