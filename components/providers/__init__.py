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


def provider_for(kind: str) -> Provision:
    """The `provision` function of the module that builds sites of `kind`; KeyError if none."""
    module = importlib.import_module(PROVIDERS[kind])
    provision: Provision = module.provision
    return provision


__all__ = ["PROVIDERS", "BuildContext", "Provision", "SiteResources", "provider_for"]
