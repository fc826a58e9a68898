"""Which pipeline job may hold which credential, on which triggers (examples/gitops/).

The tables below are the review: a job that gains a credential, a write permission or a trigger
fails here until the table (and docs/gitops.md, "Who holds which credential") says why. Code
nobody has reviewed (a pull or merge request's) never runs next to a credential that can write
state or read production secrets; jobs that may be dispatched run with credentials only from
the default branch; releases build only from a protected tag on the default branch; zizmor finds
nothing at medium or above and every finding it is told to ignore says why in the file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_pipelines import (
    COMPOSITE,
    GITHUB,
    GITLAB_CI,
    GITLAB_TEMPLATES,
    WORKFLOWS,
    _generated_child_pipeline,
    load,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BRANCH = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"
ZIZMOR = Path(sys.executable).parent / "zizmor"

# ---- GitHub --------------------------------------------------------------------------------------

# (workflow, job) -> what it holds: its write permissions, its OIDC identities (the Pulumi team
# it asks for, the AWS role variable) and the environment whose approval gates it.
GITHUB_CREDENTIALS: dict[tuple[str, str], dict[str, Any]] = {
    # The code under review with no credential at all, forks included; it hands back data.
    ("pull-request.yml", "change"): {},
    # The review, by the base's fedeploy from that data: runs nothing of the change.
    ("pull-request.yml", "report"): {},
    # Posts the report as text; checks nothing out, runs nothing of the change.
    ("pull-request.yml", "comment"): {"write": {"pull-requests"}},
    # The change's program with read-only identities, after a reviewer approves `preview`.
    ("pull-request.yml", "preview"): {
        "write": {"id-token"},
        "pulumi": "team:fedeploy-preview",
        "aws": "vars.AWS_PREVIEW_ROLE_ARN",
        "environment": "preview",
    },
    ("deploy.yml", "affected"): {},
    **{
        ("deploy.yml", f"wave{n}"): {"write": {"id-token"}}  # handed to deploy-wave.yml
        for n in range(1, 7)
    },
    ("deploy.yml", "record"): {"write": {"contents"}},  # the fedeploy-deployed tag
    ("deploy-wave.yml", "up"): {
        "write": {"id-token"},
        "pulumi": "team:${{ vars.PULUMI_DEPLOY_TEAM }}",
        "aws": "vars.AWS_DEPLOY_ROLE_ARN",
        "environment": "${{ fromJSON(inputs.sites)[matrix.stack].environment }}",
    },
    ("drift.yml", "stacks"): {},
    # Scheduled, in an environment of its own limited to main: its read-only sign-ins.
    ("drift.yml", "drift"): {
        "write": {"id-token", "issues"},
        "pulumi": "team:fedeploy-drift",
        "aws": "vars.AWS_DRIFT_ROLE_ARN",
        "environment": "drift",
    },
    ("release.yml", "source"): {},
    ("release.yml", "images"): {"write": {"contents", "packages"}},
    ("release.yml", "charts"): {"write": {"packages"}},
    ("release.yml", "digests"): {"write": {"contents", "pull-requests"}},
}


def _held(job: dict[str, Any]) -> dict[str, Any]:
    held: dict[str, Any] = {}
    write = {k for k, v in (job.get("permissions") or {}).items() if v == "write"}
    if write:
        held["write"] = write
    for step in job.get("steps", []):
        uses = str(step.get("uses", ""))
        if uses.startswith("pulumi/auth-actions@"):
            assert step["with"]["requested-token-type"].endswith(":team"), (
                f"{step}: an organization token is every stack's admin; ask for a team's"
            )
            held["pulumi"] = step["with"]["scope"]
        if uses.startswith("aws-actions/configure-aws-credentials@"):
            held["aws"] = step["with"]["role-to-assume"].removeprefix("${{ ").removesuffix(" }}")
    if "environment" in job:
        held["environment"] = job["environment"]
    return held


def _triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow["on"]
    return {on} if isinstance(on, str) else set(on)


def test_every_github_job_holds_exactly_the_credentials_its_purpose_needs() -> None:
    found = {}
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            found[(path.name, name)] = _held(job)
    assert found == GITHUB_CREDENTIALS


def test_no_github_workflow_runs_with_write_access_beside_a_pull_requests_artifacts() -> None:
    # pull_request_target and workflow_run run the default branch's file with write access,
    # next to what a fork wrote: zizmor's dangerous-triggers, and the old plan-comment.yml.
    for path in WORKFLOWS:
        assert not _triggers(load(path)) & {"pull_request_target", "workflow_run"}, path.name


def _runs_checked_out_code(job: dict[str, Any]) -> bool:
    steps = job.get("steps", [])
    return any("checkout" in str(s.get("uses", "")) for s in steps) or any(
        str(s.get("uses", "")).startswith("./") for s in steps
    )


def test_pull_request_code_runs_with_no_credential_unless_a_reviewer_approves_it() -> None:
    workflow = load(GITHUB / "workflows" / "pull-request.yml")
    assert _triggers(workflow) == {"pull_request"}
    for name, job in workflow["jobs"].items():
        held = GITHUB_CREDENTIALS[("pull-request.yml", name)]
        if not held:
            continue
        # Same repository only: a fork's run never gets a token or an approval prompt.
        assert FORK_GUARD in job["if"], name
        if "id-token" in held["write"]:
            # The preview's identities trust only this environment (docs/gitops.md), whose
            # required reviewers read the change before it runs.
            assert job["environment"] == "preview", name
        else:
            assert not _runs_checked_out_code(job), f"{name} holds a write token beside the change"


def test_the_review_is_written_by_the_base_revisions_fedeploy() -> None:
    steps = load(GITHUB / "workflows" / "pull-request.yml")["jobs"]["report"]["steps"]
    # The change's own setup (pip install ".[deploy]" of the checkout) never runs here.
    assert not any(str(s.get("uses", "")).startswith("./") for s in steps)
    checkout_base = next(
        s for s in steps if s.get("name") == "Check out the base revision's fedeploy"
    )
    assert checkout_base["env"]["BASE"] == "${{ github.event.pull_request.base.sha }}"
    assert 'git worktree add --detach "$TOOL/src" "$BASE"' in checkout_base["run"]
    install = next(s for s in steps if s.get("name") == "Install it apart from the checkout")
    assert '"$TOOL/src[deploy]"' in install["run"]
    base_tool = "${{ runner.temp }}/fedeploy-base/venv/bin/fedeploy"
    for step_id in ("affected", "diff"):
        step = next(s for s in steps if s.get("id") == step_id)
        assert step["env"]["FEDEPLOY"] == base_tool, step_id
        assert re.search(r"(^|[^\"$])\bfedeploy (affected|diff)\b", step["run"]) is None, step_id
        # The head's plan is the change job's data, never a run of the change's program.
        assert '--head-plan "$HEAD_PLAN"' in step["run"], step_id
    # The comment takes the change's own plan by its exit status only.
    comment = next(s for s in steps if s.get("name") == "Write the comment")
    assert "plan.md" not in comment["run"].replace("plan-status.md", "")


def _runs(step: dict[str, Any]) -> str:
    return str(step.get("run", ""))


def test_the_changes_code_runs_in_a_job_of_its_own_that_hands_back_data_only() -> None:
    pr = load(GITHUB / "workflows" / "pull-request.yml")["jobs"]
    change, report = pr["change"], pr["report"]
    # The change's code runs only in `change`: its plan, with the checkout first on the path.
    runs_change = [
        (name, s.get("name"))
        for name, job in pr.items()
        for s in job.get("steps", [])
        if 'PYTHONPATH="$PWD"' in _runs(s)
    ]
    assert runs_change == [("change", "Plan every stack with this change's own program")]
    # ... with no token that writes, no git credentials, no environment, forks included.
    assert change["permissions"] == {"contents": "read"} and "environment" not in change
    assert "if" not in change and "needs" not in change
    checkout = next(s for s in change["steps"] if "actions/checkout" in str(s.get("uses")))
    assert checkout["with"]["persist-credentials"] is False
    # It hands on one artifact of data; nothing of the change's job is read as Markdown.
    uploads = [s for s in change["steps"] if "upload-artifact" in str(s.get("uses"))]
    assert [u["with"]["name"] for u in uploads] == ["fedeploy-change"]
    assert uploads[0]["with"]["path"] == "${{ runner.temp }}/fedeploy-change/"
    # The report: no write token, and none of the change's code: no module run from the
    # checkout (`python -m` puts the working directory first on the path).
    assert report["permissions"] == {"contents": "read"} and report["needs"] == "change"
    for step in report["steps"]:
        if re.search(r"\bpython3? -m\b", _runs(step)):
            assert step["working-directory"] == "${{ runner.temp }}", step.get("name")
    downloads = [s for s in report["steps"] if "download-artifact" in str(s.get("uses"))]
    assert [d["with"] for d in downloads] == [
        {"name": "fedeploy-change", "path": "${{ runner.temp }}/fedeploy-change"}
    ]
    # The change's exit status is checked as a number before it reaches the comment.
    verdict = next(s for s in report["steps"] if s.get("id") == "plan")
    assert 'head -c 8 "$RECORD/status"' in verdict["run"] and "no verdict" in verdict["run"]
    # The comment job posts the report job's artifact, never the change's.
    comment = pr["comment"]
    assert comment["needs"] == "report"
    assert [s["with"] for s in comment["steps"] if "with" in s] == [
        {"artifact-ids": "${{ needs.report.outputs.comment-artifact }}", "path": "report"}
    ]


def test_the_comment_posts_only_what_the_report_job_uploaded_by_its_id() -> None:
    """The change's code shares the run's artifact token, so it can upload an artifact of any
    name (second review of issue 27, finding 3): the comment job downloads by the ID the report
    job returned, only when that job succeeded, and the report's names are its own."""
    pr = load(GITHUB / "workflows" / "pull-request.yml")["jobs"]
    report, comment = pr["report"], pr["comment"]
    upload = next(s for s in report["steps"] if s.get("id") == "comment-artifact")
    assert report["outputs"]["comment-artifact"] == (
        "${{ steps.comment-artifact.outputs.artifact-id }}"
    )
    assert upload["with"]["path"] == ".fedeploy/comment.md"
    change_names = {
        s["with"]["name"] for s in pr["change"]["steps"] if "upload-artifact" in str(s.get("uses"))
    }
    for step in report["steps"]:
        if "upload-artifact" in str(step.get("uses")):
            # Never overwrite (a name taken first fails the report), named by attempt and job.
            assert step["with"]["overwrite"] is False, step["with"]["name"]
            assert step["with"]["name"].endswith("-${{ github.run_attempt }}-report")
            assert step["with"]["name"] not in change_names
    condition = comment["if"].removeprefix("${{ ").removesuffix(" }}")
    assert condition.split(" && ")[:2] == [
        "needs.report.result == 'success'",
        "needs.report.outputs.comment-artifact != ''",  # none: every artifact would come
    ]
    assert "cancelled()" not in comment["if"] and FORK_GUARD in comment["if"]
    downloads = [s for s in comment["steps"] if "download-artifact" in str(s.get("uses"))]
    assert [d["with"] for d in downloads] == [
        {"artifact-ids": "${{ needs.report.outputs.comment-artifact }}", "path": "report"}
    ]
    # No other job of the run takes the report's artifacts by name.
    for name, job in pr.items():
        for step in job.get("steps", []):
            if "download-artifact" in str(step.get("uses")):
                assert step["with"].get("name", "fedeploy-change") == "fedeploy-change", name


