"""The real program of every example stack, run under the mocks: properties of its resources."""

from __future__ import annotations

import json

import pytest

from tests.builders import example_site
from tests.conftest import EXAMPLE_STACKS, STACKS

BUCKET = "aws:s3/bucket:Bucket"


def _by_bucket(plan, typ: str) -> dict[str, dict]:
    return {r.inputs["bucket"]: r.inputs for r in plan.by_type(typ)}


MEMBERS = [s for s in EXAMPLE_STACKS if example_site(s)["kind"] != "hub"]
AWS = [s for s in EXAMPLE_STACKS if example_site(s)["kind"] == "aws"]


def test_every_example_stack_plans_clean(example_report):
    assert example_report.errors == []
    assert sorted(example_report.sites) == EXAMPLE_STACKS
    assert example_report.violations == []
    assert example_report.exit_code == 0


def test_hub_is_deployed_last_and_replication_target_before_its_source(example_report):
    order = example_report.federation.order
    position = {site: i for i, wave in enumerate(order) for site in wave}
    assert order[-1] == ["eu-hub"]
    assert position["aws-dublin"] < position["aws-frankfurt"]


@pytest.mark.parametrize("stack", MEMBERS)
def test_every_bucket_is_encrypted_as_configured(example_plans, stack):
    plan = example_plans[stack]
    storage = example_site(stack)["storage"]
    encryption = _by_bucket(
        plan,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )
    buckets = plan.by_type(BUCKET)
    assert len(buckets) == len(storage["buckets"])
    for bucket in buckets:
        name = bucket.inputs["bucket"]
        if (
            storage.get("encryption", "kms" if example_site(stack)["kind"] == "aws" else "aes256")
            == "provider_managed"
        ):
            assert name not in encryption
            continue
        default = encryption[name]["rules"][0]["applyServerSideEncryptionByDefault"]
        expected = (
            "aws:kms"
            if storage.get("encryption", "kms") == "kms" and example_site(stack)["kind"] == "aws"
            else "AES256"
        )
        assert default["sseAlgorithm"] == expected
        if expected == "aws:kms":
            assert default["kmsMasterKeyId"].startswith("arn:aws:kms:")


@pytest.mark.parametrize("stack", MEMBERS)
def test_buckets_are_versioned_where_asked(example_plans, stack):
    versioning = _by_bucket(example_plans[stack], "aws:s3/bucketVersioning:BucketVersioning")
    for logical, spec in example_site(stack)["storage"]["buckets"].items():
        physical = (
            f"{example_site(stack)['storage'].get('bucket_prefix', 'fedeploy')}-{stack}-{logical}"
        )
        wanted = "Enabled" if (spec or {}).get("versioning", True) else "Suspended"
        assert versioning[physical]["versioningConfiguration"]["status"] == wanted


