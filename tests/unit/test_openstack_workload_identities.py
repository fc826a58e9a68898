"""OpenStack `workload_identities`: each workload that touches storage gets a Keystone project
of its own (holding nothing), a user with the object-store role on that project only, and that
user's EC2 credential in a storage Secret of its own; bucket policies on the site's buckets
grant each workload's project only its prefixes, read-only for the asset endpoint.

No emulator here enforces Keystone or RGW's policy for Keystone projects: these tests state the
resources and policy documents the program registers (docs/configuration.md says so). The
statements themselves are `workload_policy`'s, which tests/integration/test_least_privilege.py
runs against an IAM-enforcing moto with the services' real code."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from fedeploy.config.services import CatalogBackup
from fedeploy.offline.engine import plan_stack
from fedeploy.openstack_storage import rgw_principal, workload_bucket_policy
from fedeploy.values.workload_access import WORKLOAD_ACCESS
from policies.findings import Subject
from policies.providers import storage_identity
from tests.conftest import STACKS

STACK = "ewc-bologna"
DOMAIN = "0c2a1f3e-5b4d-4e6f-8a9b-1c2d3e4f5a6b"
ROLE = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"
WORKLOADS = {"ingestion", "inference", "assets", "catalog-backup", "catalog-drill"}


def _site() -> dict[str, Any]:
    text = (STACKS / f"Pulumi.{STACK}.yaml").read_text()
    site: dict[str, Any] = yaml.safe_load(text)["config"]["fedeploy:site"]
    return site


@pytest.fixture(scope="module")
def plan() -> Any:
    # The example site turns them on (issue 27): its own stack file, no override.
    assert _site()["workload_identities"]["domain_id"] == DOMAIN
    return plan_stack(STACKS / f"Pulumi.{STACK}.yaml")


def _by_name(plan: Any, typ: str) -> dict[str, Any]:
    return {r.name: r for r in plan.by_type(typ)}


def test_each_workload_has_a_project_user_and_credential_of_its_own(plan: Any) -> None:
    projects = _by_name(plan, "openstack:identity/project:Project")
    users = _by_name(plan, "openstack:identity/user:User")
    grants = plan.by_type("openstack:identity/roleAssignment:RoleAssignment")
    assert {p.inputs["name"] for p in projects.values()} == {
        f"fedeploy-{STACK}-{w}" for w in WORKLOADS
    }
    assert all(p.inputs["domainId"] == DOMAIN for p in projects.values())
    project_ids = {f"{STACK}-{w}": f"{STACK}-{w}-project" for w in WORKLOADS}
    for grant in grants:
        # One role, on the workload's own project: never on the site's project or a domain.
        assert grant.inputs["roleId"] == ROLE and "domainId" not in grant.inputs
        workload = grant.name.removesuffix("-role")
        assert grant.inputs["projectId"].startswith(project_ids[workload] + "-")
        assert grant.inputs["userId"].startswith(f"{workload}-user-")
    assert len(grants) == len(users) == len(WORKLOADS)
    # Projects, users and grants through the domain manager's domain-scoped sign-in
    # (manager_cloud): Keystone checks the manager role on a domain-scoped token only.
    (manager,) = [
        p
        for p in plan.resources
        if p.type == "pulumi:providers:openstack" and p.name == f"{STACK}-domain-manager"
    ]
    assert manager.inputs["cloud"] == _site()["workload_identities"]["manager_cloud"]
    for resource in [*projects.values(), *users.values(), *grants]:
        assert resource.provider and f"::{STACK}-domain-manager::" in resource.provider
    credentials = plan.by_type("openstack:identity/ec2CredentialV3:Ec2CredentialV3")
    named = [c for c in credentials if c.inputs.get("projectId")]
    assert len(named) == len(WORKLOADS)
    providers = {p.name: p for p in plan.resources if p.type == "pulumi:providers:openstack"}
    for credential in named:
        workload = credential.name.removesuffix("-s3-credential")
        assert credential.inputs["projectId"].startswith(project_ids[workload] + "-")
        # Created by the workload's user itself (a domain manager may not create EC2
        # credentials for others): no user id, through a provider signed in as that user.
        assert "userId" not in credential.inputs
        assert credential.provider is not None and f"::{workload}-keystone::" in credential.provider
        provider = providers[f"{workload}-keystone"]
        assert (
            provider.inputs["userName"] == f"fedeploy-{STACK}-{workload.removeprefix(STACK + '-')}"
        )
        assert provider.inputs["tenantId"] == credential.inputs["projectId"]
        assert provider.inputs["userDomainId"] == DOMAIN
        assert provider.inputs["authUrl"].endswith("/v3")
    # The deploying user's credential stays, for Pulumi's own S3 provider only.
    (own,) = [c for c in credentials if not c.inputs.get("projectId")]
    assert own.name == f"{STACK}-s3-credential"


def test_each_workload_mounts_only_its_own_storage_secret(plan: Any) -> None:
    secrets = {s.inputs["metadata"]["name"]: s for s in plan.by_type("kubernetes:core/v1:Secret")}
    assert "fedeploy-storage" not in secrets  # no pod can mount the deploying user's keys
    for workload in WORKLOADS:
        secret = secrets[f"fedeploy-storage-{workload}"]
        assert secret.secret_paths == ["stringData"]
    releases = {
        r.inputs["name"]: r.inputs["values"] for r in plan.by_type("kubernetes:helm.sh/v3:Release")
    }
    assert releases["ingestion"]["storage"]["existingSecret"] == "fedeploy-storage-ingestion"
    assert releases["inference"]["storage"]["existingSecret"] == "fedeploy-storage-inference"
    catalog = releases["catalog"]
    assert catalog["assets"]["storage"]["existingSecret"] == "fedeploy-storage-assets"
    assert catalog["backup"]["existingSecret"] == "fedeploy-storage-catalog-backup"
    # The restore drill reads the backups with keys of its own, never the writer's.
    assert catalog["backup"]["drill"]["credentialsSecret"] == "fedeploy-storage-catalog-drill"


def _policies(plan: Any) -> dict[str, dict[str, Any]]:
    return {
        p.inputs["bucket"]: json.loads(p.inputs["policy"])
        for p in plan.by_type("aws:s3/bucketPolicy:BucketPolicy")
    }


def _project_of(plan: Any, workload: str) -> str:
    (grant,) = [
        g
        for g in plan.by_type("openstack:identity/roleAssignment:RoleAssignment")
        if g.name == f"{STACK}-{workload}-role"
    ]
    project: str = grant.inputs["projectId"]
    return project


def test_bucket_policies_grant_each_project_its_prefixes_and_the_assets_only_reads(
    plan: Any,
) -> None:
    policies = _policies(plan)
    by_principal: dict[str, list[dict[str, Any]]] = {}
    for bucket, policy in policies.items():
        for statement in policy["Statement"]:
            (principal,) = statement["Principal"]["AWS"]
            assert statement["Effect"] == "Allow"
            for resource in statement["Resource"]:
                assert resource.startswith(f"arn:aws:s3:::{bucket}")
            by_principal.setdefault(principal, []).append(statement)
    principals = {w: rgw_principal(_project_of(plan, w)) for w in WORKLOADS}
    assert set(by_principal) == set(principals.values())
    assets = by_principal[principals["assets"]]
    assert {a for s in assets for a in s["Action"]} == {"s3:ListBucket", "s3:GetObject"}
    reads = {r for s in assets if s["Action"] == ["s3:GetObject"] for r in s["Resource"]}
    raw = next(b for b in policies if b.endswith("-raw"))
    assert reads == {f"arn:aws:s3:::{raw}/{p}*" for p in WORKLOAD_ACCESS["assets"].reads}
    backup = by_principal[principals["catalog-backup"]]
    objects = {r for s in backup for r in s["Resource"] if "/" in r.split(":::", 1)[1]}
    prefix = CatalogBackup().prefix.strip("/") + "/"  # the example site keeps the default
    assert objects == {f"arn:aws:s3:::{raw}/{prefix}*"}
    drill = by_principal[principals["catalog-drill"]]
    assert {a for s in drill for a in s["Action"]} == {"s3:ListBucket", "s3:GetObject"}
    assert {r for s in drill for r in s["Resource"] if "/" in r.split(":::", 1)[1]} == objects


def test_the_plan_no_longer_advises_the_deploying_users_keys(plan: Any) -> None:
    subjects = [Subject(r.type, r.name, r.inputs, tuple(r.secret_paths)) for r in plan.resources]
    assert list(storage_identity(subjects)) == []


def test_a_bucket_policy_names_each_principal_and_refuses_none() -> None:
    policy = workload_bucket_policy(
        "b",
        {
            "assets": ("arn:aws:iam:::user/p1", WORKLOAD_ACCESS["assets"]),
            "ingestion": ("arn:aws:iam:::user/p2", WORKLOAD_ACCESS["ingestion"]),
        },
    )
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids)) and sids[0] == "AssetsListBucket"
    writes = [s for s in policy["Statement"] if "s3:PutObject" in s["Action"]]
    assert [s["Principal"] for s in writes] == [{"AWS": ["arn:aws:iam:::user/p2"]}]
    with pytest.raises(ValueError, match="no workload uses bucket b"):
        workload_bucket_policy("b", {})
    with pytest.raises(ValueError, match="not a Keystone project id"):
        rgw_principal("tenant:user")


def test_each_storage_secret_carries_its_own_workloads_keys_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pulumi

    from components.site import Site
    from fedeploy.offline.standins import digest

    texts: dict[str, str] = {}
    original = Site._secret

    def recording(self: Site, suffix: str, name: str, namespace: str, data: Any) -> str:
        if name.startswith("fedeploy-storage"):

            def keep(text: str, secret: str = name) -> None:
                texts[secret] = text

            pulumi.Output.from_input(data["credentials"]).apply(keep)
        return original(self, suffix, name, namespace, data)

    monkeypatch.setattr(Site, "_secret", recording)
    plan_stack(STACKS / f"Pulumi.{STACK}.yaml")

    def access_key(credential: str) -> str:  # the stand-in's access key of a credential
        return digest("ec2-access", credential, length=32)

    assert set(texts) == {f"fedeploy-storage-{w}" for w in WORKLOADS}
    deploying_user = access_key(f"{STACK}-s3-credential")
    for workload in WORKLOADS:
        text = texts[f"fedeploy-storage-{workload}"]
        assert f"aws_access_key_id = {access_key(f'{STACK}-{workload}-s3-credential')}\n" in text
        others = [access_key(f"{STACK}-{w}-s3-credential") for w in WORKLOADS - {workload}]
        assert not [key for key in [deploying_user, *others] if key in text]


def test_workload_identities_need_the_keystone_url_and_say_so() -> None:
    from pydantic import ValidationError

    from fedeploy.config.openstack import WorkloadIdentities

    with pytest.raises(ValidationError, match="auth_url"):
        WorkloadIdentities.model_validate({"domain_id": DOMAIN, "role_id": ROLE})
    with pytest.raises(ValidationError, match="auth_url"):
        WorkloadIdentities.model_validate(
            {"domain_id": DOMAIN, "role_id": ROLE, "auth_url": "http://keystone.example/v3"}
        )
    # What the deploying identity needs is in the key's own description (schema, reference).
    described = WorkloadIdentities.model_fields["domain_id"].description or ""
    assert "`manager` role" in described


def test_without_manager_cloud_the_sites_own_sign_in_creates_the_identities() -> None:
    site = _site()
    del site["workload_identities"]["manager_cloud"]
    plan = plan_stack(STACKS / f"Pulumi.{STACK}.yaml", config_override={"fedeploy:site": site})
    names = {p.name for p in plan.resources if p.type == "pulumi:providers:openstack"}
    assert f"{STACK}-domain-manager" not in names
    for project in plan.by_type("openstack:identity/project:Project"):
        assert "domain-manager" not in (project.provider or "")
