"""Bad stack files: each names the key path and says what is allowed, before any resource."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fedeploy.cli import app, main
from fedeploy.errors import StackConfigError
from fedeploy.offline.engine import plan_stack
from tests.builders import example_site
from tests.conftest import STACKS

DELETE = object()


# A kubernetes site of our own: the example stacks may change kind under these tests.
FIXTURES = Path(__file__).resolve().parent.parent / "stack_files" / "valid"
KUBERNETES_SITE = FIXTURES / "Pulumi.k8s-gra.yaml"


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
        {"storage.buckets.raw.replicate_to.site": "hpc-kajaani"},
        "site.storage.buckets.raw.replicate_to.site",
        ["'hpc' site", "needs an aws site"],
    ),
    (
        "replication-on-s3-compatible",
        "k8s-gra",
        {"storage.buckets.raw.replicate_to": {"site": "aws-dublin", "bucket": "raw"}},
        "site.storage",
        ["buckets.raw.replicate_to: replication is only available on aws sites"],
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
        "k8s-gra",
        {"cluster.kubeconfig": DELETE},
        "site.cluster.kubeconfig",
        ["is required", "kubeconfig"],
    ),
    (
        "plaintext-kubeconfig",
        "k8s-gra",
        {"cluster.kubeconfig": "apiVersion: v1\nkind: Config"},
        "site.cluster.kubeconfig",
        [
            "plaintext value where a secret is required",
            "pulumi config set --stack k8s-gra --secret",
        ],
    ),
    (
        "plaintext-s3-secret",
        "k8s-gra",
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
        "k8s-gra",
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
        "k8s-gra",
        {"cluster.version": "1.19"},
        "site.cluster.version",
        ["given '1.19'"],
    ),
    (
        "rds-on-kubernetes-site",
        "k8s-gra",
        {"services.catalog.database": "rds"},
        "site",
        ["only aws sites offer"],
    ),
    (
        "external-db-missing",
        "k8s-gra",
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
        ["'hourly' is not a cron schedule", "@hourly"],
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
    # Parsed values are typed in the model: nothing reaches network.py unparsed (issue 13).
    (
        "pod-cidr-prefix-too-long",
        "k8s-gra",
        {"cluster.pod_cidrs": ["10.2.0.0/33"]},
        "site.cluster.pod_cidrs.0",
        ["'10.2.0.0/33' is not an address range"],
    ),
    (
        "pod-cidr-host-bits",
        "k8s-gra",
        {"cluster.pod_cidrs": ["10.2.0.1/16"]},
        "site.cluster.pod_cidrs.0",
        ["host bits set", "10.2.0.0/16"],
    ),
    (
        "pod-cidr-is-a-region",
        "k8s-gra",
        {"cluster.pod_cidrs": ["eu-west-1"]},
        "site.cluster.pod_cidrs.0",
        ["'eu-west-1' is not an address range"],
    ),
    (
        "public-access-cidr-host-bits",
        "aws-dublin",
        {"cluster.public_access_cidrs": ["198.51.100.7/24"]},
        "site.cluster.public_access_cidrs.0",
        ["host bits set"],
    ),
    (
        "vpc-cidr-not-a-range",
        "aws-dublin",
        {"network.cidr": "10.30.0.0/40"},
        "site.network.cidr",
        ["not an address range"],
    ),
    ("storage-a-scalar", "aws-dublin", {"storage": 42}, "site.storage", ["given 42"]),
    (
        "unknown-region-reported-as-region",
        "aws-dublin",
        {"region": "eu-west-9"},
        "site.region",
        ["'eu-west-9' is not an AWS region"],
    ),
    (
        "zone-not-a-zone",
        "aws-dublin",
        {"network.availability_zones": ["eu-west-1a", "eu-west-1"]},
        "site.network.availability_zones.1",
        ["given 'eu-west-1'"],
    ),
    (
        "gateway-bridge-nothing-admitted",
        "hpc-kajaani",
        {"cluster.pod_cidrs": []},
        "site",
        ["nothing could reach it", "cluster.pod_cidrs", "bridge.allowed_cidrs"],
    ),
    (
        "mixed-architectures",
        "aws-dublin",
        {"cluster.node_groups.system.instance_types": ["m7g.large", "m6i.large"]},
        "site.cluster.node_groups.system",
        ["mixes architectures", "m7g.large (arm64)", "m6i.large (x86_64)"],
    ),
    (
        "secure-placeholder",
        "k8s-gra",
        {"cluster.kubeconfig": {"secure": "TODO"}},
        "site.cluster.kubeconfig",
        [
            "not a placeholder",
            "pulumi config set --stack k8s-gra --secret --path 'fedeploy:site.cluster.kubeconfig'",
        ],
    ),
    (
        "plaintext-secret-names-the-command",
        "k8s-gra",
        {"storage.access_key_id": "AKIAEXAMPLE"},
        "site.storage.access_key_id",
        [
            "`pulumi config set --stack k8s-gra --secret --path 'fedeploy:site.storage.access_key_id' <value>`",
        ],
    ),
    (
        "tag-key-reserved-by-fedeploy",
        "aws-frankfurt",
        {"tags": {"fedeploy:site": "mine"}},
        "site.tags.fedeploy:site",
        ["is not allowed", "reserved"],
    ),
    (
        "tag-key-reserved-by-aws",
        "aws-frankfurt",
        {"tags": {"aws:createdBy": "me"}},
        "site.tags.aws:createdBy",
        ["reserved"],
    ),
    (
        "tag-value-aws-refuses",
        "aws-frankfurt",
        {"tags": {"owner": 'x"; rm -rf /'}},
        "site.tags.owner",
        ["given 'x\"; rm -rf /'", "must match pattern"],
    ),
    (
        "tag-value-too-long",
        "aws-frankfurt",
        {"tags": {"owner": "x" * 300}},
        "site.tags.owner",
        ["at most 256 characters"],
    ),
    (
        "sentinel-time-window-not-a-duration",
        "aws-frankfurt",
        {"services.ingestion.sentinel.sources.0.datetime": "yesterday"},
        "site.services.ingestion.sentinel.sources.0.datetime",
        ["'yesterday' is not a time window", "P2D"],
    ),
    (
        "sentinel-time-window-bad-duration",
        "aws-frankfurt",
        {"services.ingestion.sentinel.sources.0.datetime": "P2X"},
        "site.services.ingestion.sentinel.sources.0.datetime",
        ["'P2X' is not a time window"],
    ),
    (
        "sentinel-time-window-backwards",
        "aws-frankfurt",
        {
            "services.ingestion.sentinel.sources.0.datetime": (
                "2024-05-08T00:00:00Z/2024-05-01T00:00:00Z"
            )
        },
        "site.services.ingestion.sentinel.sources.0.datetime",
        ["ends before it starts"],
    ),
    (
        "sentinel-collection-with-a-line-break",
        "aws-frankfurt",
        {"services.ingestion.sentinel.sources.0.collections.0": "sentinel-2-l2a\nx"},
        "site.services.ingestion.sentinel.sources.0.collections.0",
        ["must match pattern"],
    ),
    (
        "mqtt-host-is-a-url",
        "aws-frankfurt",
        {"services.ingestion.stream.mqtt.host": "mqtts://broker.example.eu:8883"},
        "site.services.ingestion.stream.mqtt.host",
        ["given 'mqtts://broker.example.eu:8883'"],
    ),
    (
        "s3-region-with-a-space",
        "hpc-kajaani",
        {"storage.region": "eu west"},
        "site.storage.region",
        ["given 'eu west'"],
    ),
    (
        "provisioned-s3-region-with-a-line-break",
        "ewc-bologna",
        {"storage.region": "default\nx"},
        "site.storage.region",
        ["given 'default\\nx'; allowed: letters (either case), digits and '-'"],
    ),
    (
        "kube-context-with-a-line-break",
        "cf-waw",
        {"cluster.context": "eofed-waw\nx"},
        "site.cluster.context",
        ["must match pattern"],
    ),
    (
        "rds-instance-class-not-one",
        "aws-frankfurt",
        {"services.catalog.rds.instance_class": "t4g.medium"},
        "site.services.catalog.rds.instance_class",
        ["given 't4g.medium'"],
    ),
    (
        "rds-engine-version-not-one",
        "aws-frankfurt",
        {"services.catalog.rds.engine_version": "latest"},
        "site.services.catalog.rds.engine_version",
        ["given 'latest'"],
    ),
    (
        "catalog-url-that-would-end-a-csp-directive",
        "eu-hub",
        {"services.catalog.url": "https://catalog.eofed.example.eu/;script-src 'unsafe-inline'"},
        "site.services.catalog.url",
        ["holds '%' \"'\" ';'", "allowed are http(s)://", "a path of letters, digits"],
    ),
    (
        "browser-tls-secret-in-gateway-mode",
        "ovh-gra",
        {
            "services.catalog.browser": {
                "url": "https://browse.gra.eofed.example.eu/",
                "tls_secret": "browse-tls",
            }
        },
        "site.services.catalog",
        ["`browser.tls_secret` is set (browse-tls) but exposure.mode is gateway", "ingress only"],
    ),
    (
        "boolean-for-a-number-of-days",
        "aws-frankfurt",
        {"storage.buckets.raw.lifecycle.expire_after_days": True},
        "site.storage.buckets.raw.lifecycle.expire_after_days",
        ["given True (a boolean)", "valid integer"],
    ),
    (
        "boolean-for-an-optional-number",
        "aws-frankfurt",
        {"services.ingestion.sentinel.sources.0.max_cloud_cover": False},
        "site.services.ingestion.sentinel.sources.0.max_cloud_cover",
        ["given False (a boolean)"],
    ),
    (
        "eks-api-open-to-the-internet-in-two-halves",
        "aws-frankfurt",
        {"cluster.public_access_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
        "site.cluster.public_access_cidrs.0",
        ["'0.0.0.0/1' admits a /1", "at most /8"],
    ),
    (
        "magnum-api-open-to-the-internet-in-two-halves",
        "ewc-bologna",
        {"network.api_access_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
        "site.network.api_access_cidrs.1",
        ["'128.0.0.0/1' admits a /1"],
    ),
    (
        "ovh-api-open-to-the-internet-in-two-halves",
        "ovh-gra",
        {"cluster.api_access_cidrs": ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/1"]},
        "site.cluster.api_access_cidrs.0",
        ["admits a /2"],
    ),
    (
        "sentinel-schedule-minute-out-of-range",
        "aws-frankfurt",
        {"services.ingestion.sentinel.schedule": "99 * * * *"},
        "site.services.ingestion.sentinel.schedule",
        ["the minute field '99' is outside 0 to 59"],
    ),
    (
        "sentinel-schedule-not-cron",
        "hpc-kajaani",
        {"services.ingestion.sentinel.schedule": "every 6 hours ok then"},
        "site.services.ingestion.sentinel.schedule",
        ["'every' is not a minute"],
    ),
    (
        "hub-harvest-schedule-step-zero",
        "eu-hub",
        {"services.harvest_schedule": "*/0 * * * *"},
        "site.services.harvest_schedule",
        ["step '0' is not a whole number above 0"],
    ),
    (
        "mqtt-host-a-mistyped-address",
        "aws-frankfurt",
        {"services.ingestion.stream.mqtt.host": "10.0.0.256"},
        "site.services.ingestion.stream.mqtt.host",
        ["'10.0.0.256' is neither a DNS name nor an IPv4 address"],
    ),
    (
        "plaintext-secret-in-a-list",
        "k8s-gra",
        {"services.ingestion.stream.mqtt.credentials.password": "hunter2"},
        "site.services.ingestion.stream.mqtt.credentials.password",
        ["--path 'fedeploy:site.services.ingestion.stream.mqtt.credentials.password'"],
    ),
]


@pytest.fixture(scope="module")
def stacks_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("project") / "stacks"
    shutil.copytree(STACKS, directory)
    shutil.copy(KUBERNETES_SITE, directory)
    return directory


def test_corpus_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize(
    ("case", "stack", "changes", "path", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_config_is_refused_before_any_resource(stacks_dir, case, stack, changes, path, words):
    site = "not a mapping" if changes is None else _apply(example_site(stack), changes)
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
        example_site("aws-frankfurt"),
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
    site = _apply(example_site("k8s-gra"), {"storage.secret_access_key": "CANARY-do-not-print"})
    with pytest.raises(StackConfigError) as caught:
        plan_stack(stacks_dir / "Pulumi.k8s-gra.yaml", config_override={"fedeploy:site": site})
    assert "CANARY" not in str(caught.value)


# -- whole stack files: YAML, the checks across files, the command line ------------------------

runner = CliRunner()


def _project(tmp_path: Path) -> Path:
    directory = tmp_path / "stacks"
    shutil.copytree(STACKS, directory)
    shutil.copy(KUBERNETES_SITE, directory)
    return directory


def _write(path: Path, site: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    document = yaml.safe_load(path.read_text()) if path.exists() else {"config": {}}
    document["config"]["fedeploy:site"] = site
    document["config"].update(extra or {})
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _validate(*paths: Path):
    return runner.invoke(app, ["validate", *map(str, paths)])


def test_a_duplicated_key_is_refused_with_both_line_numbers(tmp_path):
    stacks = _project(tmp_path)
    path = stacks / "Pulumi.aws-frankfurt.yaml"
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == 'gpu: "on"')
    lines.insert(at + 1, lines[at].replace('"on"', '"off"'))
    path.write_text("\n".join(lines) + "\n")
    result = _validate(path)
    assert result.exit_code == 2
    assert (
        f"site.services.inference.gpu: duplicate key 'gpu' at lines {at + 1} and {at + 2}"
        in result.output
    )


@pytest.mark.parametrize(
    ("stack", "original", "unquoted", "path", "words"),
    [
        (
            "aws-frankfurt",
            'gpu: "on"',
            "gpu: on",
            "site.services.inference.gpu",
            ["given True", 'YAML read the unquoted on as a boolean: quote it, gpu: "on"'],
        ),
        (
            "hpc-kajaani",
            'version: "1.30"',
            "version: 1.30",
            "site.cluster.version",
            ["given 1.3", 'YAML read the unquoted 1.30 as a number: quote it, version: "1.30"'],
        ),
    ],
)
def test_what_yaml_made_of_an_unquoted_word_says_quote_it(
    tmp_path, stack, original, unquoted, path, words
):
    stacks = _project(tmp_path)
    file = stacks / f"Pulumi.{stack}.yaml"
    assert original in file.read_text()
    file.write_text(file.read_text().replace(original, unquoted))
    result = _validate(file)
    assert result.exit_code == 2
    line = next(line for line in result.output.splitlines() if f"- {path}:" in line)
    for word in words:
        assert word in line


@pytest.mark.parametrize(
    ("unquoted", "given"),
    [("role: 1", "given 1"), ("role: yes", "given True"), ("role:", "given an empty value")],
)
def test_quote_it_is_said_only_where_the_quoted_text_would_be_valid(tmp_path, unquoted, given):
    """`role: "1"` is no role either: quoting fixes nothing, so no hint to quote (review 34)."""
    stacks = _project(tmp_path)
    file = stacks / "Pulumi.aws-dublin.yaml"
    text = file.read_text()
    assert "    kind: aws\n" in text
    file.write_text(text.replace("    kind: aws\n", f"    kind: aws\n    {unquoted}\n", 1))
    result = _validate(file)
    assert result.exit_code == 2
    line = next(line for line in result.output.splitlines() if "- site.role:" in line)
    assert f"{given}; allowed: must be 'full' or 'storage'" in line
    assert "quote it" not in line and "unquoted  as" not in line and "None" not in line


@pytest.mark.parametrize("case", ["typo", "empty", "no-stack-files"])
def test_plan_refuses_a_stacks_dir_without_stack_files(tmp_path, case):
    directory = tmp_path / ("stackz" if case == "typo" else "stacks")
    if case != "typo":
        directory.mkdir()
    if case == "no-stack-files":
        (directory / "README.md").write_text("no stacks here\n")
    result = runner.invoke(app, ["plan", "--stacks-dir", str(directory), "--jobs", "1"])
    assert result.exit_code == 2
    assert f"stacks directory {directory}" in result.output
    assert "clean" not in result.output


def _fed_issue(stacks: Path, stack: str) -> str:
    result = _validate(stacks / f"Pulumi.{stack}.yaml")
    assert result.exit_code == 2, result.output
    return result.output


def test_two_sites_whose_buckets_get_one_physical_name_are_refused(tmp_path):
    stacks = _project(tmp_path)
    site = example_site("aws-dublin")
    site["storage"]["bucket_prefix"] = "eofed-aws"
    site["network"]["cidr"] = "10.31.0.0/16"
    _write(stacks / "Pulumi.dublin.yaml", site, {"aws:region": "eu-west-1"})
    output = _fed_issue(stacks, "dublin")
    assert (
        "site.storage.buckets.raw: its physical name 'eofed-aws-dublin-raw' is also that of "
        "bucket 'raw' of site 'aws-dublin' (Pulumi.aws-dublin.yaml)" in output
    )


def test_aws_region_of_the_provider_must_be_the_sites(tmp_path):
    stacks = _project(tmp_path)
    path = stacks / "Pulumi.aws-dublin.yaml"
    path.write_text(path.read_text().replace("aws:region: eu-west-1", "aws:region: eu-central-1"))
    output = _fed_issue(stacks, "aws-dublin")
    assert "config.aws:region: is 'eu-central-1' but site.region is 'eu-west-1'" in output


def test_a_hub_member_needs_a_public_catalog_url(tmp_path):
    stacks = _project(tmp_path)
    site = example_site("hpc-kajaani")
    site["services"]["catalog"].pop("url")
    site["services"]["catalog"].pop("exposure", None)
    _write(stacks / "Pulumi.hpc-kajaani.yaml", site)
    output = _fed_issue(stacks, "eu-hub")
    assert "site.members.3: member 'hpc-kajaani' has no public catalog url" in output
    assert "Pulumi.hpc-kajaani.yaml" in output


def test_overlapping_ranges_are_refused_by_validate_naming_both_files(tmp_path):
    stacks = _project(tmp_path)
    site = example_site("hpc-kajaani")
    site["cluster"]["pod_cidrs"] = ["10.30.128.0/17"]
    _write(stacks / "Pulumi.hpc-kajaani.yaml", site)
    output = _fed_issue(stacks, "hpc-kajaani")
    assert (
        "site.cluster.pod_cidrs.0: 10.30.128.0/17 overlaps network.cidr (10.30.0.0/16) of "
        "site 'aws-dublin' (Pulumi.aws-dublin.yaml)" in output
    )


def test_advisories_production_gateway_without_host_key_and_a_site_no_hub_lists(tmp_path):
    stacks = _project(tmp_path)
    site = example_site("hpc-kajaani")
    site["bridge"].pop("host_key")
    _write(stacks / "Pulumi.hpc-kajaani.yaml", site)
    hub = example_site("eu-hub")
    hub["members"] = [m for m in hub["members"] if m != "hpc-kajaani"]
    _write(stacks / "Pulumi.eu-hub.yaml", hub)
    result = _validate(stacks / "Pulumi.hpc-kajaani.yaml")
    assert result.exit_code == 0, result.output
    assert "note: site.bridge.host_key: advisory: a production gateway bridge" in result.output
    assert "note: site: advisory: no hub in" in result.output
    assert "lists 'hpc-kajaani'" in result.output
    planned = runner.invoke(app, ["plan", "hpc-kajaani", "--stacks-dir", str(stacks), "-j", "1"])
    assert planned.exit_code == 0, planned.output
    assert "advisory [stack-file] Pulumi.hpc-kajaani.yaml site.bridge.host_key:" in planned.output
    assert "advisory [stack-file] Pulumi.hpc-kajaani.yaml site: no hub in" in planned.output


def test_the_example_stacks_validate_without_notes():
    result = _validate(*sorted(STACKS.glob("Pulumi.*.yaml")))
    assert result.exit_code == 0, result.output
    assert "note:" not in result.output


def test_an_invalid_member_is_reported_once_and_kept_out_of_the_order(tmp_path):
    stacks = _project(tmp_path)
    site = example_site("hpc-kajaani")
    site["cluster"]["version"] = "1.19"
    _write(stacks / "Pulumi.hpc-kajaani.yaml", site)
    hub = _validate(stacks / "Pulumi.eu-hub.yaml")
    assert hub.exit_code == 0, hub.output
    assert "no stack file" not in hub.output
    assert (
        "note: site.members.3: check of 'hpc-kajaani' skipped: its stack file "
        "Pulumi.hpc-kajaani.yaml is invalid" in hub.output
    )
    result = runner.invoke(app, ["plan", "--stacks-dir", str(stacks), "--jobs", "1", "-f", "json"])
    assert result.exit_code == 2
    report = json.loads(result.output)
    assert all("hpc-kajaani" not in wave for wave in report["deployment_order"])
    invalid = [e for e in report["errors"] if "Pulumi.hpc-kajaani.yaml" in e]
    assert len(invalid) == 1 and "site.cluster.version" in invalid[0]
    assert not any("no stack file" in e for e in report["errors"])


def test_an_internal_error_is_one_line_and_exit_2_the_traceback_only_with_debug(
    monkeypatch, capsys
):
    import fedeploy.plan.run

    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("something fedeploy did not expect")

    monkeypatch.setattr(fedeploy.plan.run, "run_plan", broken)
    for argv, traceback_shown in ((["plan"], False), (["--debug", "plan"], True)):
        monkeypatch.setattr(sys, "argv", ["fedeploy", *argv])
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert ("Traceback" in err) is traceback_shown
        last = err.strip().splitlines()[-1]
        assert last.startswith("fedeploy: internal error (KeyError); this is a bug in fedeploy")
        assert "report it" in last and "--debug" in last
        if not traceback_shown:
            assert len(err.strip().splitlines()) == 1


def test_boolean_flags_are_shown_as_flags():
    result = runner.invoke(app, ["affected", "--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    assert "--all " in result.output


@pytest.mark.parametrize("command", ["submit", "status", "cancel"])
def test_bridge_command_help_needs_no_connection_options(command):
    result = runner.invoke(app, ["bridge", command, "--help"], env={})
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert "--url" not in result.output or "Missing" not in result.output


def test_yaml_aliases_that_explode_or_recurse_are_refused_in_a_few_lines():
    hostile = Path(__file__).resolve().parent.parent / "stack_files" / "hostile"
    result = _validate(hostile / "Pulumi.alias-bomb.yaml")
    assert result.exit_code == 2
    assert "site.network.availability_zones: given [[[...]" in result.output
    assert len(result.output) < 4000


def test_a_placeholder_in_another_secret_config_key_is_refused(tmp_path):
    stacks = _project(tmp_path)
    path = stacks / "Pulumi.aws-dublin.yaml"
    _write(path, example_site("aws-dublin"), {"aws:secretKey": {"secure": "<put the key here>"}})
    output = _fed_issue(stacks, "aws-dublin")
    assert "config.aws:secretKey: `secure:` must hold the ciphertext" in output
    assert "put the key here" not in output


def test_an_ovh_private_network_is_in_the_overlap_check(tmp_path):
    stacks = _project(tmp_path)
    site = example_site("ovh-gra")
    site["private_network"]["cidr"] = "10.30.0.0/20"
    _write(stacks / "Pulumi.ovh-gra.yaml", site)
    output = _fed_issue(stacks, "ovh-gra")
    assert "site.private_network.cidr: 10.30.0.0/20 overlaps network.cidr (10.30.0.0/16)" in output


@pytest.mark.parametrize(
    ("stack", "key"),
    [
        ("k8s-gra", "storage.endpoint"),
        ("aws-frankfurt", "services.catalog.url"),
        ("aws-frankfurt", "services.catalog.exposure.oidc.issuer"),
        ("aws-frankfurt", "services.ingestion.sentinel.sources.0.url"),
        ("ewc-bologna", "storage.endpoint"),
    ],
)
def test_a_url_with_user_and_password_is_refused_without_echoing_them(stacks_dir, stack, key):
    """URLs reach plans and stack outputs: `user:password@` in one was accepted silently."""
    site = _apply(example_site(stack), {key: "https://admin:CANARY-pw@host.example.eu"})
    with pytest.raises(StackConfigError) as caught:
        plan_stack(stacks_dir / f"Pulumi.{stack}.yaml", config_override={"fedeploy:site": site})
    matching = [str(issue) for issue in caught.value.issues if issue.path == f"site.{key}"]
    assert matching and "must not carry a user name or password" in matching[0]
    assert "CANARY" not in str(caught.value)


def test_an_existing_bridge_endpoint_with_a_password_is_refused_without_echoing_it(stacks_dir):
    bridge = {
        "mode": "existing",
        "endpoint": "https://admin:CANARY-pw@slurm-api.example.eu:6820",
        "token": {"secure": "v1:dG9r:dG9rZW4tY2lwaGVydGV4dA=="},
        "partitions": ["standard"],
    }
    site = _apply(example_site("hpc-kajaani"), {"bridge": bridge})
    with pytest.raises(StackConfigError) as caught:
        plan_stack(stacks_dir / "Pulumi.hpc-kajaani.yaml", config_override={"fedeploy:site": site})
    assert any(
        issue.path == "site.bridge.endpoint" and "must not carry a user name" in str(issue)
        for issue in caught.value.issues
    ), str(caught.value)
    assert "CANARY" not in str(caught.value)


def test_an_out_directory_that_cannot_be_written_is_refused_before_planning(tmp_path):
    """It once planned the whole federation, then ended in 'internal error (FileNotFoundError)'."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = runner.invoke(app, ["plan", "--out", str(blocker / "out"), "aws-dublin"])
    assert result.exit_code == 2
    assert f"--out {blocker / 'out'}: cannot create the directory" in result.output
    assert "internal error" not in result.output and "clean" not in result.output


