"""Public catalogs for real: two sites and a hub, each behind TLS nginx and stac-auth-proxy.

Peers, all on loopback: PostgreSQL with pgstac, stac-fastapi-pgstac per catalog, the catalog
chart's auth proxy (stac-auth-proxy 1.3.1 behind charts/catalog/files/token_guard.py, configured
with the environment the chart renders), nginx-light terminating TLS with certificates of a test
CA (one loopback address per site), and a small OIDC issuer behind the same nginx.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from fedeploy.charts import render_chart
from fedeploy.loopback import PeerUnavailable, PostgresServer, StacApiServer
from fedeploy.loopback.auth_proxy import AuthProxyServer
from fedeploy.loopback.nginx import NginxTls
from fedeploy.loopback.oidc import OidcIssuer
from fedeploy.loopback.tls import TestCA
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AUDIENCE = "eofed-catalog"
WRITE = "stac:write"
SITES = {"site-a": "127.0.0.11", "site-b": "127.0.0.12", "hub": "127.0.0.13"}
ISSUER_ADDRESS = "127.0.0.14"
COLLECTION = "loopback-scenes"


def proxy_env(public_url: str, issuer: str) -> dict[str, str]:
    """The auth proxy container's environment, exactly as the catalog chart renders it."""
    manifests = render_chart(
        ROOT / "charts/catalog",
        {
            "site": {"name": "loopback", "kind": "kubernetes"},
            "database": {"existingSecret": "db"},
            "exposure": {
                "enabled": True,
                "url": public_url,
                "tls": {"certManagerIssuer": "test-ca"},
            },
            "authProxy": {"oidc": {"issuer": issuer, "audience": AUDIENCE, "writeScope": WRITE}},
        },
        "catalog",
        "fedeploy",
    )
    (deployment,) = [
        m
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("-auth-proxy")
    ]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in env}


@dataclass
class Federation:
    ca: TestCA
    issuer: OidcIssuer
    apis: dict[str, StacApiServer]
    public: dict[str, str]
    stoppers: list[Any] = field(default_factory=list)

    def client(self) -> httpx.Client:
        """An https client that trusts the test CA only."""
        return httpx.Client(verify=self.ca.ssl_context(), timeout=30)

    def token(self, scope: str = WRITE, **kwargs: Any) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.issuer.token(audience=AUDIENCE, scope=scope, **kwargs)}"
        }


def scene(site: str, number: int) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"{site}-scene-{number}",
        "collection": COLLECTION,
        "geometry": {"type": "Point", "coordinates": [11.0 + number, 46.0]},
        "bbox": [11.0 + number, 46.0, 11.0 + number, 46.0],
        "properties": {
            "datetime": f"2026-11-0{number}T10:00:00Z",
            "updated": f"2026-11-0{number}T10:05:00Z",
        },
        "assets": {
            "data": {
                "href": f"s3://{site}-raw/scenes/{site}-scene-{number}.tif",
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
            }
        },
        "links": [],
    }


