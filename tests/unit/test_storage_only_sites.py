"""Storage-only sites (role: storage) of every provisioned kind: buckets with today's security and
nothing else, refused keys named, made by `fedeploy new --storage-only`, replicated to from
another aws site, and listed by the hub as a storage member that the catalog does not harvest."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fedeploy.cli import app
from fedeploy.config.loader import check_stack_file
from fedeploy.errors import StackConfigError
from fedeploy.plan.formats import as_text
from fedeploy.plan.run import run_plan
from tests.builders import SITE_KEY, edit_site, write_stack_file
from tests.conftest import STACKS
from tests.unit.test_scaffold import choose

STORE = "vault"
HUB = "eu-hub"
# A storage-only site of each provisioned kind, as a user writes it.
SITES: dict[str, dict[str, Any]] = {
    "aws": {
        "aws:region": "eu-north-1",
        SITE_KEY: {"kind": "aws", "region": "eu-north-1"},
    },
    "openstack": {
        "openstack:region": "WAW3-1",
        SITE_KEY: {
            "kind": "openstack",
            "region": "WAW3-1",
            "storage": {"endpoint": "https://s3.waw3-1.cloudferro.com", "region": "waw3-1"},
        },
    },
    "ovh": {
        SITE_KEY: {
            "kind": "ovh",
            "project_id": "0123456789abcdef0123456789abcdef",
            "region": "DE1",
            "storage": {"endpoint": "https://s3.de.io.cloud.ovh.net", "region": "de"},
        },
    },
}
# Resource types that belong to a cluster, a network or services: none on a storage-only site.
NOT_STORAGE = (
    "eks",
    "ec2/",
    "iam/",
    "rds/",
    "networking/",
    "containerinfra/",
    "compute/",
    "cloudproject/kube",
    "cloudproject/networkPrivate",
    "kubernetes:",
    "random:",
)


def storage_site(kind: str, **more: Any) -> dict[str, Any]:
    """The stack file document of a storage-only site of `kind` with the bucket `replicas`."""
    config = yaml.safe_load(yaml.safe_dump(SITES[kind]))
    site = config[SITE_KEY]
    site["role"] = "storage"
    site.setdefault("storage", {}).update(
        {"bucket_prefix": "eofed-vault", "buckets": {"replicas": {}}}
    )
    site.update(more)
    return {"config": config}


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    """A copy of the example federation to add sites to."""
    directory = tmp_path / "stacks"
    shutil.copytree(STACKS, directory)
    return directory


def plan_with_store(stacks: Path, kind: str, *names: str):
    write_stack_file(stacks / f"Pulumi.{STORE}.yaml", storage_site(kind))
    report = run_plan(stacks, [STORE, *names], jobs=1)
    assert report.errors == [], report.errors
    return report


@pytest.mark.parametrize("kind", sorted(SITES))
def test_a_storage_only_site_plans_its_buckets_and_nothing_else(stacks: Path, kind: str) -> None:
    report = plan_with_store(stacks, kind)
    assert report.exit_code == 0, [f.message for f in report.sites[STORE].findings]
    resources = report.sites[STORE].resources
    assert resources["aws:s3/bucket:Bucket"] == 1
    assert not [t for t in resources if any(part in t for part in NOT_STORAGE)], resources
    plan = report.federation.plans[STORE]
    (versioning,) = plan.by_type("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
    (bucket,) = plan.by_type("aws:s3/bucket:Bucket")
    assert bucket.inputs.get("acl") in (None, "private")
    if kind == "aws":  # the same security as a full aws site's buckets
        (block,) = plan.by_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        assert all(block.inputs[k] for k in ("blockPublicAcls", "blockPublicPolicy"))
        assert resources["aws:s3/bucketPolicy:BucketPolicy"] == 1  # TLS only
        (sse,) = plan.by_type(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        )
        assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == (
            "aws:kms"
        )
    # What the hub and replication sources read: the site's role, endpoint, region, buckets.
    outputs = plan.outputs
    assert outputs["site"]["role"] == "storage" and outputs["site"]["kind"] == kind
    assert outputs["storage"]["buckets"] == {"replicas": f"eofed-vault-{STORE}-replicas"}
    assert outputs["storage"]["endpoint"].startswith("https://")
    assert outputs["storage"]["region"]
    assert outputs["catalog_url"] == "" and outputs["services"] == {}
    assert outputs["cluster"] == {} and outputs["network"] == {}
    assert "site vault (" + kind + ", storage only, production)" in as_text(report)


# key, value, kinds that have the key, what the message must name besides the key
REFUSED = [
    (
        "services",
        {"catalog": {"enabled": True}},
        ("aws", "openstack", "ovh"),
        "found services: catalog",
    ),
    ("bridge", {"mode": "existing"}, ("aws", "openstack", "ovh"), "found bridge: mode"),
    ("cluster", {"version": "1.31"}, ("aws", "openstack", "ovh"), "found cluster: version"),
    ("network", {"cidr": "10.90.0.0/16"}, ("aws", "openstack"), "found network: cidr"),
    ("private_network", {"vlan_id": 90}, ("ovh",), "found private_network: vlan_id"),
    ("workload_identities", {}, ("openstack",), "found workload_identities: an empty mapping"),
    ("monitoring", {"rules": "off"}, ("aws", "openstack", "ovh"), "found monitoring: rules"),
    ("cluster", None, ("aws", "openstack", "ovh"), "found cluster: an empty value"),
]
# What each refusal calls the key's thing, after "has no" (review 34: not "has no a ...").
THINGS = {
    "services": "services",
    "bridge": "SLURM bridge",
    "cluster": "Kubernetes cluster",
    "network": "network",
    "private_network": "private network",
    "workload_identities": "workload identities",
    "monitoring": "charts for a Prometheus to monitor",
}


@pytest.mark.parametrize(
    ("kind", "key", "value", "found"),
    [(kind, key, value, found) for key, value, kinds, found in REFUSED for kind in kinds],
)
def test_a_storage_only_site_refuses_what_it_cannot_have(
    tmp_path: Path, kind: str, key: str, value: Any, found: str
) -> None:
    path = write_stack_file(tmp_path / f"Pulumi.{STORE}.yaml", storage_site(kind, **{key: value}))
    with pytest.raises(StackConfigError) as caught:
        check_stack_file(path)
    (issue,) = caught.value.issues
    assert issue.path == f"site.{key}"
    message = str(issue)
    assert f"site.{key}: a storage-only site (role: storage) has no {THINGS[key]};" in message
    assert "has no a " not in message and "None" not in message
    assert found in message
    assert "Allowed on a storage-only site: " in message and "storage" in message
    assert f" {key}," not in message.split("Allowed on a storage-only site: ")[1]


@pytest.mark.parametrize("kind", sorted(SITES))
def test_a_full_site_still_needs_its_cluster(tmp_path: Path, kind: str) -> None:
    document = storage_site(kind)
    del document["config"][SITE_KEY]["role"]
    path = write_stack_file(tmp_path / f"Pulumi.{STORE}.yaml", document)
    with pytest.raises(StackConfigError) as caught:
        check_stack_file(path)
    messages = [str(i) for i in caught.value.issues]
    first = "network" if kind in ("aws", "openstack") else "cluster"
    assert f"site.{first}: is required on a site that runs services (role: full" in messages[0]


@pytest.mark.parametrize("kind", sorted(SITES))
def test_the_storage_only_scaffold_plans_clean_in_the_example_federation(
    stacks: Path, kind: str
) -> None:
    site = f"new-{kind}-store"
    runner = CliRunner()
    made = runner.invoke(
        app,
        ["new", site, "--kind", kind, "--storage-only", "--hub", HUB, "--stacks-dir", str(stacks)],
    )
    assert made.exit_code == 0, made.output
    choose(stacks / f"Pulumi.{site}.yaml", kind)
    document = yaml.safe_load((stacks / f"Pulumi.{site}.yaml").read_text())
    assert document["config"][SITE_KEY]["role"] == "storage"
    assert not {"cluster", "network", "private_network", "services"} & set(
        document["config"][SITE_KEY]
    )
    report = run_plan(stacks, [site, HUB], jobs=1)
    assert report.errors == [] and report.exit_code == 0, [str(e) for e in report.errors]
    assert report.federation.notes[site] == []


def test_the_scaffold_refuses_storage_only_where_the_store_exists_already(stacks: Path) -> None:
    made = CliRunner().invoke(
        app, ["new", "new-hpc", "--kind", "hpc", "--storage-only", "--stacks-dir", str(stacks)]
    )
    assert made.exit_code == 2
    assert "--storage-only with --kind 'hpc'" in made.output
    assert "an hpc site's store is one that exists already" in made.output
    assert "a hpc" not in made.output
    assert not (stacks / "Pulumi.new-hpc.yaml").exists()


def test_an_aws_site_replicates_to_an_aws_storage_only_site(stacks: Path) -> None:
    edit_site(
        stacks / "Pulumi.aws-frankfurt.yaml",
        lambda site: site["storage"]["buckets"]["models"].update(
            {"replicate_to": {"site": STORE, "bucket": "replicas"}}
        ),
    )
    report = plan_with_store(stacks, "aws", "aws-frankfurt", "aws-dublin")
    assert report.exit_code == 0
    references = {(r.stack, r.target, r.output) for r in report.federation.references}
    assert ("aws-frankfurt", STORE, "storage") in references
    order = report.federation.order
    assert [i for i, w in enumerate(order) if STORE in w] < [
        i for i, w in enumerate(order) if "aws-frankfurt" in w
    ]
    rules = [
        rule
        for r in report.federation.plans["aws-frankfurt"].by_type(
            "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
        )
        for rule in r.inputs["rules"]
    ]
    destinations = {rule["destination"]["bucket"] for rule in rules}
    assert f"arn:aws:s3:::eofed-vault-{STORE}-replicas" in destinations


@pytest.mark.parametrize("kind", ["openstack", "ovh"])
def test_replication_across_kinds_is_refused_honestly(stacks: Path, kind: str) -> None:
    write_stack_file(stacks / f"Pulumi.{STORE}.yaml", storage_site(kind))
    edit_site(
        stacks / "Pulumi.aws-frankfurt.yaml",
        lambda site: site["storage"]["buckets"]["models"].update(
            {"replicate_to": {"site": STORE, "bucket": "replicas"}}
        ),
    )
    with pytest.raises(StackConfigError) as caught:
        check_stack_file(stacks / "Pulumi.aws-frankfurt.yaml")
    (issue,) = caught.value.issues
    assert issue.path == "site.storage.buckets.models.replicate_to.site"
    assert "nothing copies objects to another kind's storage-only site today" in issue.message


def test_a_bucket_replicating_to_its_own_site_is_one_error_not_a_cycle_too(
    stacks: Path,
) -> None:
    document = storage_site("aws")
    document["config"][SITE_KEY]["storage"]["buckets"]["replicas"]["replicate_to"] = {
        "site": STORE,
        "bucket": "replicas",
    }
    path = write_stack_file(stacks / f"Pulumi.{STORE}.yaml", document)
    with pytest.raises(StackConfigError) as caught:
        check_stack_file(path)
    (issue,) = caught.value.issues
    assert issue.path == "site.storage.buckets.replicas.replicate_to.site"
    assert issue.message == "a bucket cannot replicate to its own site"
    assert "cycle" not in str(caught.value)


def test_the_hub_lists_a_storage_member_and_harvests_no_catalog_from_it(stacks: Path) -> None:
    edit_site(stacks / f"Pulumi.{HUB}.yaml", lambda site: site["members"].append(STORE))
    report = plan_with_store(stacks, "ovh", HUB)
    assert report.exit_code == 0
    assert report.federation.notes[STORE] == []  # listed by a hub: no advisory
    hub = report.federation.plans[HUB]
    member = hub.outputs["federation"][STORE]
    assert member["site"]["role"] == "storage"
    assert member["storage"]["buckets"] == {"replicas": f"eofed-vault-{STORE}-replicas"}
    assert member["catalog_url"] == ""
    harvested = report.sites[HUB].services["catalog"]
    assert STORE not in str(harvested)


def test_a_storage_only_site_no_hub_lists_is_told_so(stacks: Path) -> None:
    report = plan_with_store(stacks, "aws")
    (note,) = report.federation.notes[STORE]
    assert "the hub's registry will not list it as a storage member" in str(note)


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("aws", "https://eofed-vault-vault-replicas.s3.eu-north-1.amazonaws.com/"),
        ("openstack", "https://s3.waw3-1.cloudferro.com/eofed-vault-vault-replicas"),
        ("ovh", "https://s3.de.io.cloud.ovh.net/eofed-vault-vault-replicas"),
    ],
)
def test_verify_checks_the_buckets_of_a_storage_only_site_and_no_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, url: str
) -> None:
    import httpx

    import fedeploy.verify.checks as checks

    write_stack_file(tmp_path / f"Pulumi.{STORE}.yaml", storage_site(kind))
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers  # asked as anyone would
        asked.append(str(request.url))
        return httpx.Response(403 if len(asked) == 1 else 200)

    transport = httpx.MockTransport(answer)
    real = httpx.Client
    monkeypatch.setattr(checks.httpx, "Client", lambda **kw: real(transport=transport))
    settings = checks.Settings(deadline_s=0)
    report = checks.verify_site(STORE, tmp_path, settings)
    assert [c.name for c in report.checks] == ["bucket replicas is private"]
    assert report.exit_code == 0 and asked[0].startswith(url)
    assert checks.as_text(report).startswith(f"fedeploy verify {STORE} ({kind}, storage only)")
    public = checks.verify_site(STORE, tmp_path, settings)
    (check,) = public.checks
    assert public.exit_code == 1 and "anyone may list it, the bucket is public" in check.evidence


def test_a_bucket_that_is_not_there_fails_its_check() -> None:
    import httpx

    from fedeploy.verify.checks import private_bucket_probe

    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    outcome = private_bucket_probe("https://s3.example.eu/b")(client)
    assert not outcome.passed and "no such bucket" in outcome.evidence


def test_affected_follows_a_storage_only_sites_readers_and_skips_it_for_charts(
    tmp_path: Path,
) -> None:
    from fedeploy.affected.find import find_affected
    from fedeploy.gitops.planned_sites import PlannedFederation, PlannedSite
    from tests.builders import git

    repo = tmp_path / "repo"
    stacks = repo / "stacks"
    shutil.copytree(STACKS, stacks)
    write_stack_file(stacks / f"Pulumi.{STORE}.yaml", storage_site("aws"))
    edit_site(
        stacks / "Pulumi.aws-frankfurt.yaml",
        lambda site: site["storage"]["buckets"]["models"].update(
            {"replicate_to": {"site": STORE, "bucket": "replicas"}}
        ),
    )
    (repo / "charts" / "catalog").mkdir(parents=True)
    (repo / "charts" / "catalog" / "values.yaml").write_text("replicas: 1\n")
    git(repo, "init", "-q", "-b", "main")

    def commit() -> str:
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "change")
        return git(repo, "rev-parse", "HEAD")

    base = commit()

    def planner(tree: Path, stacks_dir: str) -> PlannedFederation:
        """Every site releases the catalog chart but the storage-only one; its storage output
        is its bucket list as the tree's stack file says."""
        names = [p.name.split(".")[1] for p in (tree / stacks_dir).glob("Pulumi.*.yaml")]
        vault = yaml.safe_load((tree / stacks_dir / f"Pulumi.{STORE}.yaml").read_text())
        sites = {
            name: PlannedSite(
                outputs={"storage": sorted(vault["config"][SITE_KEY]["storage"]["buckets"])}
                if name == STORE
                else {"storage": name},
                charts=frozenset() if name == STORE else frozenset({"catalog"}),
            )
            for name in names
        }
        return PlannedFederation(sites=sites, errors=[])

    (repo / "charts" / "catalog" / "values.yaml").write_text("replicas: 2\n")
    chart_change = find_affected(repo, base, commit(), planner=planner)
    assert STORE not in chart_change.stacks and "aws-frankfurt" in chart_change.stacks
    edit_site(stacks / f"Pulumi.{STORE}.yaml", lambda s: s["storage"]["buckets"].update(old={}))
    store_change = find_affected(repo, base, commit(), planner=planner)
    assert STORE in store_change.stacks and "aws-frankfurt" in store_change.stacks
    assert store_change.stacks.index(STORE) < store_change.stacks.index("aws-frankfurt")