@pytest.mark.parametrize("jobs", ["0", "-3"])
def test_plan_jobs_below_one_are_refused(jobs):
    result = runner.invoke(app, ["plan", "--jobs", jobs, "aws-dublin"])
    assert result.exit_code == 2
    assert "--jobs" in result.output and "clean" not in result.output


def test_yes_where_a_number_belongs_is_refused_not_read_as_one(tmp_path):
    """`expire_after_days: yes` (YAML 1.1: true) planned clean as a one-day expiry."""
    stacks = _project(tmp_path)
    path = stacks / "Pulumi.aws-frankfurt.yaml"
    text = path.read_text()
    assert "noncurrent_expire_after_days: 30" in text
    path.write_text(
        text.replace("noncurrent_expire_after_days: 30", "noncurrent_expire_after_days: yes", 1)
    )
    result = _validate(path)
    assert result.exit_code == 2
    assert (
        "site.storage.buckets.raw.lifecycle.noncurrent_expire_after_days: given True (a boolean)"
        in result.output
    )
    assert "YAML read the unquoted yes as a boolean: write a number" in result.output


def test_a_hub_member_with_a_bad_name_is_told_in_words_not_a_pattern() -> None:
    from fedeploy.config.loader import validate_site

    raw = example_site("eu-hub")
    raw["members"] = [*raw["members"], "vaült"]
    with pytest.raises(StackConfigError) as caught:
        validate_site(raw, stack_file="Pulumi.eu-hub.yaml")
    (issue,) = caught.value.issues
    assert issue.path == f"site.members.{len(raw['members']) - 1}"
    assert issue.message == (
        "given 'vaült'; allowed: Lower-case letters, digits and '-', 3 to 24 characters, "
        "starting with a letter."
    )
    assert "pattern" not in issue.message and "^[a-z]" not in issue.message


