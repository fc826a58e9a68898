"""The stack file's ECMWF and EUMETSAT source keys refuse what the ingestion service refuses.

A stack file that validates must not fail at run time in the Sentinel CronJob: each value the
service's settings refuse is refused by `fedeploy validate` too (the table below runs both)."""

from __future__ import annotations

import pytest
from fedeploy_ingestion.settings import EcmwfSource, EumetsatSource
from pydantic import ValidationError

from fedeploy.config.services import EcmwfForecasts, EumetsatProducts

ECMWF = {"name": "ifs", "steps": [0, 6]}
EUMETSAT = {"name": "msg", "collections": ["EO:EUM:DAT:MSG:HRSEVIRI"]}


def _fedeploy_accepts(model: type, fields: dict) -> bool:
    try:
        model.model_validate(fields)
    except ValidationError:
        return False
    return True


def _service_accepts(model: type, fields: dict) -> bool:
    try:
        model.model_validate(fields)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    "params",
    [["2t"], ["2t", "msl"], ["tp"], ["2t_msl"], ["2t-msl"], ["sfc"], ["pl500"], ["l850"], ["sol"]],
)
def test_ecmwf_params_are_refused_by_the_stack_file_exactly_where_the_service_refuses_them(
    params: list[str],
) -> None:
    service = _service_accepts(
        EcmwfSource, {**ECMWF, "url": "https://data.ecmwf.int", "params": params}
    )
    assert _fedeploy_accepts(EcmwfForecasts, {**ECMWF, "params": params}) is service


@pytest.mark.parametrize("max_items", [1, 1000, 10000, 10001, 100000])
def test_eumetsat_max_items_is_bounded_where_the_service_bounds_it(max_items: int) -> None:
    service = _service_accepts(
        EumetsatSource, {**EUMETSAT, "url": "https://api.eumetsat.int", "maxItems": max_items}
    )
    assert _fedeploy_accepts(EumetsatProducts, {**EUMETSAT, "max_items": max_items}) is service


def test_a_level_word_among_params_is_explained() -> None:
    with pytest.raises(ValidationError, match="level word"):
        EcmwfForecasts.model_validate({**ECMWF, "params": ["2t", "pl500"]})


@pytest.mark.parametrize(
    ("first", "second", "found"),
    [
        ("ecmwf", "ecmwf", r"ecmwf\[1\]\.name 'ifs' is also ecmwf\[0\]\.name"),
        ("sources", "ecmwf", r"ecmwf\[0\]\.name 'ifs' is also sources\[0\]\.name"),
    ],
)
def test_two_sources_of_one_name_are_refused_in_the_stack_file(
    first: str, second: str, found: str
) -> None:
    # Review agency29 F3: the service tracks a source's share of the run by its name; a second
    # source of the same name was never searched, and nothing said so.
    from fedeploy.config.services import Sentinel

    sources = {
        "ecmwf": {"name": "ifs", "steps": [0, 6], "params": ["2t"]},
        "sources": {
            "name": "ifs",
            "bbox": [10, 50, 11, 51],
            "collections": ["sentinel-2-l2a"],
            "assets": ["B04"],
        },
    }
    document: dict = {}
    document.setdefault(first, []).append(sources[first])
    document.setdefault(second, []).append(sources[second])
    with pytest.raises(ValidationError, match=found):
        Sentinel.model_validate(document)
    document[second][-1] = {**sources[second], "name": "other"}
    Sentinel.model_validate(document)