def collection_document() -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": COLLECTION,
        "description": "Scenes of the loopback federation.",
        "license": "CC-BY-4.0",
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [["2026-01-01T00:00:00Z", None]]},
        },
        "links": [],
    }


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    work = tmp_path_factory.mktemp("public-catalogs")
    stoppers: list[Any] = []
    try:
        postgres = PostgresServer(work / "postgres").start()
        stoppers.append(postgres.remove)
        ca = TestCA(work / "ca")
        issuer = OidcIssuer().start()
        stoppers.append(issuer.stop)
        nginx = NginxTls(work / "nginx", ca)
        issuer_site = nginx.add_site("issuer", ISSUER_ADDRESS, {"/": issuer.local_url})
        issuer.publish(issuer_site.url)
        apis, proxies, public = {}, {}, {}
        for name, address in SITES.items():
            database = name.replace("-", "_")
            apis[name] = StacApiServer(
                postgres.create_database(database), work / name, name=f"api-{name}"
            )
            port_site = nginx.add_site(name, address, {})
            public[name] = port_site.url
            env = proxy_env(port_site.url, issuer.url)
            env["UPSTREAM_URL"] = apis[name].url
            proxies[name] = AuthProxyServer(
                env, work / name, name=f"proxy-{name}", ca_file=ca.ca_file
            )
            port_site.routes["/"] = proxies[name].url
        for api in apis.values():
            api.start()
            stoppers.append(api.stop)
        nginx.start()
        stoppers.append(nginx.stop)
        for proxy in proxies.values():
            proxy.start()
            stoppers.append(proxy.stop)
    except PeerUnavailable as missing:
        for stop in reversed(stoppers):
            stop()
        if os.environ.get("FEDEPLOY_REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"integration peer missing: {missing}")
        pytest.skip(str(missing))
    except BaseException:
        for stop in reversed(stoppers):
            stop()
        raise
    # The sites' own writers (in-cluster, straight to the API) register two scenes each.
    for name in ("site-a", "site-b"):
        httpx.post(f"{apis[name].url}/collections", json=collection_document()).raise_for_status()
        for number in (1, 2):
            httpx.post(
                f"{apis[name].url}/collections/{COLLECTION}/items", json=scene(name, number)
            ).raise_for_status()
    yield Federation(ca, issuer, apis, public, stoppers)
    for stop in reversed(stoppers):
        stop()


def test_anonymous_reads_work_over_verified_tls(federation):
    with federation.client() as http:
        url = federation.public["site-a"]
        landing = http.get(url)
        assert landing.status_code == 200
        # Links name the public https address (the proxy saw X-Forwarded-Proto from nginx).
        assert all(
            link["href"].startswith(url)
            for link in landing.json()["links"]
            if link["rel"] == "self"
        )
        got = http.get(f"{url}/search", params={"collections": COLLECTION})
        assert got.status_code == 200
        assert sorted(f["id"] for f in got.json()["features"]) == [
            "site-a-scene-1",
            "site-a-scene-2",
        ]
        posted = http.post(f"{url}/search", json={"ids": ["site-a-scene-2"]})
        assert posted.status_code == 200
        assert [f["id"] for f in posted.json()["features"]] == ["site-a-scene-2"]
    # A client that does not trust the test CA is refused the connection.
    with pytest.raises(httpx.ConnectError):
        httpx.get(federation.public["site-a"], timeout=10)


def _bad_tokens(federation) -> dict[str, dict[str, str]]:
    issuer = federation.issuer
    forged = issuer.token(audience=AUDIENCE, scope=WRITE, signing_key=issuer.foreign_key())
    return {
        "anonymous": {},
        "expired": federation.token(lifetime=-60),
        "wrongly signed": {"Authorization": f"Bearer {forged}"},
        "wrong audience": {
            "Authorization": f"Bearer {issuer.token(audience='another-api', scope=WRITE)}"
        },
        "wrong scope": federation.token(scope="stac:read"),
        "no expiry": federation.token(lifetime=None),
        "foreign issuer": federation.token(issuer="https://evil.example.org"),
        "basic": {"Authorization": "Basic d3JpdGVyOnNlY3JldA=="},
    }


@pytest.mark.parametrize(
    "kind",
    [
        "anonymous",
        "expired",
        "wrongly signed",
        "wrong audience",
        "wrong scope",
        "no expiry",
        "foreign issuer",
        "basic",
    ],
)
def test_writes_without_a_valid_scoped_token_are_refused_and_change_nothing(federation, kind):
    headers = _bad_tokens(federation)[kind]
    url = federation.public["site-b"]
    item = scene("site-b", 7)
    replacement = {
        **scene("site-b", 1),
        "properties": {**scene("site-b", 1)["properties"], "title": "defaced"},
    }
    with federation.client() as http:
        attempts = [
            http.post(f"{url}/collections/{COLLECTION}/items", json=item, headers=headers),
            http.put(
                f"{url}/collections/{COLLECTION}/items/site-b-scene-1",
                json=replacement,
                headers=headers,
            ),
            http.delete(f"{url}/collections/{COLLECTION}/items/site-b-scene-2", headers=headers),
            http.post(
                f"{url}/collections/{COLLECTION}/bulk_items",
                json={"items": {item["id"]: item}, "method": "upsert"},
                headers=headers,
            ),
            http.delete(f"{url}/collections/{COLLECTION}", headers=headers),
        ]
    assert [a.status_code for a in attempts if a.status_code not in (401, 403)] == []
    # Nothing changed behind the proxy: read straight from the site's API.
    api = federation.apis["site-b"].url
    assert httpx.get(f"{api}/collections/{COLLECTION}/items/site-b-scene-7").status_code == 404
    kept = httpx.get(f"{api}/collections/{COLLECTION}/items/site-b-scene-1").json()
    assert "title" not in kept["properties"]
    assert httpx.get(f"{api}/collections/{COLLECTION}/items/site-b-scene-2").status_code == 200


def test_a_writer_with_the_scoped_token_writes_through_the_public_url(federation):
    url = federation.public["site-b"]
    item = scene("site-b", 8)
    with federation.client() as http:
        created = http.post(
            f"{url}/collections/{COLLECTION}/items", json=item, headers=federation.token()
        )
        assert created.status_code in (200, 201), created.text
        deleted = http.delete(
            f"{url}/collections/{COLLECTION}/items/{item['id']}", headers=federation.token()
        )
        assert deleted.status_code in (200, 204), deleted.text
    api = federation.apis["site-b"].url
    assert httpx.get(f"{api}/collections/{COLLECTION}/items/{item['id']}").status_code == 404


def test_the_hub_harvests_both_members_through_their_public_https_urls(federation):
    from fedeploy_ingestion.harvest import Harvester
    from fedeploy_ingestion.metrics import Metrics
    from fedeploy_ingestion.settings import HarvestSettings

    sources = [{"name": n, "url": federation.public[n]} for n in ("site-a", "site-b")]
    # The harvester writes to its own hub's API in-cluster; it reads the members over https.
    settings = HarvestSettings(sources=sources, target_url=federation.apis["hub"].url)
    with federation.client() as http:
        report = Harvester(settings, Metrics(), http=http).run()
    assert report.missing == [], report.sites
    with federation.client() as http:
        found = http.post(
            f"{federation.public['hub']}/search", json={"collections": [COLLECTION], "limit": 50}
        ).json()["features"]
    assert sorted(f["id"] for f in found) == [
        "site-a.site-a-scene-1",
        "site-a.site-a-scene-2",
        "site-b.site-b-scene-1",
        "site-b.site-b-scene-2",
    ]
    canonical = {
        f["id"]: next(link["href"] for link in f["links"] if link["rel"] == "canonical")
        for f in found
    }
    assert canonical["site-a.site-a-scene-1"].startswith(federation.public["site-a"] + "/")
    # An untrusted certificate makes the harvest report the site, not crash.
    with httpx.Client(timeout=10) as untrusting:
        refused = Harvester(settings, Metrics(), http=untrusting).run()
    assert refused.missing == ["site-a", "site-b"]
