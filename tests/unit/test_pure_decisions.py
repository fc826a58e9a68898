"""The plain functions behind the components: names, address layout, rules, references."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedeploy.config.storage import Lifecycle
from fedeploy.kubeconfig import eks_kubeconfig
from fedeploy.naming import bucket_name
from fedeploy.network import overlapping, subnet_layout
from fedeploy.references import deployment_order
from fedeploy.storage_rules import lifecycle_rules
from policies.cloud import evaluate
from policies.findings import Subject
from policies.workloads import workload_findings

zones = st.lists(st.sampled_from("abcdef"), min_size=2, max_size=6, unique=True)
prefixes = st.integers(min_value=16, max_value=20)


@given(zones=zones, prefix=prefixes, second=st.integers(0, 255))
def test_subnets_never_overlap_and_stay_inside_the_vpc(zones, prefix, second):
    cidr = str(ipaddress.ip_network(f"10.{second}.0.0/{prefix}", strict=False))
    layout = subnet_layout(cidr, [f"eu-west-1{z}" for z in zones])
    nets = [ipaddress.ip_network(c) for _, c in layout.private + layout.public]
    vpc = ipaddress.ip_network(cidr)
    assert len(layout.private) == len(layout.public) == len(zones)
    assert all(n.subnet_of(vpc) for n in nets)
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    # private subnets are the larger ones: nodes and pods take their addresses
    assert all(
        ipaddress.ip_network(p).num_addresses > ipaddress.ip_network(q).num_addresses
        for (_, p), (_, q) in zip(layout.private, layout.public, strict=True)
    )


def test_subnet_layout_is_stable():
    layout = subnet_layout("10.20.0.0/16", ["eu-central-1a", "eu-central-1b", "eu-central-1c"])
    assert layout.private[0] == ("eu-central-1a", "10.20.0.0/19")
    assert layout.public[2] == ("eu-central-1c", "10.20.144.0/21")


def test_overlapping_ranges_are_named():
    assert overlapping({"a": "10.0.0.0/16", "b": "10.0.128.0/17", "c": "10.1.0.0/16"}) == [
        ("a", "b")
    ]


@given(
    site=st.from_regex(r"[a-z][a-z0-9]{1,22}[a-z0-9]", fullmatch=True),
    bucket=st.from_regex(r"[a-z][a-z0-9]{0,14}[a-z0-9]", fullmatch=True),
)
def test_bucket_names_are_valid_s3_names(site, bucket):
    name = bucket_name("fedeploy", site, bucket)
    assert (
        3 <= len(name) <= 63
        and name == name.lower()
        and name == bucket_name("fedeploy", site, bucket)
    )


def test_invalid_bucket_name_is_refused():
    with pytest.raises(ValueError):
        bucket_name("x", "a--b", "raw")


def test_lifecycle_rules_follow_the_config():
    rules = lifecycle_rules(
        Lifecycle(expire_after_days=400, transition_to_infrequent_access_after_days=90),
        versioned=False,
    )
    ids = [r["id"] for r in rules]
    assert ids == [
        "abort-incomplete-uploads",
        "expire-upload-records",
        "expire-current",
        "to-infrequent-access",
    ]
    assert lifecycle_rules(Lifecycle(), versioned=True)[2]["noncurrent_version_expiration"] == {
        "noncurrent_days": 30
    }
    assert all(
        r["id"] != "to-infrequent-access"
        for r in lifecycle_rules(
            Lifecycle(transition_to_infrequent_access_after_days=30), versioned=True, tiering=False
        )
    )


def test_deployment_order_is_in_waves():
    assert deployment_order({"hub": {"a", "b"}, "a": {"b"}, "b": set()}) == [["b"], ["a"], ["hub"]]


def test_eks_kubeconfig_uses_aws_identity_not_a_static_token():
    text = eks_kubeconfig(
        name="c", endpoint="https://x", certificate_authority="Q0E=", region="eu-west-1"
    )
    assert "get-token" in text and "token:" not in text


BAD = [
    Subject(
        "aws:s3/bucket:Bucket",
        "b",
        {"bucket": "b", "tags": {"fedeploy:site": "s", "fedeploy:managed-by": "fedeploy"}},
    ),
    Subject("aws:kms/key:Key", "k", {"enableKeyRotation": False, "tags": {}}),
    Subject(
        "aws:ec2/securityGroup:SecurityGroup",
        "sg",
        {"ingress": [{"fromPort": 22, "cidrBlocks": ["0.0.0.0/0"]}], "tags": {}},
    ),
    Subject(
        "aws:rds/instance:Instance",
        "db",
        {"storageEncrypted": False, "publiclyAccessible": True, "tags": {}},
    ),
    Subject(
        "kubernetes:core/v1:Secret",
        "s",
        {"metadata": {"labels": {}}, "stringData": {"password": "hunter2"}},
    ),
]


def test_policy_rules_find_each_insecure_resource():
    rules = {(f.rule, f.resource) for f in evaluate(BAD)}
    assert {
        ("s3-encrypted", "b"),
        ("s3-no-public-access", "b"),
        ("s3-tls-only", "b"),
        ("kms-rotation", "k"),
        ("no-open-ingress", "sg"),
        ("encrypted-at-rest", "db"),
        ("no-open-ingress", "db"),
        ("no-plaintext-secrets", "s"),
        ("labels", "s"),
        ("tags", "k"),
    } <= rules


def test_secret_inputs_marked_secret_pass():
    ok = Subject(
        "kubernetes:core/v1:Secret",
        "s",
        {
            "metadata": {"labels": {"app.kubernetes.io/part-of": "fedeploy"}},
            "stringData": "[secret]",
        },
        secret_paths=("stringData",),
    )
    assert evaluate([ok]) == []


def test_workload_rules_flag_a_root_writable_unbounded_pod():
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "x", "labels": {}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }
    rules = {f.rule for f in workload_findings([deployment], "r")}
    assert rules == {
        "network-policy",
        "labels",
        "pod-hardening",
        "resources",
        "pinned-images",
        "probes",
    }
    assert json.dumps(deployment)  # the manifest itself is untouched
