"""Scores that show the truth (per station and lead hour, with counts), training that keeps its
best validation epoch, and samples that never straddle a gap or a declared discontinuity."""

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch
from fedeploy_inference import plot
from fedeploy_inference.evaluation import Climatology, compare
from fedeploy_inference.features import FeatureSpec, Samples, build_samples
from fedeploy_inference.hourly import StationSeries
from fedeploy_inference.model import NetConfig
from fedeploy_inference.model_card import dataset_title
from fedeploy_inference.registry import publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.train_from_store import DATASET_KEY, describe_dataset, record_dataset
from fedeploy_inference.training import TrainConfig, _Tensors, _validation_loss, fit

HOUR = 3_600_000_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def _samples(stations, target, anchor):
    n = len(stations)
    return Samples(
        features=np.zeros((n, FeatureSpec().n_features), np.float32),
        anchor=np.asarray(anchor, np.float32),
        target=np.asarray(target, np.float32),
        target_known=~np.isnan(np.asarray(target)),
        station=np.asarray(stations, dtype=object),
        origin_us=np.arange(n, dtype=np.int64) * HOUR,
    )


def test_scores_per_station_and_lead_hour_with_counts():
    nan = np.nan
    # Station a: temperature and rain at both leads; station b: no rain observed at all.
    target = [
        [[1.0, 0.0], [2.0, 1.0]],
        [[1.0, 0.0], [2.0, 0.0]],
        [[5.0, nan], [6.0, nan]],
    ]
    samples = replace(
        _samples(["a", "a", "b"], np.nan_to_num(target), [[0.0, 0.0]] * 3),
        target_known=~np.isnan(np.asarray(target)),
    )
    model = np.array([[[1.0, 0.0], [2.0, 0.5]], [[1.0, 0.0], [2.0, 0.0]], [[5.0, 9.0], [6.0, 9.0]]])
    clim = Climatology({"a": np.zeros(24), "b": np.full(24, 5.0)}, {"a": 0.0, "b": 0.0})
    metrics = compare(model, samples, clim, FeatureSpec(horizon_hours=2))
    a, b = metrics["by_station"]["a"], metrics["by_station"]["b"]
    assert a["air_temperature"]["count"] == 4 and a["precipitation"]["count"] == 4
    assert a["air_temperature"]["rmse"]["model"] == 0.0
    assert b["precipitation"] == {"count": 0}, "never observed: nothing scored, the 9s unseen"
    assert b["air_temperature"]["count"] == 2
    assert metrics["scores"]["model"]["precipitation"]["count_by_lead_hour"] == [2, 2]
    by_lead = metrics["skill_by_lead_hour"]
    assert by_lead["persistence"]["air_temperature"] == [1.0, 1.0]
    # Persistence (0 mm) is perfect for rain at lead 1: no skill is measurable there.
    assert by_lead["persistence"]["precipitation"][0] is None
    assert by_lead["climatology"]["precipitation"][1] == pytest.approx(0.5, abs=1e-3)


def _series(values, breaks=()):
    return StationSeries("s", START, values, 5.0, 45.0, None)


def _flat(hours):
    values = np.full((hours, 5), np.nan)
    values[:, 0] = np.sin(np.arange(hours) / 5.0) + 10.0
    values[:, 4] = 0.0
    return values


def test_no_sample_spans_an_hour_without_observations():
    spec = FeatureSpec(context_hours=4, horizon_hours=2, anchor_hours=2)
    values = _flat(40)
    values[20] = np.nan  # one empty hour: a hole of more than an hour between observations
    samples = build_samples(spec, {"s": _series(values)})
    hole_us = int((START + timedelta(hours=20)).timestamp() * 1e6)
    first = samples.origin_us - spec.context_hours * HOUR
    last = samples.origin_us + spec.horizon_hours * HOUR
    assert not ((first <= hole_us) & (hole_us < last)).any()
    # 40 hours give 35 windows of 6; the 6 that hold hour 20 are gone.
    assert len(samples) == 35 - 6


def test_no_sample_straddles_a_declared_discontinuity():
    spec = FeatureSpec(context_hours=4, horizon_hours=2, anchor_hours=2)
    cut = int((START + timedelta(hours=20)).timestamp() * 1e6)
    samples = build_samples(spec, {"s": _series(_flat(40))}, breaks={"s": [cut]})
    first = samples.origin_us - spec.context_hours * HOUR
    last = samples.origin_us + spec.horizon_hours * HOUR
    assert not ((first < cut) & (cut < last)).any()
    assert len(samples) == 35 - 5, "windows ending at hour 19 or starting at 20 are kept"


