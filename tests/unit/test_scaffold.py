"""`fedeploy new`: a new site's stack file that plans once the user has made the choices only
they can make (each named until then), with pending secrets the offline plan accepts (an
advisory), `pulumi up` and production sites refuse, and `fedeploy secrets` lists."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fedeploy.cli import app
from fedeploy.config.loader import CHOICE, check_stack_file, validate_site
from fedeploy.errors import StackConfigError
from fedeploy.new.scaffold import NEW_KINDS, ScaffoldError, join_members, scaffold
from fedeploy.plan.run import run_plan
from tests.conftest import STACKS

runner = CliRunner()
UUID = "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"
# What a user fills in for each choice, by key path (the same answers for every kind).
ANSWERS: dict[str, Any] = {
    "config.aws:region": "eu-north-1",
    "config.openstack:region": "WAW3-1",
    "site.region": {"aws": "eu-north-1", "openstack": "WAW3-1", "ovh": "DE1"},
    "site.network.availability_zones.0": "eu-north-1a",
    "site.network.availability_zones.1": "eu-north-1b",
    "site.cluster.public_access_cidrs.0": "198.51.100.0/24",
    "site.cluster.api_access_cidrs.0": "198.51.100.0/24",
    "site.network.api_access_cidrs.0": "198.51.100.0/24",
    "site.storage.bucket_prefix": "eofed-new",
    "site.network.external_network_id": UUID,
    "site.storage.endpoint": "https://s3.new.example.eu",
    "site.storage.region": "new",
    "site.cluster.image_id": UUID,
    "site.cluster.master_flavor": "eo2.large",
    "site.cluster.node_groups.system.flavor": "eo2.xlarge",
    "site.project_id": "0123456789abcdef0123456789abcdef",
    "site.bridge.host": "slurm-gw.new.example.eu",
    "site.bridge.ssh_user": "fedeploy",
    "site.bridge.partitions.0": "small-g",
    "site.services.catalog.exposure.controller_namespace": "ingress-nginx",
    "site.services.catalog.exposure.tls.cert_manager_issuer": "letsencrypt",
    "site.services.catalog.exposure.oidc.issuer": "https://login.eofed.example.eu/realms/eofed",
}


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    directory = tmp_path / "stacks"
    shutil.copytree(STACKS, directory)
    return directory


def new(stacks: Path, site: str, kind: str, *more: str):
    return runner.invoke(app, ["new", site, "--kind", kind, "--stacks-dir", str(stacks), *more])


def choose(path: Path, kind: str) -> None:
    """Answer every choice of the file as a user would, as ANSWERS says."""
    document = yaml.safe_load(path.read_text())
    site_name = path.name.split(".")[1]

    def walk(node: Any, key: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{key}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{key}.{i}") for i, v in enumerate(node)]
        if isinstance(node, str) and CHOICE.match(node):
            if key == "site.services.catalog.url":
                return f"https://catalog.{site_name}.example.eu"
            answer = ANSWERS[key]
            return answer[kind] if isinstance(answer, dict) else answer
        return node

    config = document["config"]
    for key in list(config):
        if key != "fedeploy:site":
            config[key] = walk(config[key], f"config.{key}")
    config["fedeploy:site"] = walk(config["fedeploy:site"], "site")
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_a_new_site_names_each_choice_and_nothing_else(stacks: Path, kind: str) -> None:
    made = new(stacks, f"new-{kind}", kind)
    assert made.exit_code == 0, made.output
    path = stacks / f"Pulumi.new-{kind}.yaml"
    with pytest.raises(StackConfigError) as caught:
        check_stack_file(path)
    issues = caught.value.issues
    assert issues and all(
        "still the placeholder `fedeploy new` wrote: choose" in i.message for i in issues
    ), [str(i) for i in issues]


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_a_new_site_plans_clean_once_chosen(stacks: Path, kind: str) -> None:
    site = f"new-{kind}"
    assert new(stacks, site, kind, "--hub", "eu-hub").exit_code == 0
    choose(stacks / f"Pulumi.{site}.yaml", kind)
    report = run_plan(stacks, [site], jobs=1)
    assert report.errors == [] and report.exit_code == 0, [str(e) for e in report.errors]
    notes = [str(n) for n in report.federation.notes[site]]
    pending = [n for n in notes if "a pending secret (placeholder)" in n]
    assert len(pending) == {"kubernetes": 3, "hpc": 4}.get(kind, 0), notes
    hub = yaml.safe_load((stacks / "Pulumi.eu-hub.yaml").read_text())
    assert hub["config"]["fedeploy:site"]["members"][-1] == site


def test_the_address_ranges_overlap_nothing(stacks: Path) -> None:
    for kind in ("openstack", "kubernetes", "ovh"):
        assert new(stacks, f"new-{kind}", kind).exit_code == 0
        choose(stacks / f"Pulumi.new-{kind}.yaml", kind)
    result = runner.invoke(app, ["validate", "--stacks-dir", str(stacks)])
    assert result.exit_code == 0, result.output
    assert "overlaps" not in result.output


def test_the_secrets_still_to_set_are_listed(stacks: Path) -> None:
    made = new(stacks, "new-hpc", "hpc")
    listed = runner.invoke(app, ["secrets", "new-hpc", "--stacks-dir", str(stacks)])
    for output in (made.output, listed.output):
        assert "4 secret(s) still to set" in output
        assert (
            "pulumi config set --stack new-hpc --secret --path 'fedeploy:site.bridge.ssh_private_key'"
            in output
        )
    assert listed.exit_code == 0
    done = runner.invoke(app, ["secrets", "aws-dublin", "--stacks-dir", str(stacks)])
    assert done.exit_code == 0
    assert "no pending secret: no value is a `pending:` placeholder" in done.output


def test_new_says_it_looked_for_pending_secrets_in_a_file_that_does_not_validate_yet(
    stacks: Path,
) -> None:
    made = new(stacks, "new-store", "aws", "--storage-only")
    assert made.exit_code == 0, made.output
    assert (
        "no pending secret: the file as written holds no `pending:` placeholder (checked "
        "without validating it: it does not validate yet, `fedeploy validate` says why)"
    ) in made.output
    assert "(the file does not validate yet: `fedeploy validate`)" not in made.output


def test_plans_advisory_and_the_production_refusal_name_the_stack_to_set_the_secret_on(
    stacks: Path,
) -> None:
    """Run as printed, the command sets that stack's secret, not the selected stack's."""
    assert new(stacks, "new-k8s", "kubernetes").exit_code == 0
    path = stacks / "Pulumi.new-k8s.yaml"
    choose(path, "kubernetes")
    notes = [str(n) for n in check_stack_file(path).notes if "pending secret" in n.message]
    assert len(notes) == 3, notes
    for note in notes:
        assert "`pulumi config set --stack new-k8s --secret --path 'fedeploy:site." in note
        assert "`pulumi config set --secret" not in note
    raw = yaml.safe_load(path.read_text())["config"]["fedeploy:site"]
    raw["environment"] = "production"
    with pytest.raises(StackConfigError) as refused:
        validate_site(raw, stack_file=str(path))
    assert "`pulumi config set --stack new-k8s --secret --path" in str(refused.value)
    assert "`pulumi config set --secret" not in str(refused.value)


def test_pulumi_up_and_production_refuse_a_pending_secret(stacks: Path) -> None:
    assert new(stacks, "new-k8s", "kubernetes").exit_code == 0
    path = stacks / "Pulumi.new-k8s.yaml"
    choose(path, "kubernetes")
    raw = yaml.safe_load(path.read_text())["config"]["fedeploy:site"]
    assert validate_site(raw, stack_file=str(path)).storage.access_key_id.pending
    with pytest.raises(StackConfigError) as deploying:
        validate_site(raw, stack_file=str(path), deploying=True)
    assert {i.path for i in deploying.value.issues} == {
        "site.storage.access_key_id",
        "site.storage.secret_access_key",
        "site.cluster.kubeconfig",
    }
    assert "which `pulumi up` never deploys" in deploying.value.issues[0].message
    raw["environment"] = "production"
    with pytest.raises(StackConfigError, match="a production site never holds"):
        validate_site(raw, stack_file=str(path))


@pytest.mark.parametrize(
    ("site", "kind", "hub", "words"),
    [
        ("New_Site", "aws", None, "is not a valid site name"),
        ("new-x", "gcp", None, "--kind 'gcp': allowed: aws, openstack, ovh, kubernetes, hpc"),
        ("aws-dublin", "aws", None, "exists already"),
        (
            "new-x",
            "aws",
            "aws-dublin",
            "--hub 'aws-dublin': aws-dublin is an aws site, not a hub; nothing was written",
        ),
        ("new-x", "aws", "nohub", "--hub 'nohub': there is no stack file Pulumi.nohub.yaml"),
    ],
)
def test_a_scaffold_that_cannot_be_written_is_refused(stacks, site, kind, hub, words) -> None:
    with pytest.raises(ScaffoldError, match=words.replace("(", r"\(").replace("[", r"\[")):
        scaffold(site, kind, stacks, hub)
    result = new(stacks, site, kind, *(["--hub", hub] if hub else []))
    assert result.exit_code == 2 and words in result.output


def test_a_hub_that_does_not_validate_is_named_with_why_it_cannot_be_joined(stacks) -> None:
    hub = stacks / "Pulumi.eu-hub.yaml"
    hub.write_text(hub.read_text().replace("    kind: hub\n", "    kind: hub\n    bogus: 1\n"))
    result = new(stacks, "new-x", "aws", "--hub", "eu-hub")
    assert result.exit_code == 2
    assert f"{hub} does not validate (`fedeploy validate {hub}` says why)" in result.output
    assert "none valid; eu-hub declares kind: hub but does not validate" in result.output
    assert "hubs there: none)" not in result.output
    assert not (stacks / "Pulumi.new-x.yaml").exists()


def test_a_members_alias_is_refused_naming_the_hub_file_and_that_nothing_was_written(
    stacks,
) -> None:
    hub = stacks / "Pulumi.eu-hub.yaml"
    text = hub.read_text()
    line = next(line for line in text.splitlines() if line.startswith("    members: ["))
    names = line.split("[", 1)[1]
    aliased = text.replace(line, "    members: *sites").replace(
        "config:\n", f"x-sites: &sites [{names}\nconfig:\n", 1
    )
    hub.write_text(aliased)
    result = new(stacks, "new-x", "aws", "--hub", "eu-hub")
    assert result.exit_code == 2, result.output
    assert f"{hub}: site.members is not a one-line [..] list" in result.output
    assert "nothing was written" in result.output
    assert f"add 'new-x' to site.members in {hub} by hand" in result.output
    assert not (stacks / "Pulumi.new-x.yaml").exists()


def test_a_10_kb_name_or_hub_is_shortened_as_validate_shortens_a_value(stacks) -> None:
    long = "a" * 10_000
    named = new(stacks, long, "aws", "--storage-only")
    assert named.exit_code == 2
    assert f"'{'a' * 55}...' (10000 characters) is not a valid site name" in named.output
    assert long not in named.output and len(named.output) < 300
    hub = new(stacks, "new-x", "aws", "--hub", long)
    assert hub.exit_code == 2
    assert "(10000 characters): there is no stack file of that name" in hub.output
    assert long not in hub.output and len(hub.output) < 400


def test_members_are_joined_in_either_list_form() -> None:
    flow = "    members: [a, b]  # the sites\n"
    assert join_members(flow, "c") == "    members: [a, b, c]  # the sites\n"
    block = "    members:\n      - a\n      - b\n    cluster: {}\n"
    assert (
        join_members(block, "c")
        == "    members:\n      - a\n      - b\n      - c\n    cluster: {}\n"
    )
