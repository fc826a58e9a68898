"""Catalog URLs from untrusted ids: each id one percent-encoded path segment, checked first."""

from __future__ import annotations

import httpx
import pytest
from fedeploy_ingestion import federation
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.stac_ids import InvalidId, item_path


class Recorder:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.raw_path.decode())
        return httpx.Response(404, json={})

    def client(self) -> CatalogClient:
        return CatalogClient(
            "http://catalog.test/stac/",
            http=httpx.Client(transport=httpx.MockTransport(self.handle)),
        )


@pytest.mark.parametrize(
    ("item_id", "segment"),
    [
        ("%2F", "%252F"),
        ("a b", "a%20b"),
        ("S2B_Ü_ß", "S2B_%C3%9C_%C3%9F"),
        ("x?admin=1#frag", "x%3Fadmin%3D1%23frag"),
        ("..a", "..a"),
        ("S2B_MSIL2A_20240601T103031", "S2B_MSIL2A_20240601T103031"),
    ],
)
def test_each_id_is_one_encoded_path_segment(item_id: str, segment: str) -> None:
    recorder = Recorder()
    assert recorder.client().get_item("sentinel 2", item_id) is None
    assert recorder.paths == [f"/stac/collections/sentinel%202/items/{segment}"]


@pytest.mark.parametrize("bad", ["../../admin", "..", ".", "", "a/b", "a\\b", "a\nb", "\x00", None])
def test_an_unusable_id_is_refused_before_any_request(bad: object) -> None:
    recorder = Recorder()
    client = recorder.client()
    for call in (
        lambda: client.get_item("c", bad),  # type: ignore[arg-type]
        lambda: client.get_item(bad, "i"),  # type: ignore[arg-type]
        lambda: client.get_collection(bad),  # type: ignore[arg-type]
        lambda: client.ensure_collection({"id": bad}),
        lambda: client.put_collection({"id": bad}),
        lambda: client.upsert_items("c", [{"id": "ok"}, {"id": bad}]),
    ):
        with pytest.raises(InvalidId, match="id"):
            call()
    assert recorder.paths == []


def test_an_overlong_id_is_refused() -> None:
    with pytest.raises(InvalidId, match="longer than 512"):
        item_path("c", "x" * 513)


def test_the_hubs_links_encode_ids_too() -> None:
    item = {"id": "a b/../c", "collection": "s2", "properties": {}, "links": []}
    with pytest.raises(InvalidId):
        federation.item_url("https://site.example/stac", item)
    item["id"] = "a b%2F"
    assert (
        federation.item_url("https://site.example/stac/", item)
        == "https://site.example/stac/collections/s2/items/a%20b%252F"
    )
    assert federation.hub_collection("https://site.example", {"id": "s 2"})["links"][0]["href"] == (
        "https://site.example/collections/s%202"
    )
