"""EUMETSAT Data Store answers that are hostile or broken (review of issue 36): each is bounded
by a small limit and the stand-in's request cap (loopback.hostile_eumetsat), never by the
machine. The product copies are stubbed: these are about the token flow and the search."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fedeploy_ingestion import eumetsat
from fedeploy_ingestion.download_safety import DownloadPolicy
from fedeploy_ingestion.errors import ConfigError
from fedeploy_ingestion.eumetsat import BearerCredentials, EumetsatRun
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.sentinel_plan import CopiedAsset
from fedeploy_ingestion.settings import EUMETSAT_MAX_ITEMS, IngestSettings

from loopback.eumetsat_data_store import DataStoreServer
from loopback.hostile_eumetsat import COLLECTION, HostileDataStore

pytestmark = pytest.mark.timeout(60)
WINDOW = "2026-12-05T00:00:00Z/2026-12-06T00:00:00Z"
OTHER = "EO:EUM:DAT:MSG:CLM"


class _Store:
    bucket = "b"


class _Catalog:
    def get_item(self, *args: Any) -> None:
        return None


def _config(
    url: str, collections: list[str] | None = None, key: str = "k", secret: str = "s", **source: Any
) -> IngestSettings:
    values: dict[str, Any] = {}
    if "search_max_pages" in source:
        values["search_max_pages"] = source.pop("search_max_pages")
    return IngestSettings(
        site="site-a",
        bucket="b",
        s3_endpoint_url="http://127.0.0.1:1",
        s3_region="us-east-1",
        eumetsat_sources=[
            {
                "name": "hostile",
                "url": url,
                "privateHosts": ["127.0.0.1"],
                "collections": collections or [COLLECTION],
                "datetime": WINDOW,
                **source,
            }
        ],
        eumetsat_consumer_key=key,
        eumetsat_consumer_secret=secret,
        **values,
    )


def _run(mode: str, cap: int = 300, **source: Any) -> tuple[Any, list[str], HostileDataStore]:
    """One run against the hostile stand-in; (report, product ids handed on, server)."""
    server = HostileDataStore(mode, cap=cap, bomb_bytes=8 << 20).start()
    try:
        run = EumetsatRun(_config(server.url, **source), _Store(), _Catalog(), Metrics())  # type: ignore[arg-type]
        taken: list[str] = []
        run._product = lambda source, token, cred, coll, product, now: taken.append(str(product))  # type: ignore[method-assign]
        return run.run(), taken, server
    finally:
        server.stop()


def test_a_gzip_bomb_search_page_is_refused_once_decoded_past_the_bound(monkeypatch) -> None:
    monkeypatch.setattr(
        eumetsat, "MAX_API_BODY", 1 << 20, raising=False
    )  # the page: 8 MiB once decoded
    report, taken, server = _run("gzip_bomb")
    assert taken == []
    assert server.counts["search"] == 1
    assert "more than 1048576 bytes once decoded" in report.failed[f"hostile:{COLLECTION}:search"]


@pytest.mark.parametrize(("mode", "failed"), [("token_bomb", "token"), ("osdd_bomb", "search")])
def test_a_gzip_bomb_token_answer_or_search_description_is_refused(monkeypatch, mode, failed):
    monkeypatch.setattr(eumetsat, "MAX_API_BODY", 1 << 20, raising=False)
    report, taken, _ = _run(mode)
    assert taken == []
    [failure] = report.failed.values()
    assert "more than 1048576 bytes once decoded" in failure
    assert list(report.failed)[0].endswith(f":{failed}")


def test_a_token_expiring_within_eumdacs_margin_is_refused_not_renewed_in_a_loop() -> None:
    # eumdac alone posts the credentials again every 0.5 s while expires_in < 2 s
    report, taken, server = _run("short_token", cap=10)
    assert server.counts["token"] == 1
    assert "expires_in must be a number of seconds" in report.failed["hostile:token"]
    assert taken == []


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("huge_expiry", "expires_in"),  # OverflowError in eumdac
        ("no_expiry", "expires_in"),  # KeyError 'expires_in'
        ("no_token", "no access_token"),
        ("not_json_token", "not JSON"),
    ],
)
def test_a_malformed_token_answer_says_so(mode: str, says: str) -> None:
    report, _, server = _run(mode, cap=10)
    failure = report.failed["hostile:token"]
    assert "token endpoint" in failure and "answer is malformed" in failure and says in failure
    assert server.counts["token"] == 1


def test_pages_that_repeat_the_same_products_end_the_search() -> None:
    # eumdac skips records it already yielded and asks for the next page, without end
    report, taken, server = _run("repeat_full_pages")
    assert report.failed == {}
    assert len(taken) == 100 and len(set(taken)) == 100
    assert server.counts["search"] == 2


def test_max_items_stops_a_search_whose_pages_repeat() -> None:
    report, taken, server = _run("repeat_pages", maxItems=2)
    assert report.failed == {}
    assert taken == ["P-0", "P-1"]
    assert server.counts["search"] == 1


def test_a_search_of_endless_new_pages_fails_its_collection_past_search_max_pages() -> None:
    report, taken, server = _run("fresh_pages", search_max_pages=5)
    assert server.counts["search"] == 5
    assert len(taken) == 500
    assert "more than 5 pages" in report.failed[f"hostile:{COLLECTION}:search"]


def test_the_default_max_items_bounds_a_search_of_endless_new_pages() -> None:
    report, taken, server = _run("fresh_pages")
    assert len(taken) == EUMETSAT_MAX_ITEMS
    assert report.failed == {}
    assert server.counts["search"] <= EUMETSAT_MAX_ITEMS // 100 + 1


def test_a_search_page_sent_a_byte_at_a_time_fails_at_the_answers_deadline(monkeypatch) -> None:
    # each byte arrives well within the read timeout; the page, about 400 bytes, takes 40 s
    monkeypatch.setattr(eumetsat, "MAX_API_SECONDS", 1.0, raising=False)
    started = time.monotonic()
    report, taken, _ = _run("drip")
    assert taken == []
    assert "did not arrive whole within 1 s" in report.failed[f"hostile:{COLLECTION}:search"]
    assert time.monotonic() - started < 15


def test_one_malformed_search_record_fails_alone() -> None:
    report, taken, _ = _run("one_bad_feature")
    assert taken == ["P-0", "P-2"]
    assert list(report.failed) == [f"{COLLECTION}/P-1"]
    assert "malformed search record" in report.failed[f"{COLLECTION}/P-1"]


def test_a_token_revoked_midrun_is_renewed_once_and_the_products_copied(tmp_path: Path) -> None:
    key, secret = "consumer-key-7", "consumer-secret"
    server = DataStoreServer(tmp_path / "ds", key, secret).start()
    day = datetime(2026, 12, 5, tzinfo=UTC)
    try:
        for hour in range(3):
            server.add(COLLECTION, f"MSG4-P-{hour}", day + timedelta(hours=hour))
        server.add(OTHER, "MSG4-C-0", day)
        config = _config(server.endpoints(), [COLLECTION, OTHER], key=key, secret=secret)
        run = EumetsatRun(config, _Store(), _Catalog(), Metrics())  # type: ignore[arg-type]
        copies: list[str] = []

        def copy(key: str, source: Any, **_: Any) -> CopiedAsset:
            chunks, _, _ = source().open(0)
            body = b"".join(chunks)
            copies.append(key)
            if len(copies) in (1, 3):
                # the Data Store ends the token early: a 401 for the next download, then for
                # the next collection's search
                server._tokens.clear()
            return CopiedAsset(key, len(body), hashlib.sha256(body).digest())

        run.sink.copy = copy  # type: ignore[method-assign]
        run.sink.register = lambda collection, item: None  # type: ignore[method-assign]
        report = run.run(now=day + timedelta(days=1))
        assert report.failed == {}
        assert len(copies) == 4
        assert sum(1 for path, _ in server.seen if path == "/token") == 3
    finally:
        server.stop()


def test_the_bearer_token_goes_to_no_other_port_of_the_sources_host() -> None:
    class Source:
        name, url, download_hosts, private_hosts = "s", "https://api.example:8443", (), ()

    policy = DownloadPolicy.for_source(Source())

    class Token:
        access_token = "secret-token"

    credentials = BearerCredentials(policy, Token(), Source.url)
    assert credentials.headers_for(httpx.URL("https://api.example:8443/x"))
    assert credentials.headers_for(httpx.URL("https://api.example/x"))  # https's own port
    assert credentials.headers_for(httpx.URL("https://api.example:9000/x")) == {}
    assert credentials.headers_for(httpx.URL("http://api.example:80/x")) == {}


def test_two_collections_that_would_share_a_site_collection_are_refused() -> None:
    config = _config("http://127.0.0.1:1", ["EO:EUM:DAT:X-Y", "EO:EUM:DAT:X:Y"])
    with pytest.raises(ConfigError, match="would both be the site's collection"):
        EumetsatRun(config, _Store(), _Catalog(), Metrics()).run()  # type: ignore[arg-type]


def test_the_eumdac_internals_this_module_relies_on_are_still_there() -> None:
    """An eumdac upgrade that changes these must fail here, not in production."""
    import inspect

    import eumdac
    import requests
    from eumdac.collection import SearchResults

    assert callable(SearchResults._get_request_params) and callable(SearchResults._load_page)
    load = inspect.signature(SearchResults._load_page).parameters
    assert list(load)[:2] == ["self", "params"]
    assert "si" in inspect.getsource(SearchResults._get_request_params)
    token_class = eumetsat.bounded_token_class()
    assert issubclass(token_class, eumdac.AccessToken)
    for name in ("_update_token_data", "_expiration", "_access_token", "request_margin"):
        assert hasattr(eumdac.AccessToken, name), name
    assert "self.access_token" in inspect.getsource(eumdac.AccessToken.auth.fget)
    assert "_update_token_data" in inspect.getsource(eumdac.AccessToken.expiration.fget)
    # requests keeps a read body in `_content` (GuardedAdapter sets it)
    response = requests.Response()
    response._content = b"{}"
    assert response.json() == {}
    assert hasattr(eumdac.DataStore, "get_product_from_search_feature")
    # a 401 is recognised by the status eumdac's errors carry
    assert eumdac.errors.EumdacError("m", {"status": 401}).extra_info["status"] == 401
    assert "extra_info.update" in inspect.getsource(eumdac.errors.eumdac_raise_for_status)
