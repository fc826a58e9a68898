"""Write access to a catalog is per site: every example site's auth proxy accepts its own token
audience and write scope and no other site's, so one writer's token cannot write or delete in
every member's catalog, nor in the hub's `fedeploy-site-*` harvest-status collections (which
`fedeploy verify` reads to let a wave pass). Read from the catalog releases the plan records."""

from __future__ import annotations

from typing import Any

from tests.builders import example_site
from tests.conftest import EXAMPLE_STACKS

RELEASE = "kubernetes:helm.sh/v3:Release"


def _proxy_oidc(plan: Any) -> dict[str, str]:
    (catalog,) = [r for r in plan.by_type(RELEASE) if r.inputs["chart"].endswith("catalog")]
    return dict(catalog.inputs["values"]["authProxy"]["oidc"])


def _published() -> list[str]:
    published = []
    for stack in EXAMPLE_STACKS:
        if example_site(stack).get("services", {}).get("catalog", {}).get("exposure"):
            published.append(stack)
    return published


def test_every_published_example_site_accepts_only_its_own_audience_and_write_scope(
    example_plans,
) -> None:
    published = _published()
    assert "eu-hub" in published and len(published) == len(EXAMPLE_STACKS)
    oidc = {stack: _proxy_oidc(example_plans[stack]) for stack in published}
    audiences = [o["audience"] for o in oidc.values()]
    scopes = [o["writeScope"] for o in oidc.values()]
    assert len(set(audiences)) == len(published), oidc
    assert len(set(scopes)) == len(published), oidc
    for stack, values in oidc.items():
        # The stack names its own site, so a token's purpose can be read off it.
        assert values["audience"].endswith(stack) and values["writeScope"].endswith(stack)


def test_no_member_token_writes_the_hubs_harvest_status(example_plans) -> None:
    hub = _proxy_oidc(example_plans["eu-hub"])
    for stack in _published():
        if stack != "eu-hub":
            member = _proxy_oidc(example_plans[stack])
            assert (member["audience"], member["writeScope"]) != (
                hub["audience"],
                hub["writeScope"],
            )
            assert member["audience"] != hub["audience"]
