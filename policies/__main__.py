"""`pulumi preview --policy-pack policies`: the same rules the offline plan evaluates.

Charts are deployed as Helm releases, so their manifests are checked by the offline plan
(policies/workloads.py), which renders them; this pack checks every registered resource."""

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.pack import policies

PolicyPack(name="fedeploy", enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
