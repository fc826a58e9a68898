"""Public catalogs for real: two sites and a hub, each behind TLS nginx and stac-auth-proxy.

Peers, all on loopback: PostgreSQL with pgstac, stac-fastapi-pgstac per catalog, the catalog
chart's auth proxy (stac-auth-proxy 1.3.1 behind charts/catalog/files/token_guard.py, configured
with the environment the chart renders), nginx-light terminating TLS with certificates of a test
CA (one loopback address per site), and a small OIDC issuer behind the same nginx.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from fedeploy.charts import render_chart
from loopback import PeerUnavailable, PostgresServer, SeaweedS3, StacApiServer, stac_documents
from loopback.auth_proxy import AuthProxyServer
from loopback.nginx import NginxTls
from loopback.oidc import OidcIssuer
from loopback.processes import Daemon, free_port, wait_until
from loopback.routes import nginx_locations, published_routes
from loopback.tls import TestCA
from tests.conftest import ROOT, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AUDIENCE = "eofed-catalog"
WRITE = "stac:write"
SITES = {"site-a": "127.0.0.11", "site-b": "127.0.0.12", "hub": "127.0.0.13"}
# How each site is published: site-a (with the asset endpoint) through a Gateway API HTTPRoute,
# the others through an Ingress; nginx routes what the rendered route says, either way.
MODES = {"site-a": "gateway", "site-b": "ingress", "hub": "ingress"}
ISSUER_ADDRESS = "127.0.0.14"
COLLECTION = "loopback-scenes"
READ = "stac:read"


def asset_endpoint(
    federation_issuer: OidcIssuer, api_url: str, s3: SeaweedS3, ca_file: Path, workdir: Path
) -> tuple[Daemon, str]:
    """`fedeploy-ingest assets` for site-a, as its pod runs it (ASSETS_* settings)."""
    port = free_port()
    env = {
        **os.environ,
        "ASSETS_ISSUER": federation_issuer.url,
        "ASSETS_AUDIENCE": AUDIENCE,
        "ASSETS_READ_SCOPE": READ,
        "ASSETS_CATALOG_URL": api_url,
        "ASSETS_BUCKETS": json.dumps(["site-a-raw"]),
        "ASSETS_KEY_PREFIXES": json.dumps(["scenes/"]),  # this test's keys (default: ingestion's)
        "ASSETS_URL_LIFETIME_SECONDS": "120",
        "ASSETS_S3_ENDPOINT_URL": s3.endpoint.endpoint_url,
        "ASSETS_S3_REGION": s3.endpoint.region,
        "ASSETS_HTTP_HOST": "127.0.0.1",
        "ASSETS_HTTP_PORT": str(port),
        "AWS_ACCESS_KEY_ID": s3.endpoint.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.endpoint.secret_access_key,
        "SSL_CERT_FILE": str(ca_file),
    }
    argv = [sys.executable, "-c", "from fedeploy_ingestion.cli import main; main(['assets'])"]
    return Daemon("assets-site-a", argv, workdir, env=env), f"http://127.0.0.1:{port}"


def published(public_url: str, issuer: str, mode: str, assets: bool) -> list[dict[str, Any]]:
    """The catalog chart's manifests of a site published at `public_url` through an Ingress or
    (mode gateway) an HTTPRoute, with the asset endpoint or without."""
    route = {"mode": "gateway", "gateway": {"name": "public", "namespace": "gateway-system"}}
    return render_chart(
        ROOT / "charts/catalog",
        {
            "site": {"name": "loopback", "kind": "kubernetes"},
            "database": {"existingSecret": "db"},
            "exposure": {
                "enabled": True,
                "url": public_url,
                "controllerNamespace": "gateway-system" if mode == "gateway" else "ingress-nginx",
                "tls": {"certManagerIssuer": "test-ca"},
                **(route if mode == "gateway" else {}),
            },
            "authProxy": {"oidc": {"issuer": issuer, "audience": AUDIENCE, "writeScope": WRITE}},
            "assets": {"enabled": assets, "storage": {"buckets": ["site-a-raw"]}},
        },
        "catalog",
        "fedeploy",
    )


def proxy_env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    """The auth proxy container's environment, exactly as the catalog chart renders it."""
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
    return stac_documents.collection(
        COLLECTION,
        "Scenes of the loopback federation.",
        license="CC-BY-4.0",
        start="2026-01-01T00:00:00Z",
    )


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
        s3 = SeaweedS3(work / "s3").start()
        stoppers.append(s3.stop)
        s3.create_bucket("site-a-raw")
        apis, proxies, public, charts = {}, {}, {}, {}
        for name, address in SITES.items():
            database = name.replace("-", "_")
            apis[name] = StacApiServer(
                postgres.create_database(database), work / name, name=f"api-{name}"
            )
            port_site = nginx.add_site(name, address, {})
            public[name] = port_site.url
            charts[name] = published(port_site.url, issuer.url, MODES[name], name == "site-a")
            env = proxy_env(charts[name])
            env["UPSTREAM_URL"] = apis[name].url
            proxies[name] = AuthProxyServer(
                env, work / name, name=f"proxy-{name}", ca_file=ca.ca_file
            )
        assets, assets_url = asset_endpoint(
            issuer, apis["site-a"].url, s3, ca.ca_file, work / "site-a"
        )
        # nginx routes what each site's rendered Ingress or HTTPRoute routes: <url> to the
        # auth proxy, on site-a also <url>/assets to the asset endpoint.
        for name, manifests in charts.items():
            upstreams = {"catalog-auth-proxy": proxies[name].url, "catalog-assets": assets_url}
            nginx.sites[name].routes.update(nginx_locations(published_routes(manifests), upstreams))
        # Proxies and the asset endpoint start side by side with the rest; they wait for
        # their upstreams and the OIDC discovery document themselves.
        for proxy in proxies.values():
            proxy.launch()
            stoppers.append(proxy.stop)
        assets.start()
        stoppers.append(assets.stop)
        for api in apis.values():
            api.start()
            stoppers.append(api.stop)
        nginx.start()
        stoppers.append(nginx.stop)
        for proxy in proxies.values():
            proxy.wait()
        wait_until(
            lambda: (
                assets.ensure_running()
                or httpx.get(f"{assets_url}/healthz", timeout=1).status_code == 200
            ),
            30,
            "asset endpoint",
            assets.log_file,
        )
    except PeerUnavailable as missing:
        for stop in reversed(stoppers):
            stop()
        unavailable(str(missing))
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
    client = s3.endpoint.client()
    for number in (1, 2):
        client.put_object(
            Bucket="site-a-raw",
            Key=f"scenes/site-a-scene-{number}.tif",
            Body=f"scene {number} of site-a".encode() * 1000,
        )
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