def test_gitlab_takes_the_changes_artifact_as_data_in_the_report_job_only() -> None:
    ci = load(GITLAB_CI)
    takers = {
        name: job["needs"]
        for name, job in ci.items()
        if isinstance(job, dict)
        and any(
            isinstance(n, dict) and n.get("job") == "plan:change" or n == "plan:change"
            for n in job.get("needs", [])
        )
    }
    assert takers == {"plan": [{"job": "plan:change", "artifacts": True}]}
    assert "dependencies" not in ci["plan"]
    # Moved out of the checkout before anything reads it; the verdict opens the comment.
    assert ci["plan"]["before_script"][-1] == (
        "rm -rf /tmp/fedeploy-change && mv .fedeploy-change /tmp/fedeploy-change"
    )
    assert "cat .fedeploy/plan-status.md .fedeploy/affected.md .fedeploy/diff.md" in "".join(
        ci["plan"]["script"]
    )


def _workflow_of(path: Path) -> tuple[dict[str, Any], set[str]]:
    workflow = load(path)
    return workflow, _triggers(workflow)


def test_dispatched_jobs_with_credentials_run_only_from_the_default_branch() -> None:
    for path in WORKFLOWS:
        workflow, triggers = _workflow_of(path)
        if not triggers & {"workflow_dispatch", "workflow_call"}:
            continue
        for name, job in workflow["jobs"].items():
            held = GITHUB_CREDENTIALS[(path.name, name)]
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            if held or not needs:
                assert DEFAULT_BRANCH in job.get("if", ""), (
                    f"{path.name} job {name}: dispatched from a branch, it would run that "
                    "branch's code"
                )


