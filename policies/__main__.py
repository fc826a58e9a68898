"""`pulumi preview --policy-pack policies`: the same rules the offline plan evaluates.

Charts are deployed as Helm releases, so their manifests are checked by the offline plan
(policies/workloads.py), which renders them; this pack checks every registered resource."""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.cloud import RULES, Rule
from policies.findings import Subject


def _subject(resource: Any) -> Subject:
    provider = getattr(resource, "provider", None)
    return Subject(
        type=resource.resource_type,
        name=resource.name,
        props=dict(resource.props),
        provider_props=dict(getattr(provider, "props", None) or {}),
    )


def _policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: Any) -> None:
        subjects = [_subject(r) for r in args.resources]
        for finding in rule.check(subjects):
            report_violation(f"{finding.resource}: {finding.message}", None)

    level = (
        EnforcementLevel.MANDATORY if rule.enforcement == "mandatory" else EnforcementLevel.ADVISORY
    )
    return StackValidationPolicy(
        name=rule.name, description=rule.description, enforcement_level=level, validate=validate
    )


# Secrets arrive decrypted in a policy pack, so this rule is the offline plan's alone.
PACK_RULES = [rule for rule in RULES if rule.name != "no-plaintext-secrets"]

PolicyPack(
    name="fedeploy",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[_policy(r) for r in PACK_RULES],
)