@pytest.fixture(scope="module")
def harvest(federation):
    """The hub harvests both members through their public https URLs, verifying the CA."""
    from fedeploy_ingestion.harvest import Harvester
    from fedeploy_ingestion.metrics import Metrics
    from fedeploy_ingestion.settings import HarvestSettings

    sources = [{"name": n, "url": federation.public[n]} for n in ("site-a", "site-b")]
    # The harvester writes to its own hub's API in-cluster; it reads the members over https.
    settings = HarvestSettings(sources=sources, target_url=federation.apis["hub"].url)
    # Its search pages go through pystac-client (requests), which reads the CA bundle from the
    # environment; its other calls through the httpx client given here.
    with pytest.MonkeyPatch.context() as patch, federation.client() as http:
        patch.setenv("REQUESTS_CA_BUNDLE", str(federation.ca.ca_file))
        report = Harvester(settings, Metrics(), http=http).run()
    with federation.client() as http:
        found = http.post(
            f"{federation.public['hub']}/search", json={"collections": [COLLECTION], "limit": 50}
        ).json()["features"]
    return settings, report, {f["id"]: f for f in found}


def test_a_writers_valid_token_cannot_touch_the_hubs_harvest_status(federation, harvest):
    # Issue 27: here every site shares one audience and write scope, so this token passes the
    # proxy's own checks on the hub; the token guard still refuses writes to the status.
    hub = federation.public["hub"]
    status = "fedeploy-site-site-a"
    api = federation.apis["hub"].url
    before = httpx.get(f"{api}/collections/{status}").json()
    forged = {**before, "fedeploy:harvest": {"status": "ok", "forged": True}}
    with federation.client() as http:
        attempts = [
            http.put(f"{hub}/collections/{status}", json=forged, headers=federation.token()),
            http.delete(f"{hub}/collections/{status}", headers=federation.token()),
            http.delete(f"{hub}/collections/fedeploy%2Dsite-site-a", headers=federation.token()),
            http.post(
                f"{hub}/collections",
                json={**forged, "id": "fedeploy-site-site-c"},
                headers=federation.token(),
            ),
        ]
        # Anyone still reads it, as fedeploy verify does.
        read = http.get(f"{hub}/collections/{status}")
    assert [a.status_code for a in attempts] == [403, 403, 403, 403], [a.text for a in attempts]
    assert read.status_code == 200 and read.json()["fedeploy:harvest"] == before["fedeploy:harvest"]
    assert httpx.get(f"{api}/collections/{status}").json() == before
    assert httpx.get(f"{api}/collections/fedeploy-site-site-c").status_code == 404


