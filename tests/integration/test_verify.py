"""`fedeploy verify` against real catalogs on loopback: a member site's stac-fastapi-pgstac and a
hub's, the hub filled by the project's harvester; healthy first, then broken one way at a time.

The stack files are the example federation's, with the catalog's public URL replaced by the
loopback one through --catalog-url (the documented override)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from fedeploy import cli
from loopback import PostgresServer, StacApiServer, stac_documents
from tests.builders import edit_site, example_stacks
from tests.peers import running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SITE = "aws-frankfurt"
HUB = "eu-hub"
COLLECTIONS = ["edge-observations", "sentinel-2-l2a"]
FAST = ["--deadline", "1", "--timeout", "2"]


def _collection(collection_id: str) -> dict:
    return stac_documents.collection(
        collection_id,
        f"{collection_id} (test)",
        license="proprietary",
        start="2024-01-01T00:00:00Z",
    )


def _stacks(tmp: Path, exposure: bool) -> Path:
    """The example member and hub stack files: the hub with that one member; the member's
    public URL (and so its exposure) dropped unless `exposure`."""
    stacks = example_stacks(tmp / ("stacks-exposed" if exposure else "stacks"), [SITE, HUB])

    def published_unless_told(site: dict) -> None:
        if not exposure:
            site["services"]["catalog"].pop("url", None)
            site["services"]["catalog"].pop("exposure", None)

    edit_site(stacks / f"Pulumi.{SITE}.yaml", published_unless_told, sort_keys=True)

    def hub_of_site(hub: dict) -> None:
        hub["members"] = [SITE]
        published_unless_told(hub)

    edit_site(stacks / f"Pulumi.{HUB}.yaml", hub_of_site, sort_keys=True)
    return stacks


class Federation:
    def __init__(self, postgres: PostgresServer, tmp: Path) -> None:
        self.postgres, self.tmp = postgres, tmp
        self.site = self._api("verify_site")
        self.hub = self._api("verify_hub")
        self.stacks = _stacks(tmp, exposure=False)
        self.exposed = _stacks(tmp, exposure=True)
        for collection_id in COLLECTIONS:
            httpx.post(
                f"{self.site.url}/collections", json=_collection(collection_id), timeout=30
            ).raise_for_status()

    def _api(self, name: str) -> StacApiServer:
        dsn = self.postgres.create_database(name)
        return StacApiServer(dsn, self.tmp / name, name=name).start()

    def harvest(self, now: datetime | None = None) -> None:
        from fedeploy_ingestion.harvest import Harvester
        from fedeploy_ingestion.metrics import Metrics
        from fedeploy_ingestion.settings import HarvestSettings

        settings = HarvestSettings(
            sources=[{"name": SITE, "url": self.site.url}], target_url=self.hub.url
        )
        Harvester(settings, Metrics()).run(now=now)

    def verify(self, stack: str, *args: str, stacks: Path | None = None):
        url = self.hub.url if stack == HUB else self.site.url
        return CliRunner().invoke(
            cli.app,
            [
                "verify",
                stack,
                "--stacks-dir",
                str(stacks or self.stacks),
                "--catalog-url",
                url,
                *args,
            ],
        )


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    with running(
        lambda: PostgresServer(tmp_path_factory.mktemp("postgres")).start(), teardown="remove"
    ) as postgres:
        federation = Federation(postgres, tmp_path_factory.mktemp("verify"))
        federation.harvest()
        yield federation
        federation.site.stop()
        federation.hub.stop()


def _lines(output: str) -> dict[str, str]:
    """Check name -> its report line."""
    lines = {}
    for line in output.splitlines()[1:]:
        status, rest = line.split(None, 1)
        for name in (
            "catalog answers /",
            "catalog conformance",
            "no anonymous writes",
            "bridge answers",
            f"harvest of {SITE}",
            *(f"collection {c}" for c in COLLECTIONS),
        ):
            if rest.startswith(name):
                lines[name] = f"{status} {rest[len(name) :].strip()}"
    return lines


def test_a_healthy_site_and_hub_pass(federation: Federation) -> None:
    site = federation.verify(SITE, "--deadline", "5")
    assert site.exit_code == 0, site.output
    checks = _lines(site.stdout)
    assert checks["catalog answers /"].startswith("ok GET")
    assert "conforms to STAC API core" in checks["catalog conformance"]
    for collection in COLLECTIONS:
        assert checks[f"collection {collection}"].startswith("ok "), checks
    assert checks["no anonymous writes"].startswith("n/a ")
    assert "sets no services.catalog.exposure" in checks["no anonymous writes"]
    assert checks["bridge answers"] == "n/a the site has no bridge"
    hub = federation.verify(HUB, "--deadline", "5")
    assert hub.exit_code == 0, hub.output
    assert _lines(hub.stdout)[f"harvest of {SITE}"].startswith("ok ")


def test_a_missing_collection_fails_naming_it(federation: Federation) -> None:
    httpx.delete(f"{federation.site.url}/collections/edge-observations", timeout=30)
    try:
        result = federation.verify(SITE, *FAST)
    finally:
        httpx.post(
            f"{federation.site.url}/collections",
            json=_collection("edge-observations"),
            timeout=30,
        ).raise_for_status()
    assert result.exit_code == 1, result.output
    checks = _lines(result.stdout)
    assert checks["collection edge-observations"].startswith("FAILED ")
    assert "collection 'edge-observations' is missing" in checks["collection edge-observations"]
    assert checks["collection sentinel-2-l2a"].startswith("ok ")


def test_a_published_catalog_that_takes_anonymous_writes_fails(federation: Federation) -> None:
    # The loopback API has no token-checking proxy in front: with exposure declared, that fails.
    result = federation.verify(SITE, *FAST, stacks=federation.exposed)
    assert result.exit_code == 1, result.output
    line = _lines(result.stdout)["no anonymous writes"]
    assert line.startswith("FAILED POST ")
    assert "anonymous writes reach it" in line


def test_a_stale_harvest_fails_with_its_age(federation: Federation) -> None:
    federation.harvest(now=datetime.now(UTC) - timedelta(hours=3))
    try:
        result = federation.verify(HUB, *FAST)
        fresh_enough = federation.verify(HUB, *FAST, "--max-harvest-age", "86400")
    finally:
        federation.harvest()
    assert result.exit_code == 1, result.output
    line = _lines(result.stdout)[f"harvest of {SITE}"]
    assert line.startswith("FAILED ") and "over the 3600 s allowed" in line
    assert fresh_enough.exit_code == 0, fresh_enough.output


def test_a_catalog_down_fails_and_the_hub_reports_the_members_failed_harvest(
    federation: Federation,
) -> None:
    federation.site.stop()
    site = federation.verify(SITE, *FAST)
    assert site.exit_code == 1, site.output
    assert _lines(site.stdout)["catalog answers /"].startswith("FAILED GET ")
    assert "ConnectError" in _lines(site.stdout)["catalog answers /"]
    federation.harvest()  # the harvester records the member as unreachable
    hub = federation.verify(HUB, *FAST)
    assert hub.exit_code == 1, hub.output
    line = _lines(hub.stdout)[f"harvest of {SITE}"]
    assert f"last harvest of {SITE} unreachable" in line


def test_a_site_without_a_public_url_or_stack_file_cannot_be_verified(
    federation: Federation,
) -> None:
    result = CliRunner().invoke(cli.app, ["verify", SITE, "--stacks-dir", str(federation.stacks)])
    assert result.exit_code == 2
    assert "has no public catalog URL" in result.output
    missing = CliRunner().invoke(
        cli.app, ["verify", "nowhere", "--stacks-dir", str(federation.stacks)]
    )
    assert missing.exit_code == 2
    assert "no stack file" in missing.output
