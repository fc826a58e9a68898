"""A hostile STAC upstream against a real Sentinel run (SeaweedFS, the site's pgstac catalog).

Its items point at the metadata service, other hosts, other schemes, IPv6 literals and a name
that resolves to 127.0.0.1, directly or through redirects. Each such item fails alone with its
reason; nothing reaches a forbidden address; the bearer token is seen by the source's own hosts
only. A redirect between the source's hosts that needs the token succeeds (httpx alone drops
the token there)."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import ObjectStore, s3_client
from fedeploy_ingestion.sentinel import SentinelRun
from fedeploy_ingestion.settings import IngestSettings

from loopback import SeaweedS3
from loopback.hostile_upstream import HostileUpstream, item

pytestmark = pytest.mark.integration

COLLECTION = "sentinel-2-l2a"
DATA = b"jp2" * 4000
PASSWORD = "hostile-upstream-pa55word"


@pytest.fixture
def servers() -> Iterator[dict[str, HostileUpstream]]:
    """The source (127.0.0.1), a second host of it (reached as `localhost`) and a foreign host
    (127.0.0.2) that must never be reached."""
    started = {
        "upstream": HostileUpstream("127.0.0.1").start(),
        "mirror": HostileUpstream("127.0.0.1").start(),
        "foreign": HostileUpstream("127.0.0.2").start(),
    }
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address the downloads' sockets connect to (httpcore's backend uses this call)."""
    seen: list[tuple[str, int]] = []
    original = socket.create_connection

    def recording(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        seen.append((str(address[0]), int(address[1])))
        return original(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", recording)
    return seen


def run(
    s3: SeaweedS3,
    bucket: str,
    catalog_url: str,
    upstream: HostileUpstream,
    monkeypatch: pytest.MonkeyPatch,
    private_hosts: list[str],
):
    endpoint = s3.endpoint
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", endpoint.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", endpoint.secret_access_key)
    config = IngestSettings(
        site="site-a",
        bucket=bucket,
        s3_endpoint_url=endpoint.endpoint_url,
        s3_region=endpoint.region,
        source_username="someone",
        source_password=PASSWORD,
        blocked_networks=["10.100.0.0/16", "172.20.0.0/16"],
        sources=[
            {
                "name": "upstream",
                "url": upstream.url,
                "tokenUrl": upstream.url + "/token",
                "collections": [COLLECTION],
                "assets": ["B04"],
                "downloadHosts": ["localhost"],
                "privateHosts": private_hosts,
            }
        ],
    )
    store = ObjectStore(s3_client(config.s3_endpoint_url, config.s3_region, "auto"), bucket)
    return SentinelRun(config, store, CatalogClient(catalog_url), Metrics()).run(), store


def test_hostile_hrefs_fail_their_items_and_reach_nothing(
    servers: dict[str, HostileUpstream],
    connections: list[tuple[str, int]],
    catalogs,
    s3: SeaweedS3,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream, mirror, foreign = servers["upstream"], servers["mirror"], servers["foreign"]
    foreign.file("/steal", b"x")
    mirror.file("/B04.jp2", DATA)
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    hostile = {
        "metadata": metadata,
        "metadata-v6": "http://[fd00:ec2::254]/latest/meta-data/",
        "mapped-v6": f"http://[::ffff:127.0.0.1]:{mirror.port}/B04.jp2",
        "loopback-v6": f"http://[::1]:{mirror.port}/B04.jp2",
        "file": "file:///etc/passwd",
        "gopher": f"gopher://127.0.0.1:{foreign.port}/_GET%20/steal",
        # `localhost` is one of the source's hosts, but resolves to 127.0.0.1.
        "resolves-to-loopback": f"http://localhost:{mirror.port}/B04.jp2",
        "redirect-foreign": upstream.redirect("/r1", f"{foreign.url}/steal"),
        "redirect-metadata": upstream.redirect("/r2", metadata),
        "redirect-file": upstream.redirect("/r3", "file:///etc/passwd"),
        "redirect-loopback-name": upstream.redirect("/r4", f"http://localhost:{mirror.port}/x"),
    }
    upstream.items = [item(name, {"B04": href}) for name, href in hostile.items()]
    s3_only = item("s3-with-metadata-alternate", {"B04": "s3://eodata/B04.jp2"})
    s3_only["assets"]["B04"]["alternate"] = {"https": {"href": metadata}}
    upstream.items.append(s3_only)
    upstream.items.append(item("../../admin", {"B04": upstream.file("/ok.jp2", DATA)}))
    site = catalogs.start("site-a")

    report, store = run(s3, bucket, site.url, upstream, monkeypatch, ["127.0.0.1"])

    reasons = {key.split("/", 1)[1]: text for key, text in report.failed.items()}
    expected = {
        "metadata": "not one of source upstream's download hosts",
        "metadata-v6": "not one of source upstream's download hosts",
        "mapped-v6": "not one of source upstream's download hosts",
        "loopback-v6": "not one of source upstream's download hosts",
        "file": "not HTTP(S)",
        "gopher": "not HTTP(S)",
        "resolves-to-loopback": "localhost resolves to",
        "redirect-foreign": "host '127.0.0.2' is not one of source upstream's download hosts",
        "redirect-metadata": "host '169.254.169.254' is not one of",
        "redirect-file": "scheme 'file'",
        "redirect-loopback-name": "localhost resolves to",
        "s3-with-metadata-alternate": "not one of source upstream's download hosts",
    }
    assert set(reasons) == {*expected, "../../admin"}, report
    for name, reason in expected.items():
        assert reason in reasons[name], (name, reasons[name])
    assert "upstream collection id" in reasons["../../admin"] or "item id" in reasons["../../admin"]
    assert report.registered == 0 and report.bytes_copied == 0
    assert store.client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    # Nothing reached the foreign host or the forbidden addresses; the mirror on 127.0.0.1 was
    # never reached through the names and literals that resolve there.
    assert foreign.seen() == [] and mirror.seen() == []
    assert all(not host.startswith(("169.254.", "fd00:", "::")) for host, _ in connections)
    assert {port for _, port in connections} <= {upstream.port, *site_ports(site.url)}
    # The token went to the source's own host only, and the password nowhere but its token URL.
    tokened = [r for r in upstream.seen() if r.authorization]
    assert tokened and all(r.authorization == f"Bearer {upstream.token}" for r in tokened)
    assert PASSWORD not in caplog.text and PASSWORD not in str(report)


def site_ports(url: str) -> set[int]:
    return {int(url.rsplit(":", 1)[1].split("/", 1)[0])}


def test_a_redirect_between_the_sources_hosts_keeps_the_token(
    servers: dict[str, HostileUpstream],
    catalogs,
    s3: SeaweedS3,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upstream, mirror, foreign = servers["upstream"], servers["mirror"], servers["foreign"]
    mirror.token = upstream.token
    mirror.file("/S2/B04.jp2", DATA, needs_token=True)
    href = upstream.redirect("/download/B04", f"http://localhost:{mirror.port}/S2/B04.jp2")
    # An id with a space, unicode and an encoded slash: one path segment, read back exactly.
    odd = "S2B ü%2F20240601"
    upstream.items = [item(odd, {"B04": href})]
    site = catalogs.start("site-a")

    report, store = run(s3, bucket, site.url, upstream, monkeypatch, ["127.0.0.1", "localhost"])

    assert report.failed == {} and report.registered == 1, report
    assert [r.authorization for r in mirror.seen("/S2/B04.jp2")] == [f"Bearer {upstream.token}"]
    assert foreign.seen() == []
    stored = CatalogClient(site.url).get_item(COLLECTION, odd)
    assert stored is not None and stored["id"] == odd
    key = stored["assets"]["B04"]["href"].split(f"s3://{bucket}/", 1)[1]
    assert hashlib.sha256(store.get(key)).digest() == hashlib.sha256(DATA).digest()
