"""The pure side of ECMWF open-data copies: identities, index entries, GRIB checks, items."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fedeploy_ingestion import forecast_plan
from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.forecast_plan import GribCheck, Message, Product
from fedeploy_ingestion.sentinel_plan import CopiedAsset
from fedeploy_ingestion.settings import EcmwfSource
from pydantic import ValidationError

from loopback.ecmwf_open_data import grib2_message

RUN = datetime(2026, 12, 5, 12, tzinfo=UTC)
URL = "https://data.ecmwf.int/forecasts/20261205/12z/ifs/0p25/oper/20261205120000-6h-oper-fc.grib2"


def product(**changes: object) -> Product:
    values: dict[str, object] = {
        "model": "ifs",
        "resol": "0p25",
        "stream": "oper",
        "type": "fc",
        "run": RUN,
        "step": 6,
        "params": ("2t", "msl"),
    }
    values.update(changes)
    return Product(**values)  # type: ignore[arg-type]


def test_key_and_item_id_come_from_the_products_identity() -> None:
    assert product().item_id == "ifs-0p25-oper-fc-2026120512-6h-2t_msl"
    assert product().key == (
        "sentinel/ecmwf-ifs-oper-fc/ifs-0p25-oper-fc-2026120512-6h-2t_msl/data.grib2"
    )
    assert product().collection_id == "ecmwf-ifs-oper-fc"
    upper = product(params=("t",), levtype="pl", levelist=(500, 850))
    assert upper.item_id.endswith("-6h-t_pl500_850")
    # every part of the identity changes the id
    for change in ({"step": 12}, {"model": "aifs-single"}, {"params": ("2t",)}, {"type": "cf"}):
        assert product(**change).item_id != product().item_id
    assert product(run=RUN.replace(hour=0)).key != product().key


def test_the_request_is_what_ecmwf_opendata_retrieves() -> None:
    assert product(levtype="sfc").request() == {
        "date": "2026-12-05",
        "time": 12,
        "model": "ifs",
        "resol": "0p25",
        "stream": "oper",
        "type": "fc",
        "step": 6,
        "param": ["2t", "msl"],
        "levtype": "sfc",
    }


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"not json", "not a JSON object"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"param": "2t", "_length": 10}', "_offset must be"),
        (b'{"_offset": -1, "_length": 10}', "_offset must be"),
        (b'{"_offset": 0, "_length": 0}', "_offset must be"),
        (b'{"_offset": true, "_length": 10}', "_offset must be"),
        (b'{"_offset": "0", "_length": 10}', "_offset must be"),
    ],
)
def test_a_bad_index_line_is_named(line: bytes, problem: str) -> None:
    with pytest.raises(SourceError, match=problem) as raised:
        forecast_plan.index_entry(line, URL, 7)
    assert "line 7" in str(raised.value)


def test_overlapping_index_entries_are_refused_and_adjacent_ones_merged() -> None:
    with pytest.raises(SourceError, match="overlaps"):
        forecast_plan.messages([(URL, ((0, 100), (50, 100)))], {})
    chosen = forecast_plan.messages([(URL, ((200, 50), (0, 100), (100, 100)))], {})
    assert [(s.offset, s.length) for s in forecast_plan.spans(chosen)] == [(0, 250)]
    apart = forecast_plan.messages([(URL, ((0, 100), (300, 10)))], {})
    assert [(s.offset, s.length) for s in forecast_plan.spans(apart)] == [(0, 100), (300, 10)]


def _check(chosen: list[Message], data: bytes, chunk: int, start: int = 0) -> bytes:
    pieces = [data[i : i + chunk] for i in range(start, len(data), chunk)]
    return b"".join(GribCheck(chosen, start).feed(iter(pieces), start))


def test_grib_messages_are_checked_as_they_stream_in_any_chunking() -> None:
    one, two = grib2_message("2t", RUN, 6), grib2_message("msl", RUN, 6)
    data = one + two
    chosen = [Message(URL, 0, len(one), {}), Message(URL, len(one), len(two), {})]
    for chunk in (1, 3, 16, 17, 1000, len(data)):
        assert _check(chosen, data, chunk) == data
    # a resumed copy checks what it sees
    assert _check(chosen, data, 5, start=len(one) + 3) == data[len(one) + 3 :]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda d: b"GRIX" + d[4:], "no GRIB edition 2 message starts at byte 0"),
        (lambda d: d[:7] + b"\x01" + d[8:], "no GRIB edition 2"),
        (lambda d: d[:-4] + b"7778", "does not end '7777'"),
    ],
)
def test_a_damaged_grib_message_fails_the_copy(damage, problem: str) -> None:
    data = grib2_message("2t", RUN, 6)
    with pytest.raises(SourceError, match=problem):
        _check([Message(URL, 0, len(data), {})], damage(data), 100)


def test_an_index_length_that_is_not_the_messages_fails() -> None:
    data = grib2_message("2t", RUN, 6) + grib2_message("msl", RUN, 6)
    with pytest.raises(SourceError, match="declares 1667 bytes, its index 1000"):
        _check([Message(URL, 0, 1000, {})], data[:1000], 100)


def test_the_item_has_ecmwfs_identifiers_the_forecast_fields_and_links_back() -> None:
    entry = {"param": "2t", "levtype": "sfc", "step": "6", "_offset": 0, "_length": 10}
    chosen = [Message(URL, 0, 10, entry), Message(URL, 30, 5, {"param": "msl"})]
    item = forecast_plan.site_item(
        product(),
        chosen,
        CopiedAsset("ecmwf/x.grib2", 15, b"\x00" * 32),
        bucket="b",
        site="site-a",
        item_fingerprint="f",
        area=(10.0, 45.0, 13.0, 48.0),
        now=RUN,
    )
    properties = item["properties"]
    assert properties["forecast:reference_datetime"] == "2026-12-05T12:00:00.000000Z"
    assert properties["datetime"] == "2026-12-05T18:00:00.000000Z"
    assert properties["forecast:horizon"] == "PT6H"
    assert (properties["ecmwf:model"], properties["ecmwf:step"]) == ("ifs", 6)
    assert properties["fedeploy:area_of_interest"] == [10.0, 45.0, 13.0, 48.0]
    assert forecast_plan.FORECAST_EXTENSION in item["stac_extensions"]
    asset = item["assets"]["data"]
    assert asset["href"] == "s3://b/ecmwf/x.grib2"
    assert asset["type"] == "application/wmo-GRIB2"
    assert asset["ecmwf:messages"] == [
        {"param": "2t", "levtype": "sfc", "step": "6", "offset": 0, "length": 10},
        {"param": "msl", "offset": 10, "length": 5},
    ]
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links == {"via": URL, "describedby": URL.removesuffix(".grib2") + ".index"}


def test_a_source_lists_the_runs_of_its_window() -> None:
    source = EcmwfSource(
        name="ecmwf-ifs",
        steps=[0],
        params=["2t"],
        times=[0, 12],
        datetime="2026-12-04T06:00:00Z/2026-12-05T12:00:00Z",
    )
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert source.runs(now) == [
        datetime(2026, 12, 4, 12, tzinfo=UTC),
        datetime(2026, 12, 5, 0, tzinfo=UTC),
        datetime(2026, 12, 5, 12, tzinfo=UTC),
    ]
    rolling = EcmwfSource(name="ecmwf-ifs", steps=[0], params=["2t"], datetime="PT13H")
    assert rolling.runs(datetime(2026, 12, 5, 13, tzinfo=UTC)) == [
        datetime(2026, 12, 5, 0, tzinfo=UTC),
        datetime(2026, 12, 5, 12, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"datetime": "2026-12-04T06:00:00Z/.."}, "closed interval"),
        ({"params": ["2t/msl"]}, "pattern"),
        ({"times": [3]}, "times"),
        ({"model": "gfs"}, "model"),
        ({"steps": []}, "steps"),
        ({"bbox": [10, 50, 13, 48]}, "south <= north"),
    ],
)
def test_a_bad_source_is_refused_naming_the_field(changes: dict[str, object], problem: str):
    with pytest.raises(ValidationError, match=problem):
        EcmwfSource(**{"name": "ecmwf-ifs", "steps": [0], "params": ["2t"], **changes})
