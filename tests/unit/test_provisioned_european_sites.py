"""The openstack and ovh kinds: what their programs register, under the mocks, and what they refuse.

The same properties the aws kind's tests state: resources as configured, GPU groups labelled and
tainted, secrets kept secret, the charts wired to the site's store and GPU nodes, bad files
refused with their key path before anything is registered."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components.providers import PROVIDERS, provider_for
from fedeploy.config.site_base import KINDS
from fedeploy.errors import StackConfigError
from fedeploy.node_pools import kubelet_options, magnum_group_labels, node_labels, node_taints
from fedeploy.offline.engine import plan_stack
from fedeploy.s3_user_policy import site_user_policy
from policies.findings import Subject
from policies.providers import (
    gpu_nodes_tainted,
    is_gpu_flavor,
    no_public_node_ips,
    storage_identity,
    world_open,
)
from tests.builders import example_site
from tests.conftest import STACKS

OPENSTACK = "ewc-bologna"
OVH = "ovh-gra"
GPU_TAINT = "--register-with-taints=nvidia.com/gpu=present:NoSchedule"


def _one(plan, typ: str):
    (resource,) = plan.by_type(typ)
    return resource


def _release(plan, chart: str):
    return next(
        r for r in plan.by_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == chart
    )


# -- the registry --------------------------------------------------------------------------------
def test_every_member_kind_has_one_provider_module():
    assert set(PROVIDERS) == set(KINDS) - {"hub"}
    for kind in PROVIDERS:
        assert callable(provider_for(kind))


# -- openstack -----------------------------------------------------------------------------------
def test_openstack_network_routes_to_the_named_external_network(example_plans):
    plan = example_plans[OPENSTACK]
    network = example_site(OPENSTACK)["network"]
    subnet = _one(plan, "openstack:networking/subnet:Subnet")
    router = _one(plan, "openstack:networking/router:Router")
    interface = _one(plan, "openstack:networking/routerInterface:RouterInterface")
    assert subnet.inputs["cidr"] == network["cidr"]
    assert router.inputs["externalNetworkId"] == network["external_network_id"]
    assert interface.inputs["subnetId"].startswith(f"{OPENSTACK}-network-subnet")
    assert "fedeploy:site=ewc-bologna" in router.inputs["tags"]


def test_magnum_template_as_configured_api_closed_and_no_floating_ips(example_plans):
    plan = example_plans[OPENSTACK]
    cluster_config = example_site(OPENSTACK)["cluster"]
    template = _one(plan, "openstack:containerinfra/clusterTemplate:ClusterTemplate")
    cluster = _one(plan, "openstack:containerinfra/cluster:Cluster")
    inputs = template.inputs
    assert inputs["image"] == cluster_config["image_id"]
    assert inputs["masterFlavor"] == cluster_config["master_flavor"]
    assert inputs["networkDriver"] == "calico" and inputs["volumeDriver"] == "cinder"
    assert inputs["labels"]["kube_tag"] == cluster_config["kube_tag"]
    for label, value in cluster_config["labels"].items():
        assert inputs["labels"][label] == value
    allowed = inputs["labels"]["master_lb_allowed_cidrs"].split(",")
    assert allowed == [example_site(OPENSTACK)["network"]["cidr"], "198.51.100.0/24"]
    assert inputs["floatingIpEnabled"] is False and cluster.inputs["floatingIpEnabled"] is False
    assert inputs["masterLbEnabled"] is True and inputs["tlsDisabled"] is False
    assert cluster.inputs["masterCount"] == cluster_config["master_count"]


def test_magnum_node_groups_as_configured_and_gpu_groups_tainted(example_plans):
    plan = example_plans[OPENSTACK]
    groups = example_site(OPENSTACK)["cluster"]["node_groups"]
    cluster = _one(plan, "openstack:containerinfra/cluster:Cluster")
    # The first non-GPU group is Magnum's default worker group, the others are node groups.
    assert cluster.inputs["flavor"] == groups["system"]["flavor"]
    assert cluster.inputs["nodeCount"] == groups["system"]["desired_size"]
    assert GPU_TAINT not in cluster.inputs["labels"]["kubelet_options"]
    (gpu,) = plan.by_type("openstack:containerinfra/nodeGroup:NodeGroup")
    spec = groups["gpu"]
    assert gpu.inputs["flavorId"] == spec["flavor"]
    assert (gpu.inputs["minNodeCount"], gpu.inputs["nodeCount"], gpu.inputs["maxNodeCount"]) == (
        spec["min_size"],
        spec["desired_size"],
        spec["max_size"],
    )
    options = gpu.inputs["labels"]["kubelet_options"]
    assert "fedeploy.io/accelerator=nvidia" in options and GPU_TAINT in options
    assert gpu.inputs["mergeLabels"] is True


def test_openstack_store_uses_an_ec2_credential_kept_secret(example_plans):
    plan = example_plans[OPENSTACK]
    storage = example_site(OPENSTACK)["storage"]
    # The deploying user's credential (no project named) makes the buckets; the workloads'
    # own (workload_identities) name their projects.
    credentials = plan.by_type("openstack:identity/ec2CredentialV3:Ec2CredentialV3")
    (own,) = [c for c in credentials if not c.inputs.get("projectId")]
    assert own.name == f"{OPENSTACK}-s3-credential"
    (s3,) = plan.by_type("pulumi:providers:aws")
    endpoints = s3.inputs["endpoints"]  # provider inputs travel as JSON text
    endpoints = json.loads(endpoints) if isinstance(endpoints, str) else endpoints
    assert endpoints == [{"s3": storage["endpoint"]}]
    assert {"accessKey", "secretKey"} <= set(s3.secret_paths)
    buckets = {b.inputs["bucket"] for b in plan.by_type("aws:s3/bucket:Bucket")}
    assert buckets == {f"eofed-{OPENSTACK}-{b}" for b in storage["buckets"]}
    for bucket in plan.by_type("aws:s3/bucket:Bucket"):
        assert bucket.provider and bucket.provider.split("::")[-2] == s3.name


# -- ovh -----------------------------------------------------------------------------------------
def test_ovh_kube_on_its_private_network_with_api_restricted(example_plans):
    plan = example_plans[OVH]
    site = example_site(OVH)
    network = _one(plan, "ovh:CloudProject/networkPrivate:NetworkPrivate")
    subnet = _one(plan, "ovh:CloudProject/networkPrivateSubnet:NetworkPrivateSubnet")
    kube = _one(plan, "ovh:CloudProject/kube:Kube")
    restrictions = _one(plan, "ovh:CloudProject/kubeIpRestrictions:KubeIpRestrictions")
    assert network.inputs["vlanId"] == site["private_network"]["vlan_id"]
    assert subnet.inputs["network"] == site["private_network"]["cidr"]
    assert kube.inputs["serviceName"] == site["project_id"]
    assert kube.inputs["region"] == site["region"]
    assert kube.inputs["version"] == site["cluster"]["version"]
    # The OpenStack id of the network in the site's region, not OVHcloud's own id.
    assert kube.inputs["privateNetworkId"].count("-") == 4
    assert restrictions.inputs["ips"] == site["cluster"]["api_access_cidrs"]


def test_ovh_node_pools_as_configured_and_gpu_pools_tainted(example_plans):
    pools = {
        p.inputs["name"]: p.inputs
        for p in example_plans[OVH].by_type("ovh:CloudProject/kubeNodePool:KubeNodePool")
    }
    configured = example_site(OVH)["cluster"]["node_pools"]
    assert set(pools) == set(configured)
    for name, spec in configured.items():
        pool = pools[name]
        assert pool["flavorName"] == spec["flavor"]
        assert (pool["minNodes"], pool["desiredNodes"], pool["maxNodes"]) == (
            spec["min_size"],
            spec["desired_size"],
            spec["max_size"],
        )
        template = pool["template"]
        if spec.get("accelerator") == "nvidia":
            assert template["spec"]["taints"] == [
                {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
            ]
            assert template["metadata"]["labels"]["fedeploy.io/accelerator"] == "nvidia"
        else:
            assert template["spec"]["taints"] == []


def test_ovh_s3_user_may_touch_only_the_sites_buckets(example_plans):
    plan = example_plans[OVH]
    # The site user's, which makes the buckets (the workloads' own users:
    # tests/unit/test_ovh_backup_identity.py).
    (site_policy,) = [
        p
        for p in plan.by_type("ovh:CloudProject/s3Policy:S3Policy")
        if p.name == f"{OVH}-s3-policy"
    ]
    policy = json.loads(site_policy.inputs["policy"])
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    buckets = {b.inputs["bucket"] for b in plan.by_type("aws:s3/bucket:Bucket")}
    assert resources == {f"arn:aws:s3:::{b}" for b in buckets} | {
        f"arn:aws:s3:::{b}/*" for b in buckets
    }
    assert all(s["Effect"] == "Allow" and "*" not in s["Action"] for s in policy["Statement"])
    (credential,) = [
        c
        for c in plan.by_type("ovh:CloudProject/s3Credential:S3Credential")
        if c.name == f"{OVH}-s3-credential"
    ]
    assert credential.inputs["userId"].startswith(f"{OVH}-s3-user")


# -- both ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", [OPENSTACK, OVH])
def test_kubeconfig_and_keys_stay_secret(example_plans, stack):
    plan = example_plans[stack]
    assert plan.outputs["kubeconfig"] == "[secret]" and "kubeconfig" in plan.secret_outputs
    (provider,) = plan.by_type("pulumi:providers:kubernetes")
    assert "kubeconfig" in provider.secret_paths
    # Every storage Secret: the site's (ovh) and each workload's own (openstack's
    # workload_identities, ovh's catalog backups).
    storage = [
        s
        for s in plan.by_type("kubernetes:core/v1:Secret")
        if s.inputs["metadata"]["name"].startswith("fedeploy-storage")
    ]
    assert storage
    for secret in storage:
        assert secret.secret_paths == ["stringData"] and secret.inputs["stringData"] == "[secret]"
    # The stand-in keys appear nowhere in clear: not in inputs, outputs or logs.
    everything = json.dumps([r.inputs for r in plan.resources]) + json.dumps(plan.outputs)
    for marker in ("ec2-secret", "ovh-s3-secret"):
        assert marker not in everything


@pytest.mark.parametrize("stack", [OPENSTACK, OVH])
def test_charts_are_wired_to_the_store_and_the_gpu_nodes(example_plans, stack):
    plan = example_plans[stack]
    endpoint = example_site(stack)["storage"]["endpoint"]
    for chart in ("ingestion", "inference"):
        values = _release(plan, chart).inputs["values"]
        assert values["storage"]["endpoint"] == endpoint
        # openstack's example has workload_identities, ovh has a user per workload: each chart
        # mounts its own keys.
        assert values["storage"]["existingSecret"] == f"fedeploy-storage-{chart}"
        assert values["site"]["kind"] == example_site(stack)["kind"]
    gpu = _release(plan, "inference").inputs["values"]["gpu"]
    assert gpu["enabled"] is True
    assert gpu["nodeSelector"] == {"fedeploy.io/accelerator": "nvidia"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu[
        "tolerations"
    ]


@pytest.mark.parametrize("stack", [OPENSTACK, OVH])
def test_hub_harvests_the_new_sites(example_plans, stack):
    federation = example_plans["eu-hub"].outputs["federation"]
    assert federation[stack]["site"]["kind"] == example_site(stack)["kind"]
    assert federation[stack]["storage"]["auth"] == "static-keys"


# -- refused files -------------------------------------------------------------------------------
def _apply(site: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    site = copy.deepcopy(site)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = site
        for key in parents:
            node = node[key]
        node[leaf] = value
    return site


AWS_VM = {"instance_type": "c6i.large", "ami": "ami-0123456789abcdef0"}
OS_VM = {
    "flavor_id": "eo2a.large",
    "image_id": "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    "auth_url": "https://keystone.cloudferro.com:5000/v3",
}

INVALID = [
    (
        OPENSTACK,
        {"network.external_network_id": "public"},
        "site.network.external_network_id",
        ["pattern"],
    ),
    (
        OPENSTACK,
        {"network.cidr": "10.0.0.0/12"},
        "site.network",
        ["private IPv4 range from /16 to /24"],
    ),
    (OPENSTACK, {"network.api_access_cidrs": ["0.0.0.0/0"]}, "site.network", ["whole internet"]),
    (
        OPENSTACK,
        {"cluster.kube_tag": "v1.29.3"},
        "site.cluster",
        ["not a release of version '1.30'"],
    ),
    (OPENSTACK, {"cluster.labels": {"kube_tag": "v1.30.1"}}, "site.cluster", ["set by fedeploy"]),
    (OPENSTACK, {"cluster.master_count": 2}, "site.cluster.master_count", ["1", "3", "5"]),
    (
        OPENSTACK,
        {"cluster.node_groups": {"gpu": {"flavor": "vm.a6000.2", "accelerator": "nvidia"}}},
        "site.cluster",
        ["only GPU groups"],
    ),
    (
        OPENSTACK,
        {"cluster.node_groups.gpu.desired_size": 7},
        "site.cluster.node_groups.gpu",
        ["between"],
    ),
    (OPENSTACK, {"storage.endpoint": "http://s3.example.eu"}, "site.storage", ["must use https"]),
    (
        OPENSTACK,
        {"storage.buckets.raw.replicate_to": {"site": "aws-dublin", "bucket": "raw"}},
        "site.storage",
        ["buckets.raw.replicate_to: replication is only available on aws sites"],
    ),
    (
        OPENSTACK,
        {"storage.access_key_id": {"secure": "x"}},
        "site.storage.access_key_id",
        ["unknown key"],
    ),
    (OPENSTACK, {"services.catalog.database": "rds"}, "site", ["only aws sites offer"]),
    (
        OPENSTACK,
        {"bridge": {"mode": "vm", **AWS_VM, "partitions": ["batch"]}},
        "site",
        ["requires bridge.flavor_id, bridge.image_id, bridge.auth_url", "fields of aws"],
    ),
    (
        OPENSTACK,
        {"bridge": {"mode": "vm", **OS_VM, "ami": AWS_VM["ami"], "partitions": ["batch"]}},
        "site.bridge",
        ["ami (aws) and flavor_id (openstack) are both set"],
    ),
    (
        OPENSTACK,
        {"bridge": {"mode": "vm", **{**OS_VM, "auth_url": None}, "partitions": ["batch"]}},
        "site.bridge",
        ["requires auth_url"],
    ),
    (
        OPENSTACK,
        {"bridge": {"mode": "vm", **OS_VM, "image_id": "debian-12", "partitions": ["batch"]}},
        "site.bridge.image_id",
        ["pattern"],
    ),
    (
        OPENSTACK,
        {"bridge": {"mode": "vm", **OS_VM, "auth_url": "http://k:5000/v3", "partitions": ["a"]}},
        "site.bridge.auth_url",
        ["given 'http://k:5000/v3'", "https only"],
    ),
    (
        OVH,
        {"bridge": {"mode": "vm", **OS_VM, "partitions": ["batch"]}},
        "site",
        ["not offered on ovh sites"],
    ),
    (OVH, {"project_id": "my-project"}, "site.project_id", ["32 hex digits"]),
    (OVH, {"region": "gra"}, "site.region", ["pattern"]),
    (OVH, {"cluster.api_access_cidrs": ["0.0.0.0/0"]}, "site.cluster", ["whole internet"]),
    (
        OVH,
        {"cluster.node_pools.gpu.accelerator": "amd"},
        "site.cluster.node_pools.gpu.accelerator",
        ["nvidia"],
    ),
    (OVH, {"private_network.vlan_id": 5000}, "site.private_network.vlan_id", ["4000"]),
    (
        OVH,
        {"cluster.node_pools": {"system": {"flavor": "b3-16"}}},
        "site",
        ["services.inference.gpu is 'on'", "accelerator: nvidia"],
    ),
]


@pytest.mark.parametrize(("stack", "changes", "path", "words"), INVALID)
def test_bad_file_refused_with_its_key_path_before_any_resource(stack, changes, path, words):
    site = _apply(example_site(stack), changes)
    with pytest.raises(StackConfigError) as caught:
        plan_stack(STACKS / f"Pulumi.{stack}.yaml", config_override={"fedeploy:site": site})
    assert caught.value.resources_registered == 0  # type: ignore[attr-defined]
    paths = [issue.path for issue in caught.value.issues]
    assert path in paths, paths
    message = str(caught.value)
    for word in words:
        assert word in message, message


# -- pure decisions ------------------------------------------------------------------------------
def test_kubelet_options_register_labels_and_taints():
    gpu = kubelet_options(node_labels("gpu", gpu=True), node_taints(gpu=True))
    assert gpu == (
        "--node-labels=fedeploy.io/accelerator=nvidia,fedeploy.io/node-group=gpu "
        "--register-with-taints=nvidia.com/gpu=present:NoSchedule"
    )
    assert magnum_group_labels("system", gpu=False) == {
        "kubelet_options": "--node-labels=fedeploy.io/node-group=system"
    }


def test_site_user_policy_names_each_bucket_and_refuses_none():
    policy = site_user_policy(["b-two", "a-one"])
    assert policy["Statement"][0]["Resource"] == ["arn:aws:s3:::a-one", "arn:aws:s3:::b-two"]
    assert policy["Statement"][1]["Resource"] == ["arn:aws:s3:::a-one/*", "arn:aws:s3:::b-two/*"]
    with pytest.raises(ValueError, match="no buckets"):
        site_user_policy([])


# -- policies ------------------------------------------------------------------------------------
def _subject(typ: str, **props: Any) -> Subject:
    return Subject(type=typ, name="r", props=props)


@pytest.mark.parametrize(
    ("flavor", "gpu"),
    [
        ("l4-90", True),
        ("t1-45", True),
        ("vm.a6000.2", True),
        ("8cpu-64gbmem-1a100", True),
        ("b3-16", False),
        ("8cpu-16gbmem-80gbdisk", False),
        ("eo2a.xlarge", False),
    ],
)
def test_gpu_flavors_are_recognised(flavor, gpu):
    assert is_gpu_flavor(flavor) is gpu


def test_policies_catch_open_apis_floating_ips_and_untainted_gpu_groups():
    open_template = _subject(
        "openstack:containerinfra/clusterTemplate:ClusterTemplate",
        labels={"master_lb_allowed_cidrs": "0.0.0.0/0"},
        floatingIpEnabled=True,
    )
    open_rule = _subject(
        "openstack:networking/secGroupRule:SecGroupRule",
        direction="ingress",
        remoteIpPrefix="0.0.0.0/0",
        portRangeMin=22,
    )
    untainted = [
        _subject(
            "openstack:containerinfra/nodeGroup:NodeGroup",
            flavorId="vm.a6000.2",
            labels={"kubelet_options": "--node-labels=fedeploy.io/accelerator=nvidia"},
        ),
        _subject(
            "ovh:CloudProject/kubeNodePool:KubeNodePool",
            flavorName="l4-90",
            template={"spec": {"taints": []}},
        ),
        _subject("aws:eks/nodeGroup:NodeGroup", instanceTypes=["g5.xlarge"], taints=None),
    ]
    assert len(list(world_open([open_template, open_rule]))) == 2
    assert len(list(no_public_node_ips([open_template]))) == 1
    assert len(list(gpu_nodes_tainted(untainted))) == 3


def test_example_sites_pass_the_new_policies(example_plans):
    from policies.cloud import evaluate
    from policies.providers import provider_rules

    for stack in (OPENSTACK, OVH):
        plan = example_plans[stack]
        subjects = [
            Subject(r.type, r.name, r.inputs, tuple(r.secret_paths)) for r in plan.resources
        ]
        findings = evaluate(subjects, provider_rules())
        # The openstack example turns workload_identities on (issue 27): no storage-identity
        # advisory any more, nor anything else.
        assert findings == [], findings


def test_an_ec2_credential_of_the_deploying_user_is_an_advisory():
    own = _subject("openstack:identity/ec2CredentialV3:Ec2CredentialV3")
    # A workload's credential, which its own user creates in its own project.
    dedicated = _subject("openstack:identity/ec2CredentialV3:Ec2CredentialV3", projectId="p-1")
    (finding,) = storage_identity([own])
    assert (finding.rule, finding.enforcement) == ("storage-identity", "advisory")
    assert "every container of that project" in finding.message
    # It says where the fix goes and what the deploying identity then needs.
    for words in (
        "Pulumi.<stack>.yaml",
        "config.fedeploy:site.workload_identities",
        "`manager` role on that domain",
        "403 Forbidden",
    ):
        assert words in finding.message
    # With workload identities the deploying user's keys stay with Pulumi: nothing to advise.
    assert list(storage_identity([own, dedicated])) == []


def test_a_process_that_loaded_the_helm_library_never_forks_planners(monkeypatch):
    # Seven example stacks put five in one wave, enough to fork workers; a forked child of a
    # process holding Helm's Go runtime hangs on its first render (test_plan_is_deterministic).
    import sys
    import types

    from fedeploy.offline.federation import fork_is_safe

    monkeypatch.delitem(sys.modules, "helm_python._native", raising=False)
    assert fork_is_safe()
    monkeypatch.setitem(sys.modules, "helm_python._native", types.ModuleType("stand-in"))
    assert not fork_is_safe()
