"""The policy pack that `pulumi preview --policy-pack policies` loads, driven as the CLI would."""

from __future__ import annotations

from types import SimpleNamespace

from pulumi_policy import EnforcementLevel, StackValidationPolicy

from policies.cloud import RULES
from policies.pack import OFFLINE_ONLY, policies


def _resource(typ, name, props, provider_props=None):
    provider = SimpleNamespace(props=provider_props or {}) if provider_props is not None else None
    return SimpleNamespace(resource_type=typ, name=name, props=props, provider=provider)


def _collect(found: list[str]):
    return lambda message, urn: found.append(message)


def test_pack_holds_every_rule_but_the_offline_only_one():
    pack = policies()
    assert all(isinstance(p, StackValidationPolicy) for p in pack)
    assert {p.name for p in pack} == {r.name for r in RULES} - OFFLINE_ONLY
    enforcement = {r.name: r.enforcement for r in RULES}
    for policy in pack:
        expected = (
            EnforcementLevel.MANDATORY
            if enforcement[policy.name] == "mandatory"
            else EnforcementLevel.ADVISORY
        )
        assert policy.enforcement_level == expected, policy.name
    assert enforcement["mqtt-tls"] == "advisory"


def test_pack_reports_a_bucket_without_tls_policy_and_passes_a_compliant_one():
    by_name = {p.name: p for p in policies()}
    bad = [_resource("aws:s3/bucket:Bucket", "raw", {"bucket": "b"}, {})]
    good = bad + [
        _resource(
            "aws:s3/bucketPolicy:BucketPolicy",
            "raw-tls",
            {
                "bucket": "b",
                "policy": '{"Statement": [{"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}',
            },
        )
    ]
    for resources, expected in ((bad, 1), (good, 0)):
        found: list[str] = []
        by_name["s3-tls-only"].validate(SimpleNamespace(resources=resources), _collect(found))
        assert len(found) == expected


def test_buckets_on_an_s3_compatible_store_are_not_held_to_aws_only_rules():
    by_name = {p.name: p for p in policies()}
    store = [
        _resource(
            "aws:s3/bucket:Bucket",
            "raw",
            {"bucket": "b"},
            {"endpoints": [{"s3": "https://s3.example.eu"}]},
        )
    ]
    violations: list[str] = []
    by_name["s3-no-public-access"].validate(
        SimpleNamespace(resources=store), lambda m, u: violations.append(m)
    )
    assert violations == []
