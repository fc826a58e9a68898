"""Forecast registration puts each id in the catalog URL as one percent-encoded segment."""

from __future__ import annotations

import httpx
import pytest
from fedeploy_inference import catalog


def test_ids_are_one_encoded_path_segment_each(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.decode()))
        if request.method == "POST" and request.url.raw_path.endswith(b"/items"):
            return httpx.Response(409)
        return httpx.Response(200, json={})

    real = httpx.Client
    monkeypatch.setattr(
        catalog.httpx, "Client", lambda **kw: real(transport=httpx.MockTransport(answer), **kw)
    )
    item = {"id": "../../admin x", "collection": "fore/casts"}
    catalog.register_item("http://catalog:8080/", item)
    assert seen == [
        ("GET", "/collections/fore%2Fcasts"),
        ("POST", "/collections/fore%2Fcasts/items"),
        ("PUT", "/collections/fore%2Fcasts/items/..%2F..%2Fadmin%20x"),
    ]