def test_a_json_patch_cannot_rename_a_collection_onto_the_hubs_harvest_status(federation, harvest):
    # Review of issue 27, finding 1: stac-fastapi-pgstac's patch_collection applies an RFC 6902
    # patch and pgstac writes the row the result's id names, so replacing the id of a collection
    # the writer may edit rewrote the status collection. The guard refuses it, however sent.
    hub = federation.public["hub"]
    status = "fedeploy-site-site-a"
    api = federation.apis["hub"].url
    before = httpx.get(f"{api}/collections/{status}").json()
    edited = httpx.get(f"{api}/collections/{COLLECTION}").json()
    ops = [
        {"op": "replace", "path": "/id", "value": status},
        {"op": "add", "path": "/fedeploy:harvest", "value": {"status": "ok", "forged": True}},
    ]
    with federation.client() as http:
        attempts = [
            http.patch(
                f"{hub}/collections/{COLLECTION}",
                content=json.dumps(ops),
                headers={**federation.token(), "Content-Type": content_type},
            )
            for content_type in ("application/json-patch+json", "application/json")
        ]
    assert [a.status_code for a in attempts] == [403, 403], [a.text for a in attempts]
    assert "id or collection" in attempts[0].json()["detail"]
    assert httpx.get(f"{api}/collections/{status}").json() == before
    assert httpx.get(f"{api}/collections/{COLLECTION}").json() == edited


def test_the_hub_harvests_both_members_through_their_public_https_urls(federation, harvest):
    from fedeploy_ingestion.harvest import Harvester
    from fedeploy_ingestion.metrics import Metrics

    settings, report, found = harvest
    assert report.missing == [], report.sites
    assert sorted(found) == [
        "site-a.site-a-scene-1",
        "site-a.site-a-scene-2",
        "site-b.site-b-scene-1",
        "site-b.site-b-scene-2",
    ]
    canonical = next(
        link["href"]
        for link in found["site-a.site-a-scene-1"]["links"]
        if link["rel"] == "canonical"
    )
    assert canonical.startswith(federation.public["site-a"] + "/")
    # An untrusted certificate makes the harvest report the site, not crash.
    with httpx.Client(timeout=10) as untrusting:
        refused = Harvester(settings, Metrics(), http=untrusting).run()
    assert refused.missing == ["site-a", "site-b"]


