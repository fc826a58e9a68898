"""The hub's STAC Browser in a real browser: headless Chromium (Debian's) driven by playwright-core.

The loopback federation of test_public_catalogs (TLS nginx, OIDC issuer, stac-auth-proxy, two
sites and a hub, the hub harvested) plus the hub's browser on its own host, served as its pod
serves it (loopback.browser: nginx with the site configuration and config.js the catalog chart
renders, security headers included). tests/browser/drive.cjs walks it: the front page, the collection with an item from
each member, each item (its canonical link home), the login at the issuer, the asset's https
alternate followed through the 307 to the presigned file, and a write refused without the
scope. Screenshots of each step go to build/browser/screenshots/ (the path is printed).

Needs chromium (Debian), node with tests/browser's playwright-core (npm ci) and the browser
build (make browser); without them the test skips, or fails under FEDEPLOY_REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from fedeploy.charts import render_chart
from loopback import PeerUnavailable
from loopback.browser import BrowserServer
from loopback.nginx import NginxTls
from loopback.routes import nginx_locations, published_routes
from tests.conftest import ROOT, unavailable
from tests.integration.test_public_catalogs import (  # noqa: F401 - the fixtures, shared
    AUDIENCE,
    COLLECTION,
    READ,
    federation,
    harvest,
    scene,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = ROOT / "tests/browser/drive.cjs"
PLAYWRIGHT = ROOT / "tests/browser/node_modules/playwright-core/package.json"
DIST = ROOT / "build/browser/dist"
SCREENSHOTS = ROOT / "build/browser/screenshots"
BROWSER_ADDRESS = "127.0.0.15"
CLIENT_ID = "stac-browser"


@pytest.fixture(scope="module")
def browser_tools() -> None:
    """Chromium, node, playwright-core and the browser build, checked before the federation
    starts: a skip, or a failure naming each missing one under FEDEPLOY_REQUIRE_INTEGRATION=1."""
    missing = [
        f"{what} ({how})"
        for what, present, how in (
            ("chromium", CHROMIUM.exists(), "apt-get install chromium; make peers"),
            ("node", shutil.which("node") is not None, "apt-get install nodejs"),
            ("playwright-core", PLAYWRIGHT.exists(), "npm ci --prefix tests/browser"),
            ("the STAC Browser build", (DIST / "index.html").exists(), "make browser"),
        )
        if not present
    ]
    if missing:
        unavailable("the browser test needs " + ", ".join(missing))


def _spki(address: str, port: int) -> str:
    """The SHA-256 of the certificate's public key as Chromium's SPKI list takes it (base64)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = ssl.get_server_certificate((address, port))
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chart_browser(federation: Any, browser_url: str) -> tuple[str, str, list[dict]]:  # noqa: F811
    """The hub browser's config.js, nginx site and Ingress, as the catalog chart renders them
    for the loopback hub (its URL, issuer, members and the browser's own host)."""
    members = [{"name": m, "url": federation.public[m]} for m in ("site-a", "site-b")]
    values = {
        "site": {"name": "hub", "kind": "hub"},
        "database": {"existingSecret": "db"},
        "federation": {"enabled": True, "sites": members},
        "exposure": {
            "enabled": True,
            "url": federation.public["hub"],
            "controllerNamespace": "ingress-nginx",
            "tls": {"certManagerIssuer": "test-ca"},
        },
        "authProxy": {"oidc": {"issuer": federation.issuer.url, "audience": AUDIENCE}},
        "browser": {
            "enabled": True,
            "url": f"{browser_url}/",
            "title": "Loopback federation",
            "oidcClientId": CLIENT_ID,
            "scopes": [READ],
        },
    }
    manifests = render_chart(ROOT / "charts/catalog", values, "catalog", "fedeploy")
    (config,) = [
        m
        for m in manifests
        if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "catalog-browser"
    ]
    ingress = [
        m for m in manifests if m["kind"] == "Ingress" and "browser" in m["metadata"]["name"]
    ]
    return config["data"]["config.js"], config["data"]["default.conf"], ingress