def _browsers(stacks: Path, **urls: str) -> None:
    """Give each named example site (eu_hub=..., cf_waw=...) a browser at the url."""
    for stack, url in urls.items():
        name = stack.replace("_", "-")
        site = example_site(name)
        site["services"]["catalog"]["browser"] = {"url": url}
        _write(stacks / f"Pulumi.{name}.yaml", site)


def test_a_browser_on_the_host_of_another_sites_catalog_is_refused(tmp_path):
    stacks = _project(tmp_path)
    _browsers(stacks, eu_hub="https://catalog.waw.eofed.example.eu/")
    output = _fed_issue(stacks, "eu-hub")
    assert (
        "site.services.catalog.browser.url: host catalog.waw.eofed.example.eu is also the host "
        "of the catalog of site 'cf-waw' (Pulumi.cf-waw.yaml)" in output
    )
    assert "no catalog and no other browser in the federation" in output
    # cf-waw's own stack file is told too, at its catalog url.
    output = _fed_issue(stacks, "cf-waw")
    assert (
        "site.services.catalog.url: host catalog.waw.eofed.example.eu is also the host of the "
        "STAC Browser of site 'eu-hub' (Pulumi.eu-hub.yaml)" in output
    )


def test_a_members_browser_on_the_hubs_catalog_host_or_another_browsers_is_refused(tmp_path):
    stacks = _project(tmp_path)
    _browsers(stacks, cf_waw="https://catalog.eofed.example.eu/")
    output = _fed_issue(stacks, "cf-waw")
    assert (
        "site.services.catalog.browser.url: host catalog.eofed.example.eu is also the host of "
        "the catalog of site 'eu-hub' (Pulumi.eu-hub.yaml)" in output
    )
    _browsers(
        stacks, cf_waw="https://Browse.EOFED.example.eu/", eu_hub="https://browse.eofed.example.eu/"
    )
    output = _fed_issue(stacks, "eu-hub")
    assert (
        "site.services.catalog.browser.url: host browse.eofed.example.eu is also the host of "
        "the STAC Browser of site 'cf-waw' (Pulumi.cf-waw.yaml)" in output
    )


def test_browsers_on_hosts_of_their_own_validate(tmp_path):
    stacks = _project(tmp_path)
    _browsers(
        stacks, eu_hub="https://eofed.example.eu/", cf_waw="https://browse.waw.eofed.example.eu/"
    )
    result = _validate(stacks / "Pulumi.eu-hub.yaml", stacks / "Pulumi.cf-waw.yaml")
    assert result.exit_code == 0, result.output