def test_early_stopping_keeps_the_best_validation_epoch(small_data):
    spec = FeatureSpec()
    series = small_data.series
    cut = int((min(s.start for s in series.values()) + timedelta(days=40)).timestamp() * 1e6)
    train_set = build_samples(spec, series, origin_to_us=cut - 6 * HOUR)
    validation = build_samples(spec, series, origin_from_us=cut)
    net = NetConfig.for_spec(spec, hidden=16, layers=1)
    config = TrainConfig(epochs=12, patience=2, learning_rate=3e-2, batch_size=512)
    model, report = fit(train_set, net, config, torch.device("cpu"), validation)
    losses = report.validation_losses
    assert report.epochs_run == len(losses) <= config.epochs
    assert report.best_epoch == int(np.argmin(losses)) + 1
    if report.epochs_run < config.epochs:
        assert report.epochs_run - report.best_epoch == config.patience
    kept = _validation_loss(model, _Tensors.of(validation, net, torch.device("cpu")))
    assert kept == pytest.approx(min(losses), rel=1e-4), "the best epoch's weights are kept"


def test_training_records_its_validation_period_and_chosen_epoch(trained):
    chosen = trained.selection
    assert 1 <= chosen["best_epoch"] <= chosen["epochs_run"] <= chosen["max_epochs"]
    assert chosen["validation_samples"] > 0
    validation_start = datetime.fromisoformat(chosen["validation_start"])
    assert trained.period[0] < validation_start < trained.split


def test_card_and_plot_name_the_data_and_say_synthetic(settings, trained, monkeypatch):
    titles = []
    original = plot.forecast_plot

    def spy(samples, forecast, lead, title, **context):
        titles.append(title)
        return original(samples, forecast, lead, title, **context)

    monkeypatch.setattr(plot, "forecast_plot", spy)
    data = {
        "source": "s3://b/observations/",
        "name": "fedeploy demo set",
        "synthetic": True,
        "windows": 1,
        "rows": 1,
        "stations": ["syn-000"],
        "period": {"start": "2026-01-01", "end": "2026-03-01"},
        "samples": {"train": 1, "test": 1},
    }
    client = s3_client(settings)
    version = publish(client, settings.bucket, settings.model_name, trained, data)
    key = f"models/{settings.model_name}/{version}/model-card.md"
    card = client.get_object(Bucket=settings.bucket, Key=key)["Body"].read().decode()
    assert titles and titles[0].startswith("fedeploy demo set (synthetic)")
    assert "**fedeploy demo set (synthetic)**" in card
    assert f"best validation loss at epoch {trained.selection['best_epoch']}" in card
    assert "| syn-000 | air_temperature |" in card and "### Skill by lead hour" in card
    # Every card carries the real-data figures of its code version.
    assert "## On measured station data" in card
    assert "| tmy2-12839-miami | precipitation | 0 | not forecast: never reported" in card
    assert dataset_title({"name": "TMY3", "synthetic": False}) == "TMY3"
    # A name that says synthetic already is not marked twice (review 34, P3).
    named = {"name": "fedeploy synthetic set", "synthetic": True}
    assert dataset_title(named) == "fedeploy synthetic set"


def test_dataset_description_round_trips_and_bad_ones_are_named(settings):
    client = s3_client(settings)
    assert describe_dataset(client, settings.bucket) == {}
    record_dataset(client, settings.bucket, "pvlib TMY3", False, {"gso": ["2026-02-01T06:00:00Z"]})
    cut = int(datetime(2026, 2, 1, 6, tzinfo=UTC).timestamp() * 1e6)
    assert describe_dataset(client, settings.bucket) == {
        "name": "pvlib TMY3",
        "synthetic": False,
        "breaks": {"gso": [cut]},
    }
    bad = b'{"name": "x", "synthetic": false, "discontinuities": {"gso": ["Feb 1"]}}'
    client.put_object(Bucket=settings.bucket, Key=DATASET_KEY, Body=bad)
    with pytest.raises(ValueError, match=r"discontinuities\.gso\[0\] is 'Feb 1'"):
        describe_dataset(client, settings.bucket)
    client.put_object(Bucket=settings.bucket, Key=DATASET_KEY, Body=b'{"name": 3}')
    with pytest.raises(ValueError, match=re.escape(DATASET_KEY) + ".*boolean"):
        describe_dataset(client, settings.bucket)


def test_balanced_stations_weigh_a_calm_station_as_much_as_a_stormy_one():
    # Station calm changes by 1 degC from persistence, stormy by 3: weights 9x apart.
    target = np.zeros((4, 1, 2), np.float32)
    target[:2, 0, 0], target[2:, 0, 0] = 1.0, 3.0
    samples = _samples(["calm", "calm", "stormy", "stormy"], target, [[0.0, 0.0]] * 4)
    net = NetConfig(n_features=4, horizon_hours=1)
    plain = _Tensors.of(samples, net, torch.device("cpu"))
    balanced = _Tensors.of(samples, net, torch.device("cpu"), balance=True)
    assert plain.known[:, 0, 0].tolist() == [1.0, 1.0, 1.0, 1.0]
    w = balanced.known[:, 0, 0]
    assert float(w[0] / w[2]) == pytest.approx(9.0)
    assert float((w * torch.tensor([1.0, 1.0, 9.0, 9.0])).std()) == pytest.approx(0.0, abs=1e-5)
