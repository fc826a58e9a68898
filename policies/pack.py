"""The rules as pulumi-policy StackValidationPolicies, for `pulumi preview --policy-pack`."""

from __future__ import annotations

from typing import Any

from pulumi_policy import EnforcementLevel, StackValidationArgs, StackValidationPolicy

from policies.cloud import RULES
from policies.findings import Rule, Subject

# Secrets arrive decrypted in a policy pack, so this rule is the offline plan's alone.
OFFLINE_ONLY = {"no-plaintext-secrets"}


def _subject(resource: Any) -> Subject:
    provider = getattr(resource, "provider", None)
    return Subject(
        type=resource.resource_type,
        name=resource.name,
        props=dict(resource.props),
        provider_props=dict(getattr(provider, "props", None) or {}),
    )


def stack_policy(rule: Rule) -> StackValidationPolicy:
    """One rule checked over every resource of the stack being previewed."""

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


def policies() -> list[Any]:
    """Every rule but the offline-only ones, as the policy pack's policies."""
    return [stack_policy(rule) for rule in RULES if rule.name not in OFFLINE_ONLY]