def test_a_hub_items_https_asset_href_redirects_a_token_holder_to_the_bytes(federation, harvest):
    _, _, found = harvest
    asset = found["site-a.site-a-scene-1"]["assets"]["data"]
    assert asset["href"] == "s3://site-a-raw/scenes/site-a-scene-1.tif"  # kept
    href = asset["alternate"]["https"]["href"]
    assert href == f"{federation.public['site-a']}/assets/{COLLECTION}/site-a-scene-1/data"
    with federation.client() as http:
        answer = http.get(href, headers=federation.token(scope=READ))
        assert answer.status_code == 307, answer.text
        assert answer.headers["cache-control"] == "no-store"
        location = answer.headers["location"]
        # A presigned URL on the site's S3 (never the bytes through the endpoint).
        assert location.startswith("http://127.0.0.1:") and "X-Amz-Signature=" in location
        assert "X-Amz-Expires=120" in location
        assert len(answer.content) < 200
        data = httpx.get(location, timeout=30)
        assert data.status_code == 200
        assert data.content == b"scene 1 of site-a" * 1000


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ("expired", 401),
        ("forged", 401),
        ("no expiry", 401),
        ("foreign issuer", 401),
        ("write scope only", 403),
    ],
)
def test_the_asset_endpoint_refuses_callers_without_a_valid_read_token(
    federation, harvest, headers, status
):
    tokens = {
        "expired": federation.token(scope=READ, lifetime=-60),
        "forged": federation.token(scope=READ, signing_key=federation.issuer.foreign_key()),
        "no expiry": federation.token(scope=READ, lifetime=None),
        "foreign issuer": federation.token(scope=READ, issuer="https://evil.example.org"),
        "write scope only": federation.token(scope=WRITE),
    }
    href = harvest[2]["site-a.site-a-scene-1"]["assets"]["data"]["alternate"]["https"]["href"]
    with federation.client() as http:
        answer = http.get(
            href, headers=tokens.get(headers, headers) if isinstance(headers, str) else headers
        )
    assert answer.status_code == status, answer.text
    assert "location" not in answer.headers


@pytest.mark.parametrize(
    "path",
    [
        f"{COLLECTION}/site-a-scene-1/thumbnail",  # no such asset
        f"{COLLECTION}/site-a-scene-9/data",  # no such item
        "another-collection/site-a-scene-1/data",  # not where the item is
    ],
)
def test_an_asset_that_is_not_registered_is_not_found(federation, path):
    with federation.client() as http:
        answer = http.get(
            f"{federation.public['site-a']}/assets/{path}", headers=federation.token(scope=READ)
        )
    assert answer.status_code == 404, answer.text


def test_the_public_endpoint_passes_stac_api_validator_conformance(federation, monkeypatch):
    """stac-api-validator's core, item-search, collections and features checks against site-a's
    public https URL. It validates documents against JSON schemas it fetches from the internet;
    offline those fetches fail, and they are counted apart rather than passed off as results."""
    import dataclasses

    validations = pytest.importorskip("stac_api_validator.validations")
    ca_file = str(federation.ca.ca_file)

    class TrustingTestCA(validations.Session):  # it sends prepared requests: env is not read
        def __init__(self) -> None:
            super().__init__()
            self.verify = ca_file

    monkeypatch.setattr(validations, "Session", TrustingTestCA)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)  # stac-check's own requests
    no_query = validations.QueryConfig(
        **{f.name: None for f in dataclasses.fields(validations.QueryConfig)}
    )
    warnings, errors = validations.validate_api(
        root_url=federation.public["site-a"],
        ccs_to_validate=["core", "item-search", "collections", "features"],
        collection=COLLECTION,
        geometry='{"type": "Polygon", "coordinates": [[[10, 45], [14, 45], [14, 47], [10, 47], [10, 45]]]}',
        auth_bearer_token=None,
        auth_query_parameter=None,
        fields_nested_property=None,
        validate_pagination=False,
        query_config=no_query,
        transaction_collection=None,
        headers=None,
        open_assets_urls=False,
    )
    offline = [e for e in errors.errors if _schema_fetch_failure(e[1])]
    found = [e for e in errors.errors if e not in offline]
    print(
        f"stac-api-validator: {len(found)} error(s), {len(offline)} schema fetch(es) failed offline, {len(warnings.errors)} warning(s)"
    )
    assert found == [], found


def _schema_fetch_failure(message: str) -> bool:
    """A JSON schema that could not be fetched because this machine has no internet."""
    hosts = ("schemas.stacspec.org", "stac-extensions.github.io", "api.stacspec.org")
    unreachable = ("Failed to resolve", "NameResolutionError", "Name or service not known")
    return any(h in message for h in hosts) and any(u in message for u in unreachable)
