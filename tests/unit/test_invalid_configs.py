"""Bad stack files: each names the key path and says what is allowed, before any resource."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedeploy.errors import StackConfigError
from fedeploy.offline.engine import plan_stack
from tests.conftest import STACKS

DELETE = object()


def _base(stack: str) -> dict[str, Any]:
    return yaml.safe_load((STACKS / f"Pulumi.{stack}.yaml").read_text())["config"]["fedeploy:site"]


def _apply(site: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    site = copy.deepcopy(site)
    for path, value in changes.items():
        node = site
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        last: Any = int(parts[-1]) if isinstance(node, list) else parts[-1]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return site


# (case id, base stack, changes, key path in the error, words the message must contain)
CASES = [
    (
        "wrong-type-int",
        "aws-frankfurt",
        {"cluster.node_groups.system.min_size": "two"},
        "site.cluster.node_groups.system.min_size",
        ["given 'two'", "integer"],
    ),
    (
        "negative-expiry",
        "aws-frankfurt",
        {"storage.buckets.raw.lifecycle.expire_after_days": -5},
        "site.storage.buckets.raw.lifecycle.expire_after_days",
        ["given -5", "greater than or equal to 1"],
    ),
    (
        "unknown-top-key",
        "aws-frankfurt",
        {"netwrok": {}},
        "site.netwrok",
        ["unknown key", "did you mean 'network'"],
    ),
    (
        "unknown-nested-key",
        "aws-frankfurt",
        {"storage.buckets.raw.versionning": True},
        "site.storage.buckets.raw.versionning",
        ["did you mean 'versioning'"],
    ),
    (
        "unknown-kind",
        "aws-frankfurt",
        {"kind": "awss"},
        "site.kind",
        ["allowed: aws, kubernetes, hpc, hub", "did you mean 'aws'"],
    ),
    ("missing-kind", "aws-frankfurt", {"kind": DELETE}, "site.kind", ["given nothing"]),
    (
        "bad-bucket-name",
        "aws-frankfurt",
        {"storage.buckets.Raw_Data": {}},
        "site.storage.buckets.Raw_Data",
        ["the name 'Raw_Data' is not allowed", "must match pattern"],
    ),
    (
        "min-above-max",
        "aws-frankfurt",
        {"cluster.node_groups.system.min_size": 9},
        "site.cluster.node_groups.system",
        ["min_size (9) is above max_size (6)"],
    ),
    (
        "desired-out-of-range",
        "aws-frankfurt",
        {"cluster.node_groups.system.desired_size": 1},
        "site.cluster.node_groups.system",
        ["desired_size (1) must lie between"],
    ),
    (
        "unknown-replication-target",
        "aws-frankfurt",
        {"storage.buckets.raw.replicate_to.site": "aws-dubln"},
        "site.storage.buckets.raw.replicate_to.site",
        ["unknown replication target 'aws-dubln'", "did you mean 'aws-dublin'"],
    ),
    (
        "replication-to-non-aws",
        "aws-frankfurt",
        {"storage.buckets.raw.replicate_to.site": "ovh-gra"},
        "site.storage.buckets.raw.replicate_to.site",
        ["'kubernetes' site", "needs an aws site"],
    ),
    (
        "replication-missing-bucket",
        "aws-frankfurt",
        {"storage.buckets.raw.replicate_to.bucket": "archive"},
        "site.storage.buckets.raw.replicate_to.bucket",
        ["has no bucket 'archive'", "raw"],
    ),
    (
        "replication-without-versioning",
        "aws-frankfurt",
        {"storage.buckets.raw.versioning": False},
        "site.storage.buckets.raw",
        ["replicate_to needs versioning"],
    ),
    (
        "missing-kubeconfig",
        "ovh-gra",
        {"cluster.kubeconfig": DELETE},
        "site.cluster.kubeconfig",
        ["is required", "kubeconfig"],
    ),
    (
        "plaintext-kubeconfig",
        "ovh-gra",
        {"cluster.kubeconfig": "apiVersion: v1\nkind: Config"},
        "site.cluster.kubeconfig",
        ["plaintext value where a secret is required", "pulumi config set --secret"],
    ),
    (
        "plaintext-s3-secret",
        "ovh-gra",
        {"storage.secret_access_key": "s3cr3t"},
        "site.storage.secret_access_key",
        ["plaintext value where a secret is required"],
    ),
    (
        "plaintext-ssh-key",
        "hpc-kajaani",
        {"bridge.ssh_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----"},
        "site.bridge.ssh_private_key",
        ["plaintext value where a secret is required"],
    ),
    (
        "http-endpoint",
        "ovh-gra",
        {"storage.endpoint": "http://s3.gra.io.cloud.ovh.net"},
        "site.storage",
        ["must use https"],
    ),
    (
        "bad-cidr",
        "aws-frankfurt",
        {"network.cidr": "10.0.0.0/8"},
        "site.network",
        ["private IPv4 range from /16 to /20"],
    ),
    (
        "zone-of-other-region",
        "aws-frankfurt",
        {"network.availability_zones": ["eu-central-1a", "eu-west-1b"]},
        "site",
        ["'eu-west-1b' is not a zone of region 'eu-central-1'"],
    ),
    (
        "bad-region",
        "aws-frankfurt",
        {"region": "Frankfurt"},
        "site.region",
        ["'Frankfurt' is not an AWS region"],
    ),
    (
        "bad-kubernetes-version",
        "ovh-gra",
        {"cluster.version": "1.19"},
        "site.cluster.version",
        ["given '1.19'"],
    ),
    (
        "rds-on-kubernetes-site",
        "ovh-gra",
        {"services.catalog.database": "rds"},
        "site",
        ["only aws sites offer"],
    ),
    (
        "external-db-missing",
        "ovh-gra",
        {"services.catalog.database": "external"},
        "site.services.catalog",
        ["`external` (host, username, password) is missing"],
    ),
    (
        "service-bucket-undeclared",
        "aws-frankfurt",
        {"services.ingestion.bucket": "landing"},
        "site",
        ["services.ingestion.bucket is 'landing'", "declared: models, raw"],
    ),
    (
        "gpu-on-without-gpu-nodes",
        "aws-dublin",
        {"services.inference.gpu": "on"},
        "site",
        ["no group with accelerator: nvidia"],
    ),
    (
        "bad-bbox",
        "aws-frankfurt",
        {"services.ingestion.sentinel.sources.0.bbox": [15.1, 47.2, 5.8, 55.1]},
        "site.services.ingestion.sentinel.sources.0",
        ["west < east"],
    ),
    (
        "cloud-cover-above-100",
        "aws-frankfurt",
        {"services.ingestion.sentinel.sources.0.max_cloud_cover": 140},
        "site.services.ingestion.sentinel.sources.0.max_cloud_cover",
        ["less than or equal to 100"],
    ),
    (
        "bad-cron",
        "aws-frankfurt",
        {"services.ingestion.sentinel.schedule": "hourly"},
        "site.services.ingestion.sentinel.schedule",
        ["given 'hourly'"],
    ),
    ("hpc-without-bridge", "hpc-kajaani", {"bridge": DELETE}, "site.bridge", ["is required"]),
    (
        "bridge-mode-fields",
        "hpc-kajaani",
        {"bridge.mode": "existing"},
        "site.bridge",
        ["requires endpoint"],
    ),
    (
        "open-bridge-cidr",
        "hpc-kajaani",
        {"bridge.allowed_cidrs": ["0.0.0.0/0"]},
        "site.bridge.allowed_cidrs",
        ["whole internet"],
    ),
    (
        "hub-unknown-member",
        "eu-hub",
        {"members": ["aws-frankfurt", "ovh-gre"]},
        "site.members.1",
        ["unknown site 'ovh-gre'", "did you mean 'ovh-gra'"],
    ),
    (
        "hub-member-twice",
        "eu-hub",
        {"members": ["aws-frankfurt", "aws-frankfurt"]},
        "site",
        ["lists 'aws-frankfurt' twice"],
    ),
    ("site-not-a-mapping", "aws-frankfurt", None, "site", ["must be a mapping"]),
]


@pytest.fixture(scope="module")
def stacks_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("project") / "stacks"
    shutil.copytree(STACKS, directory)
    return directory


def test_corpus_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize(
    ("case", "stack", "changes", "path", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_config_is_refused_before_any_resource(stacks_dir, case, stack, changes, path, words):
    site = "not a mapping" if changes is None else _apply(_base(stack), changes)
    with pytest.raises(StackConfigError) as caught:
        plan_stack(stacks_dir / f"Pulumi.{stack}.yaml", config_override={"fedeploy:site": site})
    error = caught.value
    assert error.resources_registered == 0
    assert error.stack_file.endswith(f"Pulumi.{stack}.yaml")
    matching = [str(issue) for issue in error.issues if issue.path == path]
    assert matching, f"no issue at {path}: {error}"
    for word in words:
        assert any(word in text for text in matching), f"{word!r} not in {matching}"


def test_all_errors_of_a_file_are_reported_together(stacks_dir):
    site = _apply(
        _base("aws-frankfurt"),
        {
            "netwrok": {},
            "storage.buckets.raw.lifecycle.expire_after_days": 0,
            "cluster.node_groups.gpu.max_size": "x",
        },
    )
    with pytest.raises(StackConfigError) as caught:
        plan_stack(
            stacks_dir / "Pulumi.aws-frankfurt.yaml", config_override={"fedeploy:site": site}
        )
    paths = {issue.path for issue in caught.value.issues}
    assert {
        "site.netwrok",
        "site.storage.buckets.raw.lifecycle.expire_after_days",
        "site.cluster.node_groups.gpu.max_size",
    } <= paths
    assert "3 problems" in str(caught.value)


def test_a_plaintext_secret_is_never_echoed(stacks_dir):
    site = _apply(_base("ovh-gra"), {"storage.secret_access_key": "CANARY-do-not-print"})
    with pytest.raises(StackConfigError) as caught:
        plan_stack(stacks_dir / "Pulumi.ovh-gra.yaml", config_override={"fedeploy:site": site})
    assert "CANARY" not in str(caught.value)
