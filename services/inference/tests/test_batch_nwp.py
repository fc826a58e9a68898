"""Batch runs of a model trained with NWP input: the site's ingested ECMWF forecasts (synthetic
GRIB2 written with ecCodes, in the bucket where ingestion puts them, S3 on loopback) are read per
station and origin as training reads them, and the run's forecasts are the ones training's own
samples give; a station and hour without a forecast get the model's rule for none."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow.parquet as pq
import torch
from fedeploy_inference.batch import Area, _available_after_hours, run_batch
from fedeploy_inference.features import build_samples
from fedeploy_inference.registry import publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.synthetic_nwp import ErrorModel, products
from fedeploy_inference.train_from_store import ingested_forecasts, usable_runs
from fedeploy_inference.training import TrainConfig, predict, train
from fedeploy_inference.window_store import write_windows

from tests.samples import DATA

COLLECTION = "sentinel/ecmwf-ifs-oper-fc"
ERRORS = ErrorModel(run_every_hours=12, steps=(0, 6, 12, 18, 24), grid_degrees=0.5)
START, END = datetime(2026, 2, 22, tzinfo=UTC), datetime(2026, 2, 23, 12, tzinfo=UTC)
# No run from 2026-02-21 00 UTC to 2026-02-22 00 UTC: the run of 2026-02-20 12 UTC (usable from
# 20 UTC, steps to 24 h) reaches lead hours until 2026-02-21 12 UTC, so the period's first hours
# have no forecast at all and the next run (2026-02-22 12 UTC) is usable from 20 UTC.
GAP = (datetime(2026, 2, 21, tzinfo=UTC), datetime(2026, 2, 22, 0, tzinfo=UTC))


def _run_time(item: str) -> datetime:
    return datetime.strptime(item.rsplit("-", 3)[1], "%Y%m%d%H").replace(tzinfo=UTC)


def test_a_batch_run_feeds_an_nwp_model_the_ingested_forecasts(settings, small_data):
    client = s3_client(settings)
    write_windows(client, settings.bucket, small_data.windows)
    series = small_data.series
    for item, body in products(series, ERRORS):
        if not GAP[0] <= _run_time(item) <= GAP[1]:
            key = f"{COLLECTION}/{item}/data.grib2"
            client.put_object(Bucket=settings.bucket, Key=key, Body=body)
    read = ingested_forecasts(client, settings.bucket, series)
    assert read is not None and sorted(read.stations) == ["syn-000", "syn-001", "syn-002"]
    config = TrainConfig(epochs=3, patience=2, hidden=32, nwp_input=True)
    result = train(series, config, torch.device("cpu"), forecasts=read)
    assert result.spec.nwp
    data = {**DATA, "train_config": {"nwp_available_after_hours": 8.0}}
    publish(client, settings.bucket, settings.model_name, result, data)

    # Stations sit at 5, 10 and 15 degE: this box holds the first two.
    outcome = run_batch(settings, Area(4.0, 40.0, 11.0, 55.0), START, END)
    assert (outcome.stations, outcome.nwp_stations) == (2, 2)
    table = pq.read_table(
        io.BytesIO(client.get_object(Bucket=settings.bucket, Key=outcome.key)["Body"].read())
    )
    got = {
        (r["station"], int(r["issued_at"].timestamp() * 1e6), r["lead_hours"]): r
        for r in table.to_pylist()
    }

    # Training's own samples over the period (build_samples with the same forecasts: the newest
    # run published 8 h before each origin) through the trained network: the same numbers.
    start_us, end_us = int(START.timestamp() * 1e6), int(END.timestamp() * 1e6)
    samples = build_samples(
        result.spec,
        {k: v for k, v in series.items() if k != "syn-002"},
        start_us,
        end_us,
        forecasts=read.stations,
    )
    assert len(samples) > 2 * 30
    expected = predict(result.model, samples.features, samples.anchor, torch.device("cpu"))
    h = result.spec.horizon_hours
    flags = samples.features[:, -3 - h : -3]  # the has-a-forecast flags, before the scene's 3
    assert not flags[:8].any() and flags.all(axis=1).any(), "hours without and with NWP"
    for k in range(len(samples)):
        for lead in range(h):
            row = got[(str(samples.station[k]), int(samples.origin_us[k]), lead + 1)]
            # As the other batch test: the network run on other batch shapes (per station).
            assert abs(row["air_temperature"] - float(expected[k, lead, 0])) < 1e-4
    # Without a forecast the model's rule for none (flags 0) applies: still forecast.
    no_nwp = [k for k in range(len(samples)) if not flags[k].any()]
    assert no_nwp and all(
        got[(str(samples.station[k]), int(samples.origin_us[k]), 1)]["air_temperature"] is not None
        for k in no_nwp
    )
    # The outcome counts the station-hours with and without NWP as training's samples have it.
    assert len(got) == len(samples) * h
    assert (outcome.nwp_station_hours, outcome.nwp_station_hours_without) == (
        len(samples) - len(no_nwp),
        len(no_nwp),
    )
    assert outcome.nwp_failed_products == 0


def test_only_the_runs_a_period_reads_are_chosen():
    items = [
        f"ifs-0p5-oper-fc-{run:%Y%m%d%H}-{step}h-2t_z"
        for run in (datetime(2026, 2, 20, tzinfo=UTC) + timedelta(hours=12 * i) for i in range(6))
        for step in (0, 6, 24)
    ]
    start, end = datetime(2026, 2, 21, 9, tzinfo=UTC), datetime(2026, 2, 22, 9, tzinfo=UTC)
    chosen = {_run_time(i) for i in usable_runs(items, (start, end), 8.0)}
    # Every run reaching 09 UTC on the 21st (its 24 h step) and usable before the end: the run
    # of 12 UTC on the 20th (where the runs after it cannot be read, training's reader falls
    # back to it) up to 00 UTC on the 22nd (usable from 08 UTC); 12 UTC on the 22nd only from
    # 20 UTC, and 00 UTC on the 20th reaches 00 UTC on the 21st only.
    assert chosen == {
        datetime(2026, 2, 20, 12, tzinfo=UTC) + timedelta(hours=12 * i) for i in range(4)
    }
    # A run's reach is its longest step: with steps to 6 h only, the run of 00 UTC on the 21st
    # (to 06 UTC) is not read either.
    short = [i for i in items if "-24h-" not in i]
    assert {_run_time(i) for i in usable_runs(short, (start, end), 8.0)} == {
        datetime(2026, 2, 21, 12, tzinfo=UTC),
        datetime(2026, 2, 22, 0, tzinfo=UTC),
    }
    assert usable_runs(["odd-item"], (start, end), 8.0) == ["odd-item"]


# Runs every 12 h with steps to 48 h; the run of 2026-02-21 12 UTC, the newest usable at START
# (from 20 UTC), is corrupt in all its products.
STEPS_TO_48 = ErrorModel(run_every_hours=12, steps=tuple(range(0, 49, 6)), grid_degrees=0.5)
CORRUPT = datetime(2026, 2, 21, 12, tzinfo=UTC)


def _bucket_with_a_corrupt_run(settings, small_data):
    """The bucket with the runs from three days before START to END, CORRUPT's unreadable."""
    client = s3_client(settings)
    for item, body in products(small_data.series, STEPS_TO_48):
        if START - timedelta(days=3) <= _run_time(item) < END:
            corrupt = _run_time(item) == CORRUPT
            key = f"{COLLECTION}/{item}/data.grib2"
            client.put_object(
                Bucket=settings.bucket, Key=key, Body=b"GRIB" + b"\0" * 100 if corrupt else body
            )
    return client