def test_releases_build_only_from_a_protected_tag_on_the_default_branch() -> None:
    release = load(GITHUB / "workflows" / "release.yml")
    assert _triggers(release) == {"release"}
    jobs = release["jobs"]
    source = jobs["source"]
    script = "\n".join(s.get("run", "") for s in source["steps"])
    assert source["steps"][1]["env"]["REF_PROTECTED"] == "${{ github.ref_protected }}"
    assert '[ "$REF_PROTECTED" != true ]' in script
    assert 'git merge-base --is-ancestor "$SHA" "origin/$BASE"' in script

    def reaches_source(name: str) -> bool:
        needs = jobs[name].get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        return "source" in needs or any(reaches_source(n) for n in needs)

    for name in jobs:
        if name != "source":
            assert reaches_source(name), f"release job {name} does not wait for the source check"


# ---- zizmor ------------------------------------------------------------------------------------


def _zizmor(files: list[Path]) -> list[dict[str, Any]]:
    if not ZIZMOR.exists():
        pytest.fail("zizmor is not installed: pip install -e '.[dev]'")
    done = subprocess.run(
        [str(ZIZMOR), "--offline", "--format", "json", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.strip().startswith("["), done.stderr
    return json.loads(done.stdout)


def test_zizmor_finds_nothing_at_medium_or_above_and_every_ignore_says_why() -> None:
    findings = [f for f in _zizmor([*WORKFLOWS, COMPOSITE]) if not f.get("ignored")]
    assert findings == [], [
        (f["ident"], f["determinations"]["severity"], f["locations"][0]["symbolic"]["key"])
        for f in findings
    ]
    for path in [*WORKFLOWS, COMPOSITE]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "zizmor: ignore[" in line:
                reason = line.split("zizmor: ignore[", 1)[1].split("]", 1)[1].strip()
                assert len(reason) > 20, f"{path.name}:{number}: ignored without a reason"


def test_zizmor_still_finds_the_old_comment_workflows_dangerous_trigger(tmp_path: Path) -> None:
    old = tmp_path / "plan-comment.yml"
    old.write_text(
        "name: plan comment\non:\n  workflow_run:\n    workflows: [pull request]\n"
        "    types: [completed]\npermissions: {}\njobs:\n  comment:\n    runs-on: ubuntu-24.04\n"
        "    permissions:\n      pull-requests: write\n    steps:\n      - run: echo hi\n"
    )
    assert "dangerous-triggers" in {f["ident"] for f in _zizmor([old])}


# ---- GitLab ------------------------------------------------------------------------------------

# The variables that are credentials, and the one job (with its environment, to which the
# variable is scoped, protected) that may read each.
GITLAB_SECRETS = {
    "FEDEPLOY_ISSUE_TOKEN": ("drift:issues", "ops/drift-issues"),
    "FEDEPLOY_RELEASE_TOKEN": ("release:digests", "release/lock"),
}
# Jobs that mint cloud identities (ID tokens): only on the protected default branch, each in
# its purpose's environment, which the trust policies pin (docs/gitops.md).
GITLAB_CLOUD_JOBS = {
    "drift": ("ops/drift", "fedeploy-drift"),
}
# The Pulumi ESC environment whose aws-login gives each team's AWS role (docs/gitops.md).
GITLAB_AWS_ESC = {
    "fedeploy-drift": "fedeploy/aws-drift",
    "fedeploy-deploy-production": "fedeploy/aws-deploy-production",
}
DEFAULT_BRANCH_RULE = "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"
MERGE_REQUEST = "merge_request_event"


def _gitlab_jobs() -> dict[str, dict[str, Any]]:
    pipeline = load(GITLAB_CI)
    return {
        k: v
        for k, v in pipeline.items()
        if isinstance(v, dict)
        and not k.startswith(".")
        and k not in {"workflow", "variables"}
        and ("script" in v or "trigger" in v)
    }


def _extends(job: dict[str, Any], templates: dict[str, Any]) -> list[str]:
    chain, name = [], job.get("extends")
    while name:
        chain.append(name)
        name = templates[name].get("extends")
    return chain


def _ifs(job: dict[str, Any]) -> list[str]:
    return [r.get("if", "") for r in job.get("rules", [])]


def test_merge_request_jobs_hold_no_credential_and_no_identity() -> None:
    templates = {**load(GITLAB_TEMPLATES), **load(GITLAB_CI)}
    # A job without rules runs in every pipeline the workflow admits, merge requests included.
    mr_jobs = {
        n: j
        for n, j in _gitlab_jobs().items()
        if not j.get("rules") or any(MERGE_REQUEST in i for i in _ifs(j))
    }
    assert set(mr_jobs) == {"plan:change", "plan"}
    for name, job in mr_jobs.items():
        chain = [job, *(templates[t] for t in _extends(job, templates))]
        assert not any("id_tokens" in j or "secrets" in j for j in chain), name
        assert "environment" not in job, name
        text = yaml.safe_dump(job)
        for variable in [*GITLAB_SECRETS, "AWS_ESC_ENV", "PULUMI_TEAM"]:
            assert variable not in text, f"{name} reads {variable}"
    # The report comes from the base revision's fedeploy, installed apart from the checkout.
    plan = mr_jobs["plan"]
    assert plan["before_script"][0] == (
        'git worktree add --detach "$TOOL/src" "$CI_MERGE_REQUEST_DIFF_BASE_SHA"'
    )
    script = "\n".join(plan["script"])
    assert '"$TOOL/venv/bin/fedeploy" affected' in script
    assert '"$TOOL/venv/bin/fedeploy" diff' in script
    assert re.search(r"(^|\s)fedeploy (affected|diff)", script) is None
    # ... from the change's data: the change's code runs in `plan:change` alone, which hands
    # on its artifact; `plan` moves it out of the checkout and reads it through --head-plan.
    for name, job in mr_jobs.items():
        runs_change = 'PYTHONPATH="$PWD"' in "\n".join([*job["before_script"], *job["script"]])
        assert runs_change == (name == "plan:change"), name
        for line in [*job["before_script"], *job["script"]]:
            for call in re.findall(r"[^\n]*\bpython3? -m\b", line):
                assert name == "plan:change" or call.startswith("(cd /tmp && "), (name, call)
    assert script.count("--head-plan /tmp/fedeploy-change/plan") == 2
    assert plan["needs"] == [{"job": "plan:change", "artifacts": True}]
    assert "mv .fedeploy-change /tmp/fedeploy-change" in plan["before_script"][-1]
    assert "head -c 8 /tmp/fedeploy-change/status" in script


def test_each_gitlab_secret_is_read_by_one_environment_scoped_job_only() -> None:
    jobs = _gitlab_jobs()
    text = {name: yaml.safe_dump(job) for name, job in jobs.items()}
    templates_text = GITLAB_TEMPLATES.read_text()
    for variable, (owner, environment) in GITLAB_SECRETS.items():
        readers = [name for name, body in text.items() if variable in body]
        assert readers == [owner], variable
        assert variable not in templates_text
        job = jobs[owner]
        assert job["environment"]["name"] == environment
        assert all(MERGE_REQUEST not in i for i in _ifs(job))
        assert "before_script" not in job and "extends" not in job  # installs nothing of ours


def test_gitlab_cloud_identities_only_on_the_default_branch_in_their_environment() -> None:
    templates = {**load(GITLAB_TEMPLATES), **load(GITLAB_CI)}
    jobs = _gitlab_jobs()
    minting = {n for n, j in jobs.items() if ".fedeploy-cloud" in _extends(j, templates)}
    assert minting == set(GITLAB_CLOUD_JOBS)
    for name, (environment, team) in GITLAB_CLOUD_JOBS.items():
        job = jobs[name]
        assert all(DEFAULT_BRANCH_RULE in i for i in _ifs(job)), name
        assert job["environment"]["name"] == environment
        assert job["variables"]["PULUMI_TEAM"] == team
        assert job["variables"]["AWS_ESC_ENV"] == GITLAB_AWS_ESC[team]
        # Never a deploy tier: the deploy team's policy pins deployment_tier.
        assert job["environment"]["deployment_tier"] == "other"
    cloud = load(GITLAB_TEMPLATES)[".fedeploy-cloud"]
    # One ID token, for Pulumi Cloud: no job mints a token that an AWS role trusts, so a
    # job's variables cannot point it at another purpose's role (docs/gitops.md).
    assert set(cloud["id_tokens"]) == {"PULUMI_OIDC_TOKEN"}
    assert '--oidc-team "$PULUMI_TEAM"' in " ".join(cloud["before_script"][1:])
    assert 'pulumi env open "$PULUMI_ORG/$AWS_ESC_ENV"' in " ".join(cloud["before_script"][1:])
    text = GITLAB_TEMPLATES.read_text() + GITLAB_CI.read_text()
    assert "AWS_ROLE_ARN" not in text and "AWS_WEB_IDENTITY_TOKEN_FILE" not in text
    # The deploy jobs: the generated child pipeline, started only by default-branch pushes.
    assert all(DEFAULT_BRANCH_RULE in i for i in _ifs(jobs["deploy"]))
    up = load(GITLAB_TEMPLATES)[".fedeploy-up"]["variables"]
    assert up["PULUMI_TEAM"] == "fedeploy-deploy-$CI_ENVIRONMENT_TIER"
    assert up["AWS_ESC_ENV"] == "fedeploy/aws-deploy-$CI_ENVIRONMENT_TIER"
    child = yaml.safe_load(_generated_child_pipeline())
    for name, job in child.items():
        if name.startswith("up "):
            assert job["extends"] == ".fedeploy-up"
            assert job["environment"]["name"].endswith("/" + name.removeprefix("up "))


def test_gitlab_releases_build_only_from_a_protected_tag_on_the_default_branch() -> None:
    jobs = _gitlab_jobs()
    release = {n: j for n, j in jobs.items() if n.startswith("release:")}
    script = "\n".join(release["release:source"]["script"])
    assert '"$CI_COMMIT_REF_PROTECTED" != true' in script
    assert 'git merge-base --is-ancestor "$CI_COMMIT_SHA" "origin/$CI_DEFAULT_BRANCH"' in script
    for name, job in release.items():
        if name != "release:source":
            assert "release:source" in job["needs"], name


def _docs_policies() -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], dict[str, str]]]:
    """The trust policies of docs/gitops.md's "Who holds which credential": AWS role conditions
    by statement id, Pulumi Cloud rules by (issuer, team)."""
    docs = (ROOT / "docs" / "gitops.md").read_text()
    section = docs.split("## Who holds which credential", 1)[1].split("\n## ", 1)[0]
    aws: dict[str, dict[str, str]] = {}
    pulumi: dict[tuple[str, str], dict[str, str]] = {}
    for block in re.findall(r"```json\n(.*?)```", section, re.S):
        document = json.loads(block)
        if "Statement" in document:
            for statement in document["Statement"]:
                conditions = {}
                for operator in statement["Condition"].values():
                    conditions.update({k.split(":", 1)[1]: v for k, v in operator.items()})
                aws[statement["Sid"]] = conditions
        else:
            rules = document["rules"]
            issuer = "github" if rules["sub"].startswith("repo:") else "gitlab"
            assert document["tokenType"] == "team"  # never an organization token
            pulumi[(issuer, document["teamName"])] = rules
    return aws, pulumi


