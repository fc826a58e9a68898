"""One package per kind of member site; `PROVIDERS` maps a stack file's `kind` to it.

Each package `components/providers/<kind>/` holds the same few modules (network, cluster,
storage, database, bridge_host, identity: those its kind has) and, in its `__init__`,
`provision(config, context) -> SiteResources` (base.py). Adding a kind: a config class in
fedeploy/config/, a package here, and one line below (docs/architecture.md has the checklist).
Packages are imported on first use, so a stack never loads another cloud's SDK."""

from __future__ import annotations

import importlib

from components.providers.base import BuildContext, Provision, SiteResources

PROVIDERS: dict[str, str] = {
    "aws": "components.providers.aws",
    "kubernetes": "components.providers.existing",
    "hpc": "components.providers.existing",
    "openstack": "components.providers.openstack",
    "ovh": "components.providers.ovh",
}

# The SDK classes the packages above use, one per lazily loaded SDK package: touching a class
# loads its package's modules (a module's __name__ alone loads nothing). Only what the offline
# plan's warm-up reads; a package missing here is loaded by the stack that first uses it.
SDK_WARM_UP: dict[str, tuple[str, ...]] = {
    "pulumi_aws": (
        "s3.BucketV2",
        "kms.Key",
        "iam.Role",
        "ec2.Vpc",
        "eks.Cluster",
        "rds.Instance",
        "ssm.Parameter",
    ),
    "pulumi_openstack": (
        "networking.Network",
        "containerinfra.Cluster",
        "identity.Ec2CredentialV3",
        "compute.Instance",
        "keymanager.SecretV1",
    ),
    "pulumi_ovh": ("cloudproject.Kube",),
}


def provider_for(kind: str) -> Provision:
    """The `provision` function of the module that builds sites of `kind`; KeyError if none."""
    module = importlib.import_module(PROVIDERS[kind])
    provision: Provision = module.provision
    return provision


def warm_provider_sdks() -> None:
    """Import every kind's package (PROVIDERS) and the lazily loaded SDK modules they use
    (SDK_WARM_UP), creating nothing: the offline plan calls it once before forking workers."""
    for kind in sorted(PROVIDERS):
        provider_for(kind)
    for sdk, classes in sorted(SDK_WARM_UP.items()):
        module = importlib.import_module(sdk)
        for dotted in classes:
            package, _, name = dotted.rpartition(".")
            getattr(getattr(module, package), name)


__all__ = [
    "PROVIDERS",
    "SDK_WARM_UP",
    "BuildContext",
    "Provision",
    "SiteResources",
    "provider_for",
    "warm_provider_sdks",
]
