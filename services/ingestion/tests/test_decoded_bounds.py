"""Downloads of untrusted bytes are bounded after decoding (Content-Encoding bombs), on a real
loopback HTTP server: the WIS2 download, the hub's catalog client, the Sentinel copy."""

from __future__ import annotations

import contextlib
import gzip
import tracemalloc
from collections.abc import Iterator

import pytest
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.download_safety import AddressGuard, DownloadPolicy, guarded_client
from fedeploy_ingestion.errors import CatalogError, SourceError
from fedeploy_ingestion.observation import InvalidObservation
from fedeploy_ingestion.settings import Source
from fedeploy_ingestion.upstream import Credentials, HttpAsset
from fedeploy_ingestion.wis2 import download

from services.ingestion.tests.encoded_host import EncodedHost, MiB, gzip_of_zeros, stacked_gzip_bomb

LIMIT = 16 * MiB  # INGEST_WIS2_MAX_DOWNLOAD_BYTES' default


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {"stacked": stacked_gzip_bomb(), "single": gzip_of_zeros(600 * MiB)}


@pytest.fixture
def host(bombs: dict[str, bytes]) -> Iterator[EncodedHost]:
    served = EncodedHost()
    served.routes = {
        "/stacked.bufr": (bombs["stacked"], {"Content-Encoding": "gzip, gzip"}),
        "/twice.bufr": (bombs["stacked"], {"Content-Encoding": "gzip, gzip"}),
        "/single.bufr": (bombs["single"], {"Content-Encoding": "gzip"}),
        "/br.bufr": (b"x" * 100, {"Content-Encoding": "br"}),
        "/small.bufr": (gzip.compress(b"BUFR small"), {"Content-Encoding": "gzip"}),
        "/plain.bufr": (b"BUFR plain", {}),
    }
    yield served
    served.close()


def wis2_get(host: EncodedHost, path: str) -> bytes:
    guard = AddressGuard.build(private_hosts=["localhost"])
    policy = DownloadPolicy("wis2", ("localhost",), frozenset({"http"}), guard)
    with guarded_client(guard, timeout=10) as http:
        return download(host.url(path), policy, http, LIMIT)


def peak_mib(function, *args) -> float:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    with contextlib.suppress(InvalidObservation, SourceError, CatalogError):
        function(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / MiB


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/stacked.bufr", "Content-Encoding gzip, gzip"),
        ("/br.bufr", "Content-Encoding br"),
        ("/single.bufr", f"more than {LIMIT} bytes once decoded"),
    ],
    ids=["gzip-gzip-1143-bytes-to-600MiB", "unknown-encoding", "gzip-600KiB-to-600MiB"],
)
def test_a_wis2_download_is_refused_before_decoding_past_its_limit(
    host: EncodedHost, path: str, words: str
) -> None:
    with pytest.raises(InvalidObservation) as refused:
        wis2_get(host, path)
    assert refused.value.code == "download" and words in refused.value.reason
    assert peak_mib(wis2_get, host, path) < LIMIT / MiB + 8


def test_downloads_ask_for_identity_and_still_decode_one_gzip_layer(host: EncodedHost) -> None:
    assert wis2_get(host, "/small.bufr") == b"BUFR small"
    assert wis2_get(host, "/plain.bufr") == b"BUFR plain"
    assert {accept for (_, accept) in host.accept} == {"identity"}


def test_the_hubs_catalog_client_bounds_a_member_sites_answer_after_decoding(
    host: EncodedHost,
) -> None:
    client = CatalogClient(host.url("", host="127.0.0.1"), max_bytes=LIMIT)
    for path, words in (("/twice.bufr", "gzip, gzip"), ("/single.bufr", "once decoded")):
        with pytest.raises(CatalogError, match=words):
            client._request("GET", path)
    assert peak_mib(client._request, "GET", "/single.bufr") < LIMIT / MiB + 8


def test_a_sentinel_copy_refuses_an_encoded_answer(host: EncodedHost) -> None:
    source = Source.model_validate(
        {"name": "source-a", "url": host.url("/stac"), "collections": ["c"], "assets": ["a"],
         "privateHosts": ["localhost"]}
    )  # fmt: skip
    guard = AddressGuard.build(private_hosts=["localhost"])
    http = guarded_client(guard)
    asset = HttpAsset(host.url("/stacked.bufr"), http, Credentials(source, None, None, http, guard))
    chunks, _, _ = asset.open(0)
    with pytest.raises(SourceError, match="Content-Encoding gzip, gzip"):
        b"".join(chunks)
    plain = HttpAsset(host.url("/plain.bufr"), http, Credentials(source, None, None, http, guard))
    assert b"".join(plain.open(0)[0]) == b"BUFR plain"
