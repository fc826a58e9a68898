"""ECMWF open-data answers and settings that are hostile or ambiguous (review of issue 36):
the loopback open-data tree made to lie, the site side stubbed (the copy drains the product's
stream through GribCheck; register keeps the item)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fedeploy_ingestion import forecast_plan
from fedeploy_ingestion.ecmwf_open_data import EcmwfRun
from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.sentinel_plan import CopiedAsset
from fedeploy_ingestion.settings import IngestSettings
from pydantic import ValidationError

from loopback.ecmwf_open_data import OpenDataServer, grib2_message, publish
from services.ingestion.tests.agency_site import stubbed

pytestmark = pytest.mark.timeout(60)
RUN = datetime(2026, 12, 5, 0, tzinfo=UTC)


class _Store:
    bucket = "b"


class _Catalog:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def get_item(self, collection: str, item: str) -> dict[str, Any] | None:
        return self.items.get((collection, item))


def _source(name: str, url: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": name,
        "url": url,
        "privateHosts": ["127.0.0.1", "localhost"],
        "steps": [0],
        "params": ["2t"],
        "times": [0],
        "datetime": "2026-12-05T00:00:00Z/2026-12-05T00:00:00Z",
        **changes,
    }


def _run(sources: list[dict[str, Any]], catalog: _Catalog) -> tuple[Any, list[str]]:
    """One EcmwfRun; (report, keys copied)."""
    config = IngestSettings(
        site="site-a",
        bucket="b",
        s3_endpoint_url="http://127.0.0.1:1",
        s3_region="us-east-1",
        ecmwf_sources=sources,
    )
    run = EcmwfRun(config, _Store(), catalog, Metrics())  # type: ignore[arg-type]
    copied = stubbed(run, catalog)
    return run.run(now=datetime(2026, 12, 5, 6, tzinfo=UTC)), copied


@pytest.fixture
def tree(tmp_path: Path):
    root = tmp_path / "open-data"
    relative, entries = publish(root, RUN, 0, ["2t", "msl", "10u"])
    server = OpenDataServer(root).start()
    yield root / relative, entries, server
    server.stop()


def _rewrite(data: Path, entries: list[dict[str, Any]]) -> None:
    data.with_suffix(".index").write_text("".join(json.dumps(e) + "\n" for e in entries))


def test_overlapping_entries_fail_the_product_even_when_not_selected(tree) -> None:
    data, entries, server = tree
    entries[2]["_offset"] = entries[1]["_offset"] + 8  # msl and 10u overlap; only 2t is selected
    _rewrite(data, entries)
    report, copied = _run([_source("ecmwf", server.base)], _Catalog())
    assert copied == []
    [failure] = report.failed.values()
    assert "overlaps another" in failure


def test_index_strings_in_the_item_are_known_keys_of_bounded_length(tree) -> None:
    data, entries, server = tree
    entries[0]["note"] = "A" * 100_000
    entries[0]["levtype"] = "s" * 1000
    _rewrite(data, entries)
    catalog = _Catalog()
    report, _ = _run([_source("ecmwf", server.base)], catalog)
    assert report.failed == {}
    [item] = catalog.items.values()
    [message] = item["assets"]["data"]["ecmwf:messages"]
    assert "note" not in message and "levtype" not in message
    assert message["param"] == "2t"
    assert len(json.dumps(item)) < 10_000


def test_the_same_forecast_from_a_mirror_is_not_copied_again(tree) -> None:
    _, _, server = tree
    mirror = server.base.replace("127.0.0.1", "localhost")
    catalog = _Catalog()
    sources = [_source("primary", server.base), _source("mirror", mirror)]
    first, copied = _run(sources, catalog)
    assert first.failed == {} and len(copied) == 1
    second, copied_again = _run(sources, catalog)
    assert second.failed == {} and copied_again == []


def test_a_message_that_is_not_what_its_index_entry_says_fails_the_product(tree) -> None:
    data, entries, server = tree
    entries[0]["param"], entries[1]["param"] = entries[1]["param"], entries[0]["param"]
    _rewrite(data, entries)  # the index labels the msl message 2t
    catalog = _Catalog()
    report, _ = _run([_source("ecmwf", server.base)], catalog)
    assert catalog.items == {}
    [failure] = report.failed.values()
    assert "has shortName 'msl', its index entry param '2t'" in failure


@pytest.mark.parametrize(
    ("message", "entry", "says"),
    [
        (("2t", 6, None), {"param": "2t", "step": "0"}, "endStep"),
        (("t", 0, 500), {"param": "t", "step": "0", "levelist": "850"}, "level"),
    ],
)
def test_grib_identity_checks_step_and_level(message, entry, says) -> None:
    data = grib2_message(message[0], RUN, message[1], message[2])
    chosen = [forecast_plan.Message("http://h/f.grib2", 0, len(data), entry)]
    with pytest.raises(SourceError, match=f"has {says}"):
        b"".join(forecast_plan.GribIdentity(chosen).feed([data[:100], data[100:]], 0))
    right = {**entry, "step": str(message[1])}
    if message[2]:
        right["levelist"] = str(message[2])
    chosen = [forecast_plan.Message("http://h/f.grib2", 0, len(data), right)]
    assert b"".join(forecast_plan.GribIdentity(chosen).feed([data], 0)) == data


def test_the_item_says_what_its_identifiers_rest_on() -> None:
    product = forecast_plan.Product("ifs", "0p25", "oper", "fc", RUN, 0, ("2t",))
    message = forecast_plan.Message("http://h/f.grib2", 0, 24, {"param": "2t"})
    item = forecast_plan.site_item(
        product,
        [message],
        CopiedAsset("k", 24, b"\0" * 32),
        bucket="b",
        site="site-a",
        item_fingerprint="f",
        area=None,
        now=RUN,
    )
    assert ".index" in item["assets"]["data"]["description"]
    assert "decoded from its header" in item["assets"]["data"]["description"]


def _check(lengths: list[int], body: bytes) -> bytes:
    chosen, offset = [], 0
    for length in lengths:
        chosen.append(forecast_plan.Message("http://h/f.grib2", offset, length, {}))
        offset += length
    return b"".join(forecast_plan.GribCheck(chosen).feed([body], 0))


REAL = b"GRIB\x00\x00\x00\x02" + (24).to_bytes(8, "big") + b"\x00" * 4 + b"7777"


@pytest.mark.parametrize(
    ("lengths", "body"),
    [([3], b"abc"), ([12], b"<html>oops</"), ([24, 10], REAL + b"J" * 10), ([24, 24], REAL)],
)
def test_grib_check_refuses_a_product_whose_messages_it_could_not_check(lengths, body) -> None:
    with pytest.raises(SourceError):
        _check(lengths, body)


def test_grib_check_passes_whole_messages() -> None:
    assert _check([24, 24], REAL + REAL) == REAL + REAL


def test_an_index_entry_shorter_than_any_grib2_message_is_refused() -> None:
    with pytest.raises(SourceError, match="_length one >= 20"):
        forecast_plan.index_entry(b'{"_offset": 0, "_length": 3}', "http://h/f.index", 1)
    assert forecast_plan.index_entry(b'{"_offset": 0, "_length": 20}', "u", 1)["_length"] == 20


@pytest.mark.parametrize("params", [["2t_msl"], ["2t", "sfc"], ["t", "pl500"], ["l850"], ["a-b"]])
def test_params_that_could_name_another_selections_item_are_refused(params) -> None:
    with pytest.raises(ValidationError, match="params"):
        IngestSettings(
            site="site-a", bucket="b", ecmwf_sources=[_source("src", "https://x", params=params)]
        )


def test_ordinary_params_are_accepted() -> None:
    params = ["2t", "msl", "10u", "100v", "mx2t3", "tp", "tprate", "ptype"]
    config = IngestSettings(
        site="site-a", bucket="b", ecmwf_sources=[_source("src", "https://x", params=params)]
    )
    assert config.ecmwf_sources[0].params == params