def test_verify_of_the_hub_does_not_ask_a_storage_member_for_its_harvest(stacks: Path) -> None:
    import fedeploy.verify.checks as checks

    write_stack_file(stacks / f"Pulumi.{STORE}.yaml", storage_site("openstack"))
    edit_site(stacks / f"Pulumi.{HUB}.yaml", lambda site: site["members"].append(STORE))
    hub = checks.load_site(stacks, HUB)
    assert checks.storage_members(stacks, hub) == {STORE}
    planned = {
        c.name: c
        for c in checks.plan_checks(
            HUB, hub, "https://hub.example.eu", checks.Settings(), None, frozenset({STORE})
        )
    }
    assert planned[f"harvest of {STORE}"].probe is None
    assert "storage-only member" in planned[f"harvest of {STORE}"].reason
    assert planned["harvest of aws-dublin"].probe is not None


@pytest.mark.parametrize(
    ("stack", "site"),
    [("hpc-kajaani", "an hpc site"), ("eu-hub", "a hub site"), ("k8s-gra", "a kubernetes site")],
)
@pytest.mark.parametrize("role", ["storage", "full"])
def test_role_on_a_kind_without_it_says_where_storage_only_applies(
    stack: str, site: str, role: str
) -> None:
    from fedeploy.config.loader import validate_site
    from tests.builders import example_site

    raw = {**example_site(stack), "role": role}
    with pytest.raises(StackConfigError) as caught:
        validate_site(raw, stack_file=f"Pulumi.{stack}.yaml")
    (issue,) = [i for i in caught.value.issues if i.path == "site.role"]
    assert issue.message == (
        f"unknown key 'role' on {site}: role: storage (a site of buckets only) applies to aws, "
        f"openstack and ovh sites, and {site} is always a full one (role: full is refused too): "
        "remove the key"
    )
    assert "allowed: bridge" not in issue.message