def test_a_batch_reads_the_run_before_an_unreadable_one_as_training_does(settings, small_data):
    client = _bucket_with_a_corrupt_run(settings, small_data)
    series = small_data.series
    training = ingested_forecasts(client, settings.bucket, series)
    batch = ingested_forecasts(client, settings.bucket, series, False, 8.0, (START, END))
    assert training is not None and batch is not None
    assert len(batch.failed) == 9 and all(f"{CORRUPT:%Y%m%d%H}" in i for i in batch.failed)
    assert batch.products < training.products  # only the runs that can reach the period
    start_us, end_us = int(START.timestamp() * 1e6), int(END.timestamp() * 1e6)
    origins = np.arange(start_us, end_us, 3_600_000_000, dtype=np.int64)
    assert sorted(batch.stations) == sorted(training.stations)
    for station, own in training.stations.items():
        want = own.at(origins, 24, 8.0)
        np.testing.assert_array_equal(batch.stations[station].at(origins, 24, 8.0), want)
        # The first hours read the run of 00 UTC on the 21st (CORRUPT's is none).
        assert not np.isnan(want[0]).any()


def test_the_publication_delay_is_the_versions_own(settings):
    client = s3_client(settings)
    key = f"models/{settings.model_name}/v1/data.json"
    client.put_object(
        Bucket=settings.bucket, Key=key, Body=b'{"train_config": {"nwp_available_after_hours": 12}}'
    )
    assert _available_after_hours(client, settings.bucket, settings.model_name, "v1") == 12.0
    # Not recorded, or no data.json: the default (ECMWF open data's), as training's.
    client.put_object(Bucket=settings.bucket, Key=key, Body=b"{}")
    assert _available_after_hours(client, settings.bucket, settings.model_name, "v1") == 8.0
    assert _available_after_hours(client, settings.bucket, settings.model_name, "v2") == 8.0


def test_a_batch_run_logs_and_counts_the_products_it_could_not_read(settings, small_data, caplog):
    client = _bucket_with_a_corrupt_run(settings, small_data)
    write_windows(client, settings.bucket, small_data.windows)
    read = ingested_forecasts(client, settings.bucket, small_data.series)
    config = TrainConfig(epochs=1, patience=1, hidden=16, nwp_input=True)
    result = train(small_data.series, config, torch.device("cpu"), forecasts=read)
    data = {**DATA, "train_config": {"nwp_available_after_hours": 8.0}}
    publish(client, settings.bucket, settings.model_name, result, data)
    with caplog.at_level(logging.INFO, logger="fedeploy_inference.batch"):
        outcome = run_batch(settings, Area(4.0, 40.0, 11.0, 55.0), START, END)
    # The corrupt run's 9 products are counted and named with their reason; every hour of the
    # period still has a forecast (from the run before), 36 origins at 2 stations.
    assert outcome.nwp_failed_products == 9
    assert (outcome.nwp_station_hours, outcome.nwp_station_hours_without) == (72, 0)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    (failed,) = [m for m in warned if "could not be read" in m]
    assert failed.startswith("NWP input: 9 product(s)") and f"{CORRUPT:%Y%m%d%H}-0h" in failed
    assert "and 6 more" in failed
    assert any("72 of 72 station-hours" in r.getMessage() for r in caplog.records)