def _docs_esc_access() -> dict[str, set[str]]:
    """docs/gitops.md's table of which Pulumi team may open which ESC environment (GitLab)."""
    docs = (ROOT / "docs" / "gitops.md").read_text()
    section = docs.split("| ESC environment | opened by | gives |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1:3] for line in section.strip().splitlines()[1:]]
    return {env.strip().strip("`"): set(re.findall(r"`([^`]+)`", who)) for env, who in rows}


REPO = "<owner>/<repo>"
GITHUB_SUBJECTS = {
    "deploy-production": f"repo:{REPO}:environment:production:job_workflow_ref:"
    f"{REPO}/.github/workflows/deploy-wave.yml@refs/heads/main",
    "drift": f"repo:{REPO}:environment:drift:job_workflow_ref:"
    f"{REPO}/.github/workflows/drift.yml@refs/heads/main",
    "preview": f"repo:{REPO}:environment:preview:job_workflow_ref:"
    f"{REPO}/.github/workflows/pull-request.yml@refs/pull/*/merge",
}


def test_docs_give_one_trust_policy_per_purpose_pinned_as_the_jobs_run() -> None:
    aws, pulumi = _docs_policies()
    # GitHub: the deploy identity only for the production environment and deploy-wave.yml on
    # the default branch; drift only for drift.yml there; preview only in its environment.
    assert aws["FedeployDeployProduction"]["sub"] == GITHUB_SUBJECTS["deploy-production"]
    assert aws["FedeployDrift"]["sub"] == GITHUB_SUBJECTS["drift"]
    assert aws["FedeployPreview"]["sub"] == GITHUB_SUBJECTS["preview"]
    assert (
        pulumi[("github", "fedeploy-deploy-production")]["sub"]
        == (GITHUB_SUBJECTS["deploy-production"])
    )
    assert pulumi[("github", "fedeploy-drift")]["sub"] == GITHUB_SUBJECTS["drift"]
    assert pulumi[("github", "fedeploy-preview")]["sub"] == GITHUB_SUBJECTS["preview"]
    # The files those subjects name are the ones whose jobs hold the identities.
    for (workflow, _job), held in GITHUB_CREDENTIALS.items():
        if "pulumi" in held:
            assert any(f"workflows/{workflow}@" in s for s in GITHUB_SUBJECTS.values()), workflow
    # GitLab: protected branch, protected environment, the top-level pipeline file of main.
    deploy = pulumi[("gitlab", "fedeploy-deploy-production")]
    assert deploy["ref_protected"] == deploy["environment_protected"] == "true"
    assert deploy["deployment_tier"] == "production"
    assert deploy["ci_config_ref_uri"].endswith("//.gitlab-ci.yml@refs/heads/main")
    drift = pulumi[("gitlab", "fedeploy-drift")]
    assert (drift["environment"], drift["pipeline_source"]) == ("ops/drift", "schedule")
    assert drift["ref_protected"] == drift["environment_protected"] == "true"
    # GitLab's AWS roles trust Pulumi ESC opening their own environment, never a GitLab
    # token (whose environment AWS cannot see): the deploy role is out of the drift job's reach.
    for sid, team in (
        ("FedeployGitlabDeployProduction", "fedeploy-deploy-production"),
        ("FedeployGitlabDrift", "fedeploy-drift"),
    ):
        assert aws[sid]["aud"] == "aws:<org>"
        assert aws[sid]["sub"] == f"pulumi:environments:org:<org>:env:{GITLAB_AWS_ESC[team]}"
    access = _docs_esc_access()
    assert access == {
        "fedeploy/aws-deploy-production": {"fedeploy-deploy-production"},
        "fedeploy/aws-drift": {"fedeploy-drift"},
    }
    # No policy trusts a whole repository or any branch.
    for rules in [*aws.values(), *pulumi.values()]:
        assert not rules["sub"].endswith(":*") and ":ref:*" not in rules["sub"], rules


def test_the_docs_say_what_the_change_jobs_tokens_can_do_and_where_deploys_run() -> None:
    """docs/gitops.md: the change jobs' implicit tokens with what they can do and how
    `CI_JOB_TOKEN` is limited; how the change's text is made literal; protected runners."""
    docs = (ROOT / "docs" / "gitops.md").read_text()
    table = docs.split("## Who holds which credential", 1)[1].split("\n\n", 3)[2]
    row = next(line for line in table.splitlines() if "GitLab `plan:change`" in line)
    for needed in (
        "ACTIONS_RUNTIME_TOKEN",
        "CI_JOB_TOKEN",
        "push to this project's container and package registries",
        "Job token permissions",
        "protected container tags",
        "protected packages",
        "never publish releases to a registry a merge request's job token can push to",
    ):
        assert needed in row, needed
    assert "none at all" not in docs and "writes nothing the report is built from" not in docs
    assert "no text of the change reaches the comment as Markdown" not in docs
    assert "fenced blocks whose fence" in docs and "downloads\nthat ID, never a name" in docs
    assert "**protected** runners" in docs
