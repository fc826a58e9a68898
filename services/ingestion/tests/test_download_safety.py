"""Where downloads may go: addresses, hosts, schemes, redirects and credentials (download_safety).

Pure decisions are tested on their own; the connection-time guard and the redirect handling
against real sockets (loopback servers) and httpx's MockTransport."""

from __future__ import annotations

import gzip
import ipaddress
from collections.abc import Iterator

import httpx
import pytest
from fedeploy_ingestion.download_safety import (
    AddressGuard,
    DownloadPolicy,
    UnsafeBody,
    UnsafeDownload,
    address_problem,
    bounded_body,
    guarded_client,
    host_matches,
)
from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.settings import Source
from fedeploy_ingestion.upstream import Credentials, HttpAsset, search

from loopback.hostile_upstream import HostileUpstream

PUBLIC = "93.184.215.14"
DATA = b"sentinel bytes" * 100


def source(**changes: object) -> Source:
    values: dict[str, object] = {
        "name": "cdse",
        "url": "https://stac.example/v1",
        "collections": ["c"],
        "assets": ["B04"],
        "downloadHosts": ["download.example", "mirror.example"],
    }
    values.update(changes)
    return Source.model_validate(values)


def resolver(table: dict[str, list[str]]):
    """A resolver answering from `table`; every other name is public."""
    return lambda host, port: table.get(host, [PUBLIC])