@pytest.fixture(scope="module")
def hub_browser(browser_tools, federation, harvest, tmp_path_factory):  # noqa: F811
    """The hub's browser on https://127.0.0.15:<port>/, in front of the hub's catalog."""
    work = tmp_path_factory.mktemp("hub-browser")
    stoppers: list[Any] = []
    try:
        front = NginxTls(work / "nginx", federation.ca)
        site = front.add_site("hub-browser", BROWSER_ADDRESS, {})
        config, site_conf, ingress = chart_browser(federation, site.url)
        server = BrowserServer(work / "browser", DIST, config, site_conf).start()
        stoppers.append(server.stop)
        # The host's routes as the chart's Ingress for it publishes them.
        routes = published_routes(ingress)
        site.routes.update(nginx_locations(routes, {"catalog-browser": server.url}))
        front.start()
        stoppers.append(front.stop)
    except PeerUnavailable as missing:
        for stop in reversed(stoppers):
            stop()
        unavailable(str(missing))
    federation.issuer.login_audience = AUDIENCE
    federation.issuer.login_scope = READ
    yield site
    for stop in reversed(stoppers):
        stop()


def test_the_hub_browser_finds_opens_and_fetches_from_each_member(
    browser_tools,
    federation,  # noqa: F811
    harvest,  # noqa: F811
    hub_browser,
    tmp_path,
):
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    sites = [hub_browser.url, federation.issuer.url, *federation.public.values()]
    addresses = [u.split("://", 1)[1].rsplit(":", 1) for u in sites]
    hub = federation.public["hub"]
    plan = {
        "browserUrl": hub_browser.url,
        "catalogUrl": hub,
        "issuerUrl": federation.issuer.url,
        "collection": COLLECTION,
        "items": {"site-a": "site-a.site-a-scene-1", "site-b": "site-b.site-b-scene-2"},
        "homes": {m: federation.public[m] for m in ("site-a", "site-b")},
        "asset": {
            "item": "site-a.site-a-scene-1",
            "itemId": "site-a-scene-1",
            "member": "site-a",
            "key": "data",
            "alternate": "https",
        },
        "write": {
            "url": f"{hub}/collections/{COLLECTION}/items",
            "body": scene("hub", 9),
        },
        "spki": sorted({_spki(address, int(port)) for address, port in addresses}),
        "screenshots": str(SCREENSHOTS),
        "chromium": str(CHROMIUM),
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    done = subprocess.run(
        ["node", str(DRIVER), str(tmp_path / "plan.json")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=DRIVER.parent,
    )
    print(f"browser test screenshots: {SCREENSHOTS}")
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(f"the browser driver exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    assert "error" not in result, f"{result['error']}\nconsole: {result['console']}"
    assert [s["name"] for s in result["steps"]] == [
        "hub-front-page",
        "search-across-members",
        "collection-items-of-both-members",
        "item-from-site-a",
        "item-from-site-b",
        "issuer-sign-in",
        "signed-in-item",
        "asset-link",
        "write-refused",
    ]
    # Each item shows its home: links to the member that published it.
    for member in ("site-a", "site-b"):
        assert result["items"][member]["hrefs"], member
    assert federation.issuer.logins == [CLIENT_ID]
    # The asset link the signed-in page shows, followed with the token the login gave: the
    # 307 to a presigned URL on site-a's store, then the file. (The page's own Download is a
    # fetch across origins, which the asset endpoint answers without CORS headers: reported.)
    asset = result["asset"]
    print(f"the page's own Download: {result['pageDownload']}")
    print(f"errors the page logged (once each): {result['console']}")
    assert asset["href"] == f"{federation.public['site-a']}/assets/{COLLECTION}/site-a-scene-1/data"
    with federation.client() as http:
        answer = http.get(
            asset["href"], headers={"Authorization": f"Bearer {asset['accessToken']}"}
        )
        assert answer.status_code == 307, answer.text
        assert "X-Amz-Signature=" in answer.headers["location"]
    data = httpx.get(answer.headers["location"], timeout=30)
    assert data.status_code == 200
    assert data.content == b"scene 1 of site-a" * 1000
    # The chart's Content-Security-Policy let the app run: it blocked only what lies outside
    # the federation (map tiles, JSON schemas fetched for validation).
    outside = ("tile.openstreetmap.org", "schemas.stacspec.org", "geojson.org")
    blocked = [e for e in result["console"] if "Content Security Policy" in e]
    assert [e for e in blocked if not any(host in e for host in outside)] == []
    # The signed-in user holds the read scope only: the hub's proxy refuses the write.
    assert result["write"]["status"] in (401, 403), result["write"]
