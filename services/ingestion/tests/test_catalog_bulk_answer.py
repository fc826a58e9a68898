"""CatalogClient reads a bulk upsert's answer: stac-fastapi-pgstac answers 200 and lists the
items it refused on validation in its body (stac_fastapi/pgstac/transactions.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fedeploy_ingestion.catalog import CatalogClient, ItemsRefused
from fedeploy_ingestion.errors import CatalogError

ITEMS = [{"id": "a"}, {"id": "b"}, {"id": "c"}]


def client(status: int, **answer: Any) -> CatalogClient:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, **answer)

    return CatalogClient(
        "http://catalog.test", http=httpx.Client(transport=httpx.MockTransport(reply))
    )


def test_items_listed_as_refused_raise_items_refused_naming_each_with_its_reason() -> None:
    catalog = client(
        200,
        json={
            "received": 3,
            "success": 2,
            "skipped": 0,
            "errors": [{"id": "b", "msg": "Collection ID from path parameter (c) does not match"}],
        },
    )
    with pytest.raises(ItemsRefused) as refused:
        catalog.upsert_items("c", ITEMS)
    assert refused.value.refused == {"b": "Collection ID from path parameter (c) does not match"}
    reason = refused.value.reason("b")
    assert "bulk_items refused item b: Collection ID" in reason


@pytest.mark.parametrize(
    "answer",
    [
        {"received": 3, "success": 3, "skipped": 0, "errors": []},  # pgstac, all stored
        "Successfully added 3 items.",  # another API's text answer: taken as it is
    ],
)
def test_an_answer_that_refuses_nothing_is_success(answer: Any) -> None:
    client(200, json=answer).upsert_items("c", ITEMS)


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"success": 2, "errors": [{"id": "z", "msg": "no"}]}, "no item it was sent"),
        ({"success": 2, "errors": [{"msg": "no"}]}, "no item it was sent"),
        ({"success": 1, "errors": [{"id": "b", "msg": "no"}]}, "stored 1 of the 3"),
        ({"success": 3, "errors": "no"}, "a list of {id, msg} was expected"),
    ],
)
def test_an_answer_that_does_not_say_which_items_it_refused_fails_the_request(
    answer: dict[str, Any], said: str
) -> None:
    with pytest.raises(CatalogError) as error:
        client(200, json=answer).upsert_items("c", ITEMS)
    assert not isinstance(error.value, ItemsRefused) and said in str(error.value)