def policy(table: dict[str, list[str]] | None = None, **changes: object) -> DownloadPolicy:
    spec = source(**changes)
    guard = AddressGuard.build(private_hosts=spec.private_hosts, resolver=resolver(table or {}))
    return DownloadPolicy.for_source(spec, guard)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link-local"),
        ("169.254.170.2", "link-local"),  # ECS task metadata
        ("fe80::1", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),  # IPv4-mapped
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.20.0.10", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # shared address space (carrier NAT, some pod networks)
        ("fd00:ec2::254", "private"),  # the IPv6 metadata address of EC2
        ("0.0.0.0", "unicast"),
        ("224.0.0.1", "unicast"),
        ("240.0.0.1", "private"),  # reserved
    ],
)
def test_forbidden_addresses_are_refused_with_their_reason(address: str, reason: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and reason in problem


@pytest.mark.parametrize("address", [PUBLIC, "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


def test_a_private_host_admits_loopback_but_never_link_local_or_the_cluster() -> None:
    cluster = [ipaddress.ip_network("172.20.0.0/16"), ipaddress.ip_network("34.118.0.0/20")]
    loopback = ipaddress.ip_address("127.0.0.1")
    assert address_problem(loopback, private_allowed=True) is None
    assert address_problem(ipaddress.ip_address("169.254.169.254"), private_allowed=True)
    for inside in ("172.20.3.4", "34.118.1.1"):  # a cluster range may even be public
        problem = address_problem(
            ipaddress.ip_address(inside), private_allowed=True, blocked=cluster
        )
        assert problem is not None and "cluster" in problem


def test_host_patterns() -> None:
    assert host_matches("download.example", "download.example")
    assert host_matches("a.b.example", "*.example")
    assert not host_matches("example", "*.example")
    assert not host_matches("evilexample", "*.example")
    assert not host_matches("download.example.evil", "download.example")


@pytest.mark.parametrize(
    ("href", "reason"),
    [
        (
            "https://169.254.169.254/latest/meta-data/iam/",
            "not one of source cdse's download hosts",
        ),
        ("https://evil.example/B04.jp2", "not one of source cdse's download hosts"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://download.example:70/_x", "scheme 'gopher'"),
        ("ftp://download.example/B04", "scheme 'ftp'"),
        ("http://download.example/B04", "scheme 'http'"),  # no downgrade from an https source
        ("https://[::1]/B04", "not one of source cdse's download hosts"),
        ("https://user:secret@download.example/B04", "user information"),
        ("https:///B04", "names no host"),
    ],
)
def test_hrefs_outside_the_source_are_refused(href: str, reason: str) -> None:
    with pytest.raises(UnsafeDownload, match=reason) as refused:
        policy().check(href)
    assert "secret" not in str(refused.value)


def test_a_declared_host_is_still_refused_when_its_address_is_forbidden() -> None:
    table = {"download.example": ["127.0.0.1"], "mirror.example": [PUBLIC, "10.1.2.3"]}
    with pytest.raises(UnsafeDownload, match=r"download.example resolves to 127.0.0.1.*loopback"):
        policy(table).check("https://download.example/B04.jp2")
    # One forbidden address among several is enough.
    with pytest.raises(UnsafeDownload, match="10.1.2.3"):
        policy(table).check("https://mirror.example/B04.jp2")
    # A source that declares the metadata address as a download host does not get it either.
    declared = policy(downloadHosts=["169.254.169.254", "[::ffff:a9fe:a9fe]"])
    for href in ("https://169.254.169.254/latest/", "https://[::ffff:a9fe:a9fe]/latest/"):
        with pytest.raises(UnsafeDownload, match="link-local"):
            declared.check(href)


def test_private_hosts_admit_their_own_private_addresses_only() -> None:
    table = {"download.example": ["10.0.0.5"], "mirror.example": ["10.0.0.6"]}
    lenient = policy(table, privateHosts=["download.example"])
    assert lenient.check("https://download.example/B04").host == "download.example"
    with pytest.raises(UnsafeDownload, match="private"):
        lenient.check("https://mirror.example/B04")


def test_copernicus_declares_its_download_hosts() -> None:
    spec = Source.model_validate({"name": "cdse", "collections": ["c"], "assets": ["B04"]})
    copernicus = DownloadPolicy.for_source(spec, AddressGuard.build(resolver=resolver({})))
    for host in ("stac.dataspace.copernicus.eu", "zipper.dataspace.copernicus.eu"):
        assert copernicus.check(f"https://{host}/odata/v1/Products(1)/$value")
    with pytest.raises(UnsafeDownload):
        copernicus.check("https://dataspace.copernicus.eu.evil.example/x")


class Hosts:
    """Hosts behind httpx's MockTransport: download.example redirects, mirror.example needs
    the bearer token, evil.example records whatever reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.redirect_to = "https://mirror.example/B04.jp2"

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.host, request.headers.get("authorization")))
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 600})
        if request.url.host == "download.example":
            return httpx.Response(302, headers={"location": self.redirect_to})
        if request.url.host == "mirror.example":
            if request.headers.get("authorization") != "Bearer tok":
                return httpx.Response(401)
            return httpx.Response(200, content=DATA)
        return httpx.Response(200, content=b"stolen")

    def credentials(self) -> tuple[httpx.Client, Credentials]:
        http = httpx.Client(transport=httpx.MockTransport(self.handle))
        spec = source(tokenUrl="https://download.example/token")
        return http, Credentials(spec, "bob", "pw", http, AddressGuard.build(resolver=resolver({})))


def test_a_redirect_between_the_sources_hosts_keeps_the_token() -> None:
    hosts = Hosts()
    http, credentials = hosts.credentials()
    chunks, start, total = HttpAsset("https://download.example/B04.jp2", http, credentials).open(0)
    assert b"".join(chunks) == DATA and (start, total) == (0, len(DATA))
    assert hosts.seen[-2:] == [("download.example", "Bearer tok"), ("mirror.example", "Bearer tok")]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("https://evil.example/B04.jp2", "not one of source cdse's download hosts"),
        ("https://169.254.169.254/latest/meta-data/", "not one of source cdse's download hosts"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://mirror.example/x", "scheme 'gopher'"),
        ("http://[::ffff:7f00:1]:8080/", "scheme 'http'"),
        ("https://[::1]/", "not one of source cdse's download hosts"),
    ],
)
def test_a_redirect_elsewhere_is_refused_before_it_is_followed(target: str, reason: str) -> None:
    hosts = Hosts()
    hosts.redirect_to = target
    http, credentials = hosts.credentials()
    with pytest.raises(UnsafeDownload, match=reason):
        HttpAsset("https://download.example/B04.jp2", http, credentials).open(0)
    assert {host for host, _ in hosts.seen} == {"download.example"}


def test_a_redirect_loop_ends() -> None:
    hosts = Hosts()
    hosts.redirect_to = "https://download.example/again"
    http, credentials = hosts.credentials()
    with pytest.raises(SourceError, match="more than 5 redirects"):
        HttpAsset("https://download.example/B04.jp2", http, credentials).open(0)


@pytest.fixture
def loopback() -> Iterator[HostileUpstream]:
    server = HostileUpstream().start()
    server.file("/B04.jp2", DATA)
    yield server
    server.stop()


def test_the_guarded_client_refuses_to_connect_to_loopback(loopback: HostileUpstream) -> None:
    with (
        guarded_client(AddressGuard.build()) as http,
        pytest.raises(UnsafeDownload, match="loopback"),
    ):
        http.get(loopback.url + "/B04.jp2")
    assert loopback.seen() == []


def test_a_name_that_resolves_to_loopback_at_connection_time_is_refused(
    loopback: HostileUpstream,
) -> None:
    # DNS rebinding: public when the href is checked, 127.0.0.1 when the connection is made.
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    guard = AddressGuard.build(resolver=lambda host, port: next(answers))
    spec = source(url="http://stac.example/v1", downloadHosts=["rebind.example"])
    http = guarded_client(guard)
    asset = HttpAsset(
        f"http://rebind.example:{loopback.port}/B04.jp2",
        http,
        Credentials(spec, "bob", "pw", http, guard),
    )
    with pytest.raises(UnsafeDownload, match="rebind.example resolves to 127.0.0.1"):
        asset.open(0)
    assert loopback.seen() == []


def test_the_guarded_client_connects_to_the_address_it_checked(loopback: HostileUpstream) -> None:
    guard = AddressGuard.build(
        private_hosts=["upstream.test"], resolver=resolver({"upstream.test": ["127.0.0.1"]})
    )
    with guarded_client(guard) as http:
        answer = http.get(f"http://upstream.test:{loopback.port}/B04.jp2")
    assert answer.content == DATA
    assert [s.host for s in loopback.seen()] == [f"upstream.test:{loopback.port}"]


def test_a_search_page_pointing_elsewhere_gets_no_credentials() -> None:
    upstream, foreign = HostileUpstream().start(), HostileUpstream("127.0.0.2").start()
    try:
        upstream.items = [{"type": "Feature", "id": "a", "collection": "c", "assets": {}}]
        upstream.next_href = f"{foreign.url}/search?page=2"
        spec = source(url=upstream.url, privateHosts=["127.0.0.1"], downloadHosts=[])
        headers = {"Authorization": "Basic Ym9iOnB3"}
        with pytest.raises(SourceError, match="host '127.0.0.2' is not one of source cdse's"):
            list(search(spec, None, headers))
        assert foreign.seen() == []
        assert [r.path for r in upstream.seen()][-1] == "/search"
    finally:
        upstream.stop()
        foreign.stop()


def test_tls_still_verifies_the_name_when_connecting_to_the_checked_address(tmp_path) -> None:
    from fedeploy_ingestion.download_safety import GuardedTransport

    from loopback.tls import TestCA

    ca = TestCA(tmp_path)
    server = HostileUpstream(tls=ca.issue("download", ["download.test"])).start()
    try:
        server.file("/B04.jp2", DATA)
        table = {"download.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
        guard = AddressGuard.build(
            private_hosts=["download.test", "other.test"], resolver=resolver(table)
        )
        with httpx.Client(transport=GuardedTransport(guard, verify=ca.ssl_context())) as http:
            answer = http.get(f"https://download.test:{server.port}/B04.jp2")
            assert answer.content == DATA
            # The same address under a name the certificate does not carry: refused by TLS.
            with pytest.raises(httpx.ConnectError, match="certificate|hostname"):
                http.get(f"https://other.test:{server.port}/B04.jp2")
    finally:
        server.stop()


@pytest.mark.parametrize(
    "href",
    [
        # httpx reads the host `evil.com\.mirror.example`, a sub-domain of a `*.` pattern;
        # urllib3 (pystac-client's searches) connects to evil.com
        "https://evil.com\\.mirror.example/B04.jp2",
        "https://evil.com;.mirror.example/B04.jp2",
        "https://evil.com%2f.mirror.example/B04.jp2",
    ],
)
def test_a_host_that_is_no_dns_name_is_refused_whatever_it_ends_with(href: str) -> None:
    wildcard = policy(downloadHosts=["*.mirror.example"])  # the resolver answers any name
    with pytest.raises(UnsafeDownload, match="is not a DNS name"):
        wildcard.check(href)
    assert wildcard.check("https://dl.mirror.example/B04.jp2").host == "dl.mirror.example"


def test_a_gzip_body_of_several_members_is_decoded_whole_and_counted_whole() -> None:
    members = gzip.compress(b"first ") + gzip.compress(b"second")

    def answer() -> httpx.Response:
        stream = httpx.ByteStream(members)
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=stream)

    assert b"".join(bounded_body(answer(), 100, "member test")) == b"first second"
    with pytest.raises(UnsafeBody, match="more than 8 bytes once decoded"):
        b"".join(bounded_body(answer(), 8, "member test"))
