"""NWP at the stations (issue 36): GRIB2 products written here with ecCodes, read back at the
stations (nearest grid point, lapse-rate corrected), fed to the model and scored in its card."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
import torch
from fedeploy_inference import nwp
from fedeploy_inference.api_schema import PredictionRequest
from fedeploy_inference.cli import main
from fedeploy_inference.features import (
    FeatureSpec,
    NwpInputError,
    Samples,
    build_samples,
    encode,
    fit_normalization,
)
from fedeploy_inference.hourly import to_hourly
from fedeploy_inference.model import NetConfig, StationForecaster
from fedeploy_inference.model_card import nwp_text
from fedeploy_inference.nwp import GRAVITY, KELVIN, Place, ProductError, collect, read_product
from fedeploy_inference.predictor import encode_requests
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.synthetic import SyntheticSpec, generate, scenes
from fedeploy_inference.synthetic_nwp import ErrorModel, grib2_field, products
from fedeploy_inference.train_from_store import ingested_forecasts
from fedeploy_inference.training import TrainConfig, fit, predict
from pydantic import ValidationError

from tests.samples import request_for

RUN = datetime(2026, 1, 1, 12, tzinfo=UTC)
# A 3 x 4 grid of 1-degree steps from 50N 10W (written as ECMWF writes it: longitude 350).
TEMPERATURE_K = np.array(
    [[270.0, 271.0, 272.0, 273.0], [280.0, 281.0, 282.0, 283.0], [290.0, 291.0, 292.0, 293.0]]
)
OROGRAPHY_M = np.array([[0.0, 100.0, 200.0, 300.0], [400.0, 500.0, 600.0, 700.0], [0.0] * 4])


def product(step: int = 6, orography: bool = True, lon0: float = -10.0) -> bytes:
    """2t (and z) on the small grid, run RUN, `step` hours."""
    data = grib2_field("2t", RUN, step, 50.0, lon0, 4, 3, 1.0, TEMPERATURE_K)
    if orography:
        data += grib2_field("z", RUN, step, 50.0, lon0, 4, 3, 1.0, OROGRAPHY_M * GRAVITY)
    return data


def test_values_at_known_grid_points_in_degc_with_valid_time():
    places = [
        Place("a", 50.0, -10.0, None),
        Place("b", 49.0, -8.0, None),
        Place("c", 48.2, -6.9, None),
    ]
    read = read_product(product(), "p1", places)
    assert read.reference == RUN and read.step_hours == 6.0
    assert read.valid == datetime(2026, 1, 1, 18, tzinfo=UTC)
    got = {k: round(v.raw_c, 2) for k, v in read.values.items()}
    # c is nearest to 48N -7E: row 2, column 3.
    assert got == {
        "a": round(270.0 - KELVIN, 2),
        "b": round(282.0 - KELVIN, 2),
        "c": round(293.0 - KELVIN, 2),
    }
    assert (read.values["c"].grid_latitude, read.values["c"].grid_longitude) == (48.0, -7.0)


def test_lapse_rate_correction_from_the_products_orography():
    read = read_product(product(), "p1", [Place("high", 49.0, -9.0, 1300.0)])
    value = read.values["high"]
    # Grid point 49N 9W: 281 K at 500 m; the station is 800 m higher: 5.2 K colder.
    assert value.grid_elevation == pytest.approx(500.0, abs=0.5)
    assert value.raw_c == pytest.approx(281.0 - KELVIN, abs=0.01)
    assert value.corrected_c == pytest.approx(281.0 - KELVIN - 0.0065 * 800.0, abs=0.01)
    assert value.correction == "-5.20 K"


def test_no_orography_or_no_elevation_leaves_the_value_raw_and_says_why():
    without = read_product(product(orography=False), "p1", [Place("s", 49.0, -9.0, 1300.0)])
    assert without.values["s"].corrected_c == without.values["s"].raw_c
    assert "no z or orog" in without.values["s"].correction
    unknown = read_product(product(), "p1", [Place("s", 49.0, -9.0, None)])
    assert "elevation is unknown" in unknown.values["s"].correction


@pytest.mark.parametrize("longitude", [-9.0, 351.0, -369.0])
def test_longitudes_either_convention(longitude):
    read = read_product(product(), "p1", [Place("s", 50.0, longitude, None)])
    assert read.values["s"].raw_c == pytest.approx(271.0 - KELVIN, abs=0.01)


def test_a_grid_written_0_to_360_is_read_at_a_western_station():
    data = grib2_field("2t", RUN, 0, 50.0, 350.0, 4, 3, 1.0, TEMPERATURE_K)
    read = read_product(data, "p1", [Place("s", 49.0, -7.0, None)])
    assert read.values["s"].raw_c == pytest.approx(283.0 - KELVIN, abs=0.01)


def test_a_global_grid_wraps_at_the_dateline():
    values = np.tile(np.arange(36, dtype=float) + 250.0, (3, 1))
    data = grib2_field("2t", RUN, 0, 10.0, 0.0, 36, 3, 10.0, values)
    read = read_product(data, "p1", [Place("w", 0.0, -4.0, None), Place("e", 0.0, 356.0, None)])
    # Both are nearest to 0 E (column 0), not to 350 E.
    assert read.values["w"].raw_c == pytest.approx(250.0 - KELVIN, abs=0.01)
    assert read.values["e"].raw_c == pytest.approx(250.0 - KELVIN, abs=0.01)


def test_a_station_outside_the_area_is_not_covered():
    places = [
        Place("far", 30.0, -9.0, None),
        Place("east", 49.0, 20.0, None),
        Place("in", 49.0, -9.0, None),
    ]
    read = read_product(product(), "p1", places)
    assert not read.values["far"].covered and "latitude 30" in read.values["far"].reason
    assert not read.values["east"].covered and "longitude 20" in read.values["east"].reason
    assert read.values["in"].covered
    forecasts = collect([("p1", product())], places)
    assert set(forecasts.stations) == {"in"}
    assert forecasts.not_covered["far"].startswith("not covered: latitude")


def test_a_station_half_a_step_beyond_the_grids_edge_reads_the_edge_point():
    # A 4 x 4 grid 50N..47N, 10W..7W; each place is exactly half a step outside one edge.
    values = np.arange(16, dtype=float).reshape(4, 4) + 280.0
    data = grib2_field("2t", RUN, 0, 50.0, -10.0, 4, 4, 1.0, values)
    edges = {"s": (46.5, -9.0), "n": (50.5, -9.0), "e": (48.0, -6.5), "w": (48.0, -10.5)}
    read = read_product(data, "p1", [Place(k, lat, lon, None) for k, (lat, lon) in edges.items()])
    got = {
        k: (v.grid_latitude, v.grid_longitude, round(v.raw_c + KELVIN, 2))
        for k, v in read.values.items()
    }
    # Before: the south place raised IndexError (row 4 of 4); the east one read 47N 10W (the
    # next row's first point) and reported it as 6W; the west one was not covered.
    assert got == {
        "s": (47.0, -9.0, 293.0),
        "n": (50.0, -9.0, 281.0),
        "e": (48.0, -7.0, 291.0),
        "w": (48.0, -10.0, 288.0),
    }


@pytest.mark.parametrize(
    "data, said",
    [
        (b"not a grib file", "no GRIB message at byte 0"),
        (product()[:-10], "cut short or corrupt"),
        (grib2_field("msl", RUN, 0, 50.0, -10.0, 4, 3, 1.0, TEMPERATURE_K * 300), "no 2t"),
    ],
)
def test_a_bad_product_fails_alone_with_its_id(data, said):
    with pytest.raises(ProductError, match=f"bad-1: .*{said}"):
        read_product(data, "bad-1", [Place("s", 49.0, -9.0, None)])
    forecasts = collect(
        [("bad-1", data), ("good", product()), ("gone", ValueError("s3: NoSuchKey"))],
        [Place("s", 49.0, -9.0, None)],
    )
    assert forecasts.products == 1 and set(forecasts.failed) == {"bad-1", "gone"}
    assert said in forecasts.failed["bad-1"]
    assert "s" in forecasts.stations


def test_a_step_without_orography_is_corrected_with_the_runs_step_0_orography():
    # The orography sent with step 0 only: before, step 6 was left raw beside a corrected
    # step 0, a 5.2 K jump between two steps of one run.
    forecasts = collect(
        [("run-0h", product(step=0)), ("run-6h", product(step=6, orography=False))],
        [Place("high", 49.0, -9.0, 1300.0)],
    )
    got = forecasts.stations["high"]
    assert list(got.raw_c - got.corrected_c) == pytest.approx([5.2, 5.2], abs=0.01)
    alone = collect([("run-6h", product(step=6, orography=False))], [Place("high", 49, -9, 1300)])
    assert "no z or orog" in alone.correction["high"]


def _rekeyed(message: bytes, **keys: object) -> bytes:
    """The message with ecCodes keys set (in the order given)."""
    import eccodes

    handle = eccodes.codes_new_from_message(message)
    try:
        eccodes.codes_set_key_vals(handle, ",".join(f"{k}={v}" for k, v in keys.items()))
        return bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


def test_geopotential_on_a_pressure_level_is_not_taken_for_the_orography():
    z500 = grib2_field("z", RUN, 6, 50.0, -10.0, 4, 3, 1.0, np.full((3, 4), 5500.0 * GRAVITY))
    z500 = _rekeyed(z500, typeOfLevel="isobaricInhPa", level=500)
    data = product(orography=False) + z500 + product()[len(product(orography=False)) :]
    read = read_product(data, "p1", [Place("s", 49.0, -9.0, 1300.0)])
    # Before: the 500 hPa height (5500 m) was the grid's orography, +27 K "corrected".
    assert read.values["s"].grid_elevation == pytest.approx(500.0, abs=0.5)
    assert read.values["s"].correction == "-5.20 K"
    alone = read_product(product(orography=False) + z500, "p1", [Place("s", 49.0, -9.0, 1300.0)])
    assert "no z or orog" in alone.values["s"].correction


@pytest.mark.parametrize(
    "second, said",
    [
        (grib2_field("2t", RUN, 12, 50.0, -10.0, 4, 3, 1.0, TEMPERATURE_K), "step 12 after step 6"),
        (
            _rekeyed(
                grib2_field("2t", RUN, 6, 50.0, -10.0, 4, 3, 1.0, TEMPERATURE_K + 3),
                productDefinitionTemplateNumber=1,
                number=7,
            ),
            "step 6, member 7 after step 6",
        ),
    ],
)
def test_a_product_with_several_2t_messages_fails_rather_than_reading_the_first(second, said):
    # An ensemble's members or several steps in one product: before, the first was read as
    # the product's forecast and the others dropped silently.
    with pytest.raises(ProductError, match=f"multi-1: more than one 2t message \\({said}"):
        read_product(product() + second, "multi-1", [Place("s", 49.0, -9.0, None)])


def test_a_corrupt_message_inside_the_grib_envelope_fails_with_the_products_id():
    data = bytearray(product(orography=False))
    data[20:60] = b"\xff" * 40  # section 1 and on: garbage with a sound length and end
    with pytest.raises(ProductError, match="broken-7"):
        read_product(bytes(data), "broken-7", [Place("s", 49.0, -9.0, None)])


def _hour(h: float) -> int:
    return int(RUN.timestamp() * 1_000_000 + h * 3_600_000_000)


def test_forecasts_come_from_the_newest_run_available_at_the_origin_interpolated():
    runs = [_hour(0)] * 3 + [_hour(12)] * 3
    valid = [_hour(0), _hour(6), _hour(12), _hour(12), _hour(18), _hour(24)]
    values = np.array([0.0, 6.0, 12.0, 100.0, 106.0, 112.0])
    station = nwp.StationForecasts(np.array(runs), np.array(valid), values, values + 1)
    # Origin 11 h: run 0 (run 12 is not out yet); lead 1 is the hour 11-12, its middle 11.5.
    got = station.at(np.array([_hour(11)]), 3, 0.0, corrected=False)
    assert got[0, 0] == pytest.approx(11.5)
    assert np.isnan(got[0, 1])  # 12.5 h is past run 0's last step
    assert station.at(np.array([_hour(12)]), 1, 0.0, corrected=True)[0, 0] == pytest.approx(101.5)
    # Published 8 h after its reference time, run 12 is not available at 13 h: run 0 ends at 12.
    assert np.isnan(station.at(np.array([_hour(13)]), 1, 8.0)[0, 0])
    assert station.at(np.array([_hour(20)]), 1, 8.0)[0, 0] == pytest.approx(109.5)
    assert np.isnan(station.at(np.array([_hour(-1)]), 1, 0.0)[0, 0])  # before any run


def test_by_default_a_run_is_used_only_once_ecmwf_open_data_has_published_it():
    # ECMWF's dissemination schedule plus the open data's hour: steps 0-144 out 7:27 after the
    # reference time. By default neither training, nor the card's NWP baseline, sees a run
    # before 8 h; at 7 h the origin still gets the run before.
    assert nwp.DEFAULT_AVAILABLE_AFTER_HOURS == 8.0
    runs = [_hour(0)] * 2 + [_hour(12)] * 2
    valid = [_hour(18), _hour(24), _hour(18), _hour(24)]
    values = np.array([0.0, 6.0, 100.0, 106.0])
    station = nwp.StationForecasts(np.array(runs), np.array(valid), values, values)
    at = station.at(np.array([_hour(19), _hour(20)]), 1)
    assert at[0, 0] == pytest.approx(1.5) and at[1, 0] == pytest.approx(102.5)
    forecasts = collect([("p", product())], [Place("s", 49.0, -9.0, None)])
    assert forecasts.available_after_hours == 8.0
    assert forecasts.describe()["available_after_hours"] == 8.0


# sha256 of the features, anchor, target and mask of build_samples on this data, recorded with
# the code before NWP input existed: without forecasts the model sees exactly what it saw.
BEFORE_NWP = "7d8def1d3c241a349609bb125c3dfa04bb27ae0731d6b941ce00079da231632b"


def test_without_forecasts_the_inputs_are_unchanged_bit_for_bit():
    spec = SyntheticSpec(stations=2, days=10)
    series = to_hourly(pa.concat_tables([t for _, t in generate(spec)]))
    fs = fit_normalization(FeatureSpec(), [s.values for s in series.values()])
    samples = build_samples(fs, series, scenes=scenes(spec))
    digest = hashlib.sha256()
    for part in (samples.features, samples.anchor, samples.target, samples.target_known):
        digest.update(np.ascontiguousarray(part).tobytes())
    assert digest.hexdigest() == BEFORE_NWP
    assert "nwp" not in fs.to_dict() and fs.n_features == 247


def test_the_contract_refuses_inputs_a_model_was_not_trained_on():
    spec = FeatureSpec(context_hours=2, horizon_hours=2)
    context = np.zeros((1, 2, 5))
    args = (context, np.array([_hour(0)]), np.array([0.0]), np.array([np.nan]), np.array([np.nan]))
    with pytest.raises(NwpInputError, match="trained without them"):
        encode(spec, *args, nwp_temperature=np.zeros((1, 2)))
    with_nwp = FeatureSpec(context_hours=2, horizon_hours=2, nwp=True)
    with pytest.raises(NwpInputError, match="none were supplied"):
        encode(with_nwp, *args)
    encoded = encode(with_nwp, *args, nwp_temperature=np.array([[1.0, np.nan]]))
    assert encoded.features.shape[1] == with_nwp.n_features == spec.n_features + 4
    assert FeatureSpec.from_dict(with_nwp.to_dict()).nwp


def _nwp_samples(n: int = 64, horizon: int = 2) -> tuple[FeatureSpec, Samples]:
    """Samples whose temperature targets are exactly their NWP forecasts (lead 2 has none in
    the odd rows: its target is then the anchor), precipitation not observed."""
    spec = FeatureSpec(context_hours=2, horizon_hours=horizon, nwp=True, std=[2.0] * 5)
    rng = np.random.default_rng(3)
    context = rng.normal(10.0, 3.0, (n, 2, 5))
    forecast = context[:, -1:, 0] + rng.normal(0.0, 2.0, (n, horizon))
    forecast[1::2, 1] = np.nan
    origins = np.array([_hour(k) for k in range(n)])
    nan = np.full(n, np.nan)
    enc = encode(spec, context, origins, nan, nan, nan, nwp_temperature=forecast)
    target = np.stack([np.where(np.isnan(forecast), enc.anchor[:, :1], forecast)] * 2, axis=-1)
    known = np.zeros(target.shape, dtype=bool)
    known[:, :, 0] = True
    samples = Samples(
        enc.features, enc.anchor, target.astype(np.float32), known,
        np.array(["s"] * n, dtype=object), origins,
    )  # fmt: skip
    return spec, samples


def test_a_model_with_nwp_input_corrects_the_nwp_and_starts_as_it():
    spec, samples = _nwp_samples()
    net = NetConfig.for_spec(spec, hidden=8)
    assert net.nwp_base and net.to_dict()["nwp_base"] is True
    assert "nwp_base" not in NetConfig.for_spec(replace(spec, nwp=False)).to_dict()
    said = predict(StationForecaster(net), samples.features, samples.anchor, torch.device("cpu"))
    # Untrained: the NWP for each lead hour with one, persistence (the anchor) without.
    np.testing.assert_allclose(said[:, :, 0], samples.target[:, :, 0], atol=1e-4)


def test_training_keeps_the_nwp_itself_where_no_epoch_beats_it_on_validation():
    spec, samples = _nwp_samples()
    net = NetConfig.for_spec(spec, hidden=8)
    config = TrainConfig(epochs=3, patience=2, batch_size=16)
    model, report = fit(samples, net, config, torch.device("cpu"), samples)
    assert report.best_epoch == 0 and report.best_validation_loss == 0.0
    said = predict(model, samples.features, samples.anchor, torch.device("cpu"))
    np.testing.assert_allclose(said[:, :, 0], samples.target[:, :, 0], atol=1e-4)


def test_the_publication_delay_is_a_training_option_and_is_bounded(settings, monkeypatch, capsys):
    assert TrainConfig().nwp_available_after_hours == nwp.DEFAULT_AVAILABLE_AFTER_HOURS
    monkeypatch.setenv("INFER_BUCKET", settings.bucket)
    monkeypatch.setenv("INFER_S3_ENDPOINT_URL", settings.s3_endpoint_url)
    assert main(["train", "--nwp-available-after-hours", "-1"]) == 2
    assert "nwp_available_after_hours: -1.0 given; 0 to 48 allowed" in capsys.readouterr().err


def test_two_ingested_sources_are_not_mixed_and_an_ensemble_spread_is_not_read(settings):
    # IFS and AIFS runs at the same times (AIFS 5 K warmer), and the ensemble's 2t spread (es,
    # 1-3 K): before, all were read as one forecast, the colder value kept at each step (sorted)
    # and the spread read as -271 degC where it sorted first.
    client = s3_client(settings)
    series = to_hourly(next(iter(generate(SyntheticSpec(stations=1, days=2))))[1])
    name, st = next(iter(series.items()))
    lat0, lon0 = round(st.latitude) + 1.0, round(st.longitude) - 1.0
    fields = {"ifs-0p25-oper-fc": 0.0, "aifs-0p25-oper-fc": 5.0, "ifs-0p25-enfo-es": -280.0}
    for source, offset in fields.items():
        model, _, stream, kind = source.split("-")
        steps = (0, 6, 12) if model == "ifs" else (0, 6)
        for step in steps:
            item = f"{source}-2026010112-{step}h-2t"
            body = grib2_field("2t", RUN, step, lat0, lon0, 4, 3, 1.0, TEMPERATURE_K + offset)
            key = f"sentinel/ecmwf-{model}-{stream}-{kind}/{item}/data.grib2"
            client.put_object(Bucket=settings.bucket, Key=key, Body=body)
    forecasts = ingested_forecasts(client, settings.bucket, series)
    assert forecasts is not None and forecasts.products == 3 and forecasts.models == ["ifs"]
    assert set(forecasts.stations[name].raw_c) <= set(TEMPERATURE_K.ravel() - KELVIN)
    described = forecasts.describe()["sources_not_read"]
    assert sorted(described) == ["aifs-0p25-oper-fc", "ifs-0p25-enfo-es"]
    assert "type es" in described["ifs-0p25-enfo-es"]
    assert "ifs-0p25-oper-fc (the most products)" in described["aifs-0p25-oper-fc"]
    card = nwp_text({"nwp": {"status": "none", "reason": "r", "source": forecasts.describe()}})
    assert "Ingested but not read: aifs-0p25-oper-fc (2 product(s) not read" in card


@pytest.mark.parametrize("given", ["true", '"3.5"', "NaN", "1e400", "[1]"])
def test_a_forecast_lead_is_a_json_number_or_null(given):
    # Before, true and "3.5" were read as 1 and 3.5 degC forecasts.
    body = (
        '{"station": "a", "issued_at": "2026-01-01T00:00:00Z", "observations": '
        '[{"time": "2025-12-31T23:00:00Z", "air_temperature": 1.0}], "forecast": [2, null, '
        + given
        + "]}"
    )
    with pytest.raises(ValidationError) as raised:
        PredictionRequest.model_validate_json(body)
    assert [e["loc"][:2] for e in raised.value.errors()] == [("forecast", 2)]
    good = PredictionRequest.model_validate_json(body.replace(given, "3.5"))
    assert good.forecast == [2.0, None, 3.5]


def test_a_served_forecast_is_encoded_as_training_encodes_it_to_the_last_bit(small_data):
    # The JSON `forecast` a client sends (the corrected values at the middle of each lead
    # hour, full precision) becomes the same model inputs (float32) as in training, bit for bit.
    series = small_data.series
    read = collect(
        products(
            series, ErrorModel(run_every_hours=12, steps=(0, 6, 12, 18, 24), grid_degrees=0.5)
        ),
        nwp.places(series),
    )
    spec = FeatureSpec(nwp=True)
    samples = build_samples(spec, series, forecasts=read.stations)
    row = len(samples) // 2
    station, origin_us = str(samples.station[row]), int(samples.origin_us[row])
    forecast = read.stations[station].at(np.array([origin_us]), spec.horizon_hours)[0]
    assert not np.isnan(forecast).all()
    origin = datetime.fromtimestamp(origin_us / 1e6, UTC)
    body = request_for(series, station, origin)
    body["forecast"] = [None if np.isnan(v) else float(v) for v in forecast]
    request = PredictionRequest.model_validate_json(json.dumps(body))
    served = encode_requests(spec, [request])
    assert served.features[0].tobytes() == samples.features[row].tobytes()