@pytest.mark.parametrize("stack", AWS)
def test_aws_buckets_are_never_public_and_tls_only(example_plans, stack):
    plan = example_plans[stack]
    blocks = _by_bucket(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    policies = _by_bucket(plan, "aws:s3/bucketPolicy:BucketPolicy")
    for bucket in plan.by_type(BUCKET):
        name = bucket.inputs["bucket"]
        assert "acl" not in bucket.inputs
        assert all(
            blocks[name][k] is True
            for k in (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        )
        statements = json.loads(policies[name]["policy"])["Statement"]
        deny = [
            s
            for s in statements
            if s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s)
        ]
        assert deny and deny[0]["Condition"]["Bool"]["aws:SecureTransport"] == "false"


def test_bucket_names_are_stable_valid_and_site_scoped(example_plans):
    names = [b.inputs["bucket"] for p in example_plans.values() for b in p.by_type(BUCKET)]
    assert len(names) == len(set(names))
    for name in names:
        assert 3 <= len(name) <= 63 and name == name.lower() and "--" not in name


def test_frankfurt_replicates_raw_to_dublin_with_a_scoped_role(example_plans):
    plan = example_plans["aws-frankfurt"]
    (replication,) = plan.by_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    rule = replication.inputs["rules"][0]
    assert replication.inputs["bucket"] == "eofed-aws-frankfurt-raw"
    assert rule["destination"]["bucket"] == "arn:aws:s3:::eofed-aws-dublin-raw"
    dublin_key = example_plans["aws-dublin"].outputs["storage"]["kms_key_arn"]
    assert rule["destination"]["encryptionConfiguration"]["replicaKmsKeyId"] == dublin_key
    policy = next(
        r for r in plan.by_type("aws:iam/rolePolicy:RolePolicy") if "replication" in r.name
    )
    statements = json.loads(policy.inputs["policy"])["Statement"]
    resources = [res for s in statements for res in s["Resource"]]
    assert "*" not in resources
    assert "arn:aws:s3:::eofed-aws-dublin-raw/*" in resources


@pytest.mark.parametrize("stack", AWS)
def test_node_groups_as_configured_and_gpu_groups_tainted(example_plans, stack):
    groups = {
        g.inputs["nodeGroupName"]: g.inputs
        for g in example_plans[stack].by_type("aws:eks/nodeGroup:NodeGroup")
    }
    configured = example_site(stack)["cluster"]["node_groups"]
    assert set(groups) == set(configured)
    for name, spec in configured.items():
        group = groups[name]
        assert group["scalingConfig"] == {
            "minSize": spec["min_size"],
            "desiredSize": spec["desired_size"],
            "maxSize": spec["max_size"],
        }
        assert group["instanceTypes"] == spec["instance_types"]
        if spec.get("accelerator") == "nvidia":
            assert group["taints"] == [
                {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
            ]
            assert group["labels"]["fedeploy.io/accelerator"] == "nvidia"
        else:
            assert not group.get("taints")


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_kubernetes_object_is_on_the_sites_cluster_provider(example_plans, stack):
    plan = example_plans[stack]
    (provider,) = plan.by_type("pulumi:providers:kubernetes")
    objects = [r for r in plan.resources if r.type.startswith("kubernetes:")]
    assert objects
    for resource in objects:
        assert resource.provider and resource.provider.split("::")[-2] == provider.name, (
            resource.name
        )


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_contract_is_exported_and_secrets_stay_secret(example_plans, stack):
    plan = example_plans[stack]
    for key in ("site", "catalog_url", "services"):
        assert key in plan.outputs
    if example_site(stack)["kind"] == "aws":
        assert plan.outputs["kubeconfig"] == "[secret]"
        assert "kubeconfig" in plan.secret_outputs
    for provider in plan.by_type("pulumi:providers:kubernetes"):
        assert "kubeconfig" in provider.secret_paths
    for secret in plan.by_type("kubernetes:core/v1:Secret"):
        assert "stringData" in secret.secret_paths


def test_aws_services_use_irsa_roles_scoped_to_their_service_account(example_plans):
    plan = example_plans["aws-frankfurt"]
    roles = {r.name: r.inputs for r in plan.by_type("aws:iam/role:Role")}
    trust = json.loads(roles["aws-frankfurt-ingestion-role"]["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:fedeploy:ingestion" in condition.values()
    release = next(
        r for r in plan.by_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "ingestion"
    )
    annotations = release.inputs["values"]["serviceAccount"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"].endswith("aws-frankfurt-ingestion-role")
    assert release.inputs["values"]["storage"]["existingSecret"] == ""


def test_gpu_site_runs_inference_on_gpu_nodes(example_plans):
    release = next(
        r
        for r in example_plans["aws-frankfurt"].by_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "inference"
    )
    gpu = release.inputs["values"]["gpu"]
    assert gpu["enabled"] is True and gpu["nodeSelector"] == {"fedeploy.io/accelerator": "nvidia"}


def test_hub_harvests_every_member_catalog(example_plans):
    release = next(r for r in example_plans["eu-hub"].by_type("kubernetes:helm.sh/v3:Release"))
    sites = release.inputs["values"]["federation"]["sites"]
    assert {s["name"] for s in sites} == set(example_site("eu-hub")["members"])
    assert all(s["url"].startswith("https://") for s in sites)
    assert set(example_plans["eu-hub"].outputs["federation"]) == set(
        example_site("eu-hub")["members"]
    )


def test_plan_is_deterministic(example_report):
    from fedeploy.plan.formats import as_json, as_markdown
    from fedeploy.plan.run import run_plan

    again = run_plan(STACKS, jobs=2)
    assert as_json(again) == as_json(example_report)
    assert as_markdown(again) == as_markdown(example_report)


def test_the_asset_endpoint_presigns_only_the_sites_ingestion_bucket(example_plans):
    """An empty bucket list would let the endpoint presign any bucket its credentials reach."""
    serving = []
    for stack in MEMBERS:
        releases = {
            r.inputs["name"]: r.inputs["values"]
            for r in example_plans[stack].by_type("kubernetes:helm.sh/v3:Release")
        }
        assets = releases.get("catalog", {}).get("assets")
        if assets:
            serving.append(stack)
            assert assets["storage"]["buckets"] == [releases["ingestion"]["storage"]["bucket"]]
    assert serving, "no example site serves assets: the property is not exercised"
