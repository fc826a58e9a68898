"""Stack files that planned clean and failed (or misbehaved) at deploy are refused when checked:
the provider's region, names Pulumi never reads, one catalog URL for two sites, and a reference
cycle that `plan` refused while `validate` said ok."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedeploy.cli import app
from fedeploy.offline.federation import load_federation
from tests.builders import SECURE_PASSWORD, external_database_stack
from tests.conftest import STACKS

runner = CliRunner()


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    directory = tmp_path / "stacks"
    shutil.copytree(STACKS, directory)
    return directory


def edit(stacks: Path, stack: str, original: str, edited: str) -> Path:
    path = stacks / f"Pulumi.{stack}.yaml"
    text = path.read_text()
    assert original in text, original
    path.write_text(text.replace(original, edited, 1))
    return path


def refused(path: Path) -> str:
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    return result.output


def test_an_aws_site_must_set_the_providers_region(stacks: Path) -> None:
    path = edit(stacks, "aws-dublin", "  aws:region: eu-west-1\n", "")
    said = refused(path)
    assert "- config.aws:region: is required for an aws site" in said
    assert "add `aws:region: eu-west-1` beside fedeploy:site" in said


def test_openstack_region_must_be_the_sites(stacks: Path) -> None:
    path = edit(stacks, "ewc-bologna", "openstack:region: RegionOne", "openstack:region: RegionTwo")
    said = refused(path)
    assert "- config.openstack:region: is 'RegionTwo' but site.region is 'RegionOne'" in said


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("Pulumi.cf-new.yml", "rename it Pulumi.cf-new.yaml"),
        ("pulumi.cf-new.yaml", "rename it Pulumi.cf-new.yaml"),
        ("Pulumi-cf-new.yaml", "rename it Pulumi.cf-new.yaml"),
    ],
)
def test_a_file_pulumi_would_never_read_is_named(stacks: Path, name: str, hint: str) -> None:
    """`Pulumi.x.yml` was planned (and reported as .yaml); near misses were skipped silently."""
    (stacks / name).write_text((stacks / "Pulumi.cf-waw.yaml").read_text())
    result = runner.invoke(app, ["validate", "--stacks-dir", str(stacks)])
    assert result.exit_code == 2
    assert f"{stacks / name}: not read as a stack file" in result.output and hint in result.output
    federation = load_federation(stacks)
    assert "cf-new" not in federation.sites
    assert [str(e) for e in federation.errors if name in str(e)], federation.errors
    direct = runner.invoke(app, ["validate", str(stacks / name)])
    assert direct.exit_code == 2 and "Pulumi reads no other name" in direct.output


def test_two_sites_with_one_catalog_url_are_refused(stacks: Path) -> None:
    path = edit(
        stacks,
        "ovh-gra",
        "url: https://catalog.gra.eofed.example.eu",
        "url: https://Catalog.WAW.eofed.example.eu/",
    )
    said = refused(path)
    assert (
        "- site.services.catalog.url: https://catalog.waw.eofed.example.eu is also the catalog "
        "url of site 'cf-waw' (Pulumi.cf-waw.yaml)" in said
    )


def test_validate_refuses_the_reference_cycle_plan_refuses(stacks: Path) -> None:
    path = edit(
        stacks,
        "aws-dublin",
        "        models: {}\n",
        "        models:\n          replicate_to:\n            site: aws-frankfurt\n"
        "            bucket: models\n",
    )
    said = refused(path)
    assert (
        "- site.storage.buckets.models.replicate_to.site: stack references form a cycle: "
        "aws-dublin -> aws-frankfurt -> aws-dublin" in said
    )
    assert load_federation(stacks).errors  # plan refuses it too


NVIDIA = "accelerator: nvidia"
NONE = "accelerator: none"


@pytest.mark.parametrize(
    ("stack", "original", "edited", "key", "words"),
    [
        (  # NVIDIA AMI, GPU taint and a GPU request on a CPU type: planned clean before
            "aws-dublin",
            "          max_size: 4\n",
            f"          max_size: 4\n          {NVIDIA}\n",
            "site.cluster.node_groups.system",
            "instance type m6i.large has no NVIDIA GPU",
        ),
        (  # AMD GPUs: no NVIDIA driver
            "aws-frankfurt",
            "instance_types: [g5.xlarge]",
            "instance_types: [g4ad.xlarge]",
            "site.cluster.node_groups.gpu",
            "instance type g4ad.xlarge has no NVIDIA GPU",
        ),
        (
            "aws-frankfurt",
            f"max_size: 4\n          {NVIDIA}",
            f"max_size: 4\n          {NONE}",
            "site.cluster.node_groups.gpu",
            "instance type g5.xlarge has GPUs",
        ),
        (
            "ovh-gra",
            "flavor: l4-90",
            "flavor: b3-32",
            "site.cluster.node_pools.gpu",
            "flavor b3-32 has no NVIDIA GPU",
        ),
        (
            "ovh-gra",
            f"max_size: 2\n          {NVIDIA}",
            f"max_size: 2\n          {NONE}",
            "site.cluster.node_pools.gpu",
            "flavor l4-90 has GPUs",
        ),
        (
            "ewc-bologna",
            f"max_size: 2\n          {NVIDIA}",
            f"max_size: 2\n          {NONE}",
            "site.cluster.node_groups.gpu",
            "flavor 8cpu-64gbmem-1a100 has GPUs",
        ),
    ],
)
def test_the_accelerator_fits_the_machine_type_both_ways(
    stacks, stack, original, edited, key, words
):
    said = refused(edit(stacks, stack, original, edited))
    line = next(line for line in said.splitlines() if f"- {key}:" in line)
    assert words in line, said


def test_an_openstack_flavor_not_known_as_gpu_is_an_advisory(stacks: Path) -> None:
    """OpenStack clouds name flavors freely: an unknown name may still have GPUs."""
    path = edit(stacks, "ewc-bologna", "flavor: 8cpu-64gbmem-1a100", "flavor: 8cpu-64gbmem")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "site.cluster.node_groups.gpu.flavor: advisory: '8cpu-64gbmem' is no GPU flavor" in (
        result.output
    )


def external_database(tmp_path: Path, **external: object) -> Path:
    return external_database_stack(
        tmp_path,
        {"host": "db.example.org", "username": "catalog", "password": SECURE_PASSWORD, **external},
    )


@pytest.mark.parametrize(
    ("external", "words"),
    [
        ({}, "ssl_mode is 'verify-full' but ca_certificate is missing"),
        ({"ssl_mode": "verify-ca"}, "ssl_mode is 'verify-ca' but ca_certificate is missing"),
        ({"ca_certificate": "not a certificate"}, "is not a PEM certificate bundle"),
    ],
)
def test_an_external_database_checked_by_certificate_needs_its_ca(tmp_path, external, words):
    said = refused(external_database(tmp_path, **external))
    assert words in said


def test_an_external_database_without_verification_needs_no_ca(tmp_path) -> None:
    path = external_database(tmp_path, ssl_mode="require")
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
