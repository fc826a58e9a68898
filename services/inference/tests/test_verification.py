"""Station verification scores checked on hand-computed examples: the precipitation events'
contingency table and scores, mean error (bias), diurnal persistence, and the block bootstrap
(reproducible with its seed)."""

from datetime import UTC, datetime

import numpy as np
import pytest
import torch
from fedeploy_inference.evaluation import (
    Climatology,
    _Blocks,
    compare,
    diurnal_persistence_forecast,
    events,
    scores,
)
from fedeploy_inference.features import FeatureSpec, Samples, build_samples
from fedeploy_inference.hourly import StationSeries
from fedeploy_inference.model import NetConfig, StationForecaster
from fedeploy_inference.model_card import render_model_card
from fedeploy_inference.verification import (
    Bootstrap,
    Contingency,
    calibrate_dry_threshold,
    day_blocks,
    difference_interval,
    interval,
    rmse_difference,
    rmse_skill,
)

HOUR = 3_600_000_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def test_contingency_table_and_event_scores_by_hand():
    forecast = np.array([0.0, 0.2, 1.5, 0.05, 2.0, 0.0, 5.0])
    observed = np.array([0.0, 0.1, 0.0, 0.3, 1.2, 0.0, 5.0])
    known = np.array([True] * 6 + [False])  # the last value is not scored
    # >= 0.1: hits at 1 and 4, a false alarm at 2, a miss at 3, correct negatives at 0 and 5.
    low = Contingency.of(forecast, observed, known, 0.1)
    assert (low.hits, low.false_alarms, low.misses, low.correct_negatives) == (2, 1, 1, 2)
    assert low.hit_rate == pytest.approx(2 / 3)
    assert low.false_alarm_ratio == pytest.approx(1 / 3)
    assert low.frequency_bias == pytest.approx(1.0)
    # a_r = (2 + 1)(2 + 1) / 6 = 1.5; ETS = (2 - 1.5) / (2 + 1 + 1 - 1.5) = 0.2
    assert low.equitable_threat_score == pytest.approx(0.2)
    high = Contingency.of(forecast, observed, known, 1.0)
    assert (high.hits, high.false_alarms, high.misses, high.correct_negatives) == (1, 1, 0, 4)
    # a_r = 2 x 1 / 6 = 1/3; ETS = (1 - 1/3) / (2 - 1/3) = 0.4
    assert high.to_dict() == {
        "hits": 1,
        "false_alarms": 1,
        "misses": 0,
        "correct_negatives": 4,
        "hit_rate": 1.0,
        "false_alarm_ratio": 0.5,
        "frequency_bias": 2.0,
        "equitable_threat_score": 0.4,
    }


def test_event_scores_are_none_where_nothing_happened():
    dry = Contingency.of(np.zeros(5), np.zeros(5), np.ones(5, bool), 0.1)
    assert dry.correct_negatives == 5
    assert dry.hit_rate is None and dry.false_alarm_ratio is None
    assert dry.frequency_bias is None and dry.equitable_threat_score is None


def _samples(target, known=None):
    target = np.asarray(target, float)
    n = target.shape[0]
    return Samples(
        features=np.zeros((n, FeatureSpec().n_features), np.float32),
        anchor=np.zeros((n, 2), np.float32),
        target=target.astype(np.float32),
        target_known=np.ones(target.shape, bool) if known is None else np.asarray(known),
        station=np.array(["a"] * n, dtype=object),
        origin_us=np.arange(n, dtype=np.int64) * HOUR,
    )


def test_dry_threshold_is_the_amount_that_scores_best_on_validation():
    forecast = np.array([0.2, 0.3, 0.05, 1.2])
    observed = np.array([0.0, 0.5, 0.0, 1.5])
    known = np.ones(4, bool)
    # Nothing zeroed: a=2, b=1 (the 0.2), c=0, d=1; a_r = 3 x 2 / 4 = 1.5, ETS = 0.5 / 1.5.
    # Below 0.25 zeroed: a=2, b=0, c=0, d=2; a_r = 1, ETS = 1 / 1 = 1, first reached at 0.25.
    # Below 0.35 zeroed: the 0.3 becomes a miss, ETS = 0.5 / 1.5 again.
    assert calibrate_dry_threshold(forecast, observed, known) == 0.25
    assert calibrate_dry_threshold(np.zeros(4), np.zeros(4), known) == 0.0, "nothing measurable"


def test_the_network_gives_amounts_below_its_dry_threshold_as_zero():
    net = NetConfig(n_features=3, horizon_hours=2, dry_below_mm=0.5)
    model = StationForecaster(net)
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    anchor = torch.tensor([[10.0, 0.3], [10.0, 0.7]])
    out = model(torch.zeros(2, 3), anchor)
    assert out[:, :, 1].flatten().tolist() == pytest.approx([0.0, 0.0, 0.7, 0.7])
    assert out[:, :, 0].flatten().tolist() == pytest.approx([10.0] * 4)


def test_mean_error_is_the_bias_per_lead_and_overall():
    samples = _samples(
        [[[10.0, 0.0], [12.0, 1.0]], [[8.0, 0.0], [9.0, 2.0]]],
        known=[[[True, True], [True, True]], [[True, True], [False, True]]],
    )
    forecast = np.array([[[11.0, 0.0], [11.0, 0.5]], [[9.0, 1.0], [99.0, 2.0]]])
    got = scores(forecast, samples)["air_temperature"]
    # Errors: +1, -1 (lead 2), +1; the 99 is not scored.
    assert got["bias"] == pytest.approx(1 / 3)
    assert got["bias_by_lead_hour"] == [1.0, -1.0]
    assert got["mae"] == pytest.approx(1.0) and got["rmse"] == pytest.approx(1.0)
    rain = scores(forecast, samples)["precipitation"]
    # Errors: 0, -0.5, +1, 0: bias 0.125, MAE 0.375, RMSE sqrt(1.25 / 4).
    assert rain["bias"] == pytest.approx(0.125)
    assert rain["mae"] == pytest.approx(0.375)
    assert rain["rmse"] == pytest.approx(np.sqrt(1.25 / 4))


def test_diurnal_persistence_is_the_same_hour_yesterday():
    spec = FeatureSpec(
        context_hours=24, horizon_hours=2, anchor_hours=2, mean=[10.0] * 5, std=[2.0] * 5
    )
    values = np.full((27, 5), np.nan)
    values[:, 0] = np.arange(27) + 0.5  # temperature: the bin's index + 0.5
    values[:, 4] = 0.0
    values[1, 4] = 0.7  # rain 23 h before the first origin's second lead hour
    values[1, 0] = np.nan  # and no temperature then: persistence stands in
    samples = build_samples(spec, {"s": StationSeries("s", START, values, None, None, None)})
    first = samples.origin_us == int(START.timestamp() * 1e6) + 24 * HOUR
    got = diurnal_persistence_forecast(samples, spec)[first][0]
    # Lead 1 forecasts bin 24: yesterday is bin 0 (0.5). Lead 2 forecasts bin 25: bin 1 has no
    # temperature, so the anchor (bin 23, 23.5) stands in; its rain (0.7) is yesterday's.
    assert got.ravel().tolist() == pytest.approx([0.5, 0.0, 23.5, 0.7], abs=1e-5)
    with pytest.raises(ValueError, match="at least 24 h"):
        diurnal_persistence_forecast(samples, FeatureSpec(context_hours=12))


def test_bootstrap_interval_by_hand_with_given_weights():
    model_sse, baseline_sse = np.array([1.0, 4.0]), np.array([4.0, 4.0])
    weights = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    # Skills: 1 - sqrt(2/8) = 0.5, 1 - sqrt(8/8) = 0, 1 - sqrt(5/8) = 0.2094; the central 50 %
    # of [0, 0.2094, 0.5] by linear interpolation: [0.1047, 0.3547].
    got = interval(rmse_skill, [model_sse, baseline_sse], weights, 0.5)
    assert got == pytest.approx([0.1047, 0.3547], abs=1e-4)
    # RMSE differences, 2 values per block: sqrt(2/4) - sqrt(8/4) = -0.7071, 0, and
    # sqrt(5/4) - sqrt(8/4) = -0.2962; the central 50 %: [-0.5016, -0.1481].
    counts = np.array([2.0, 2.0])
    diff = interval(rmse_difference, [model_sse, baseline_sse, counts], weights, 0.5)
    assert diff == pytest.approx([-0.5016, -0.1481], abs=1e-4)


def test_bootstrap_is_reproducible_with_its_seed_and_draws_whole_blocks():
    first, again = (
        Bootstrap(resamples=50, seed=3).weights(7),
        Bootstrap(resamples=50, seed=3).weights(7),
    )
    assert np.array_equal(first, again)
    assert not np.array_equal(first, Bootstrap(resamples=50, seed=4).weights(7))
    assert (first.sum(axis=1) == 7).all()
    # Stations a and b at hours 0, 23, 24 and 0: one block per UTC day, both stations in it.
    origins = np.array([0, 23, 24, 0], dtype=np.int64) * HOUR
    index, count = day_blocks(origins)
    assert count == 2 and index[0] == index[1] == index[3] != index[2]


def test_intervals_resample_whole_days_with_every_station_together():
    # Two stations a few km apart, 48 hourly origins each: 2 days, not 4 station-days.
    one = _samples(np.abs(np.random.default_rng(0).normal(1, 1, (48, 2, 2))))
    two = Samples(
        *(np.concatenate([x, x]) for x in (one.features, one.anchor, one.target)),
        np.concatenate([one.target_known, one.target_known]),
        np.array(["a"] * 48 + ["b"] * 48, dtype=object),
        np.concatenate([one.origin_us, one.origin_us]),
    )
    clim = Climatology({"a": np.full(24, 1.0), "b": np.full(24, 1.0)}, {"a": 0.5, "b": 0.5})
    metrics = compare(two.target + 0.1, two, clim, FeatureSpec(horizon_hours=2), Bootstrap(50))
    assert metrics["bootstrap"]["block_count"] == 2


def test_difference_interval_is_paired_by_hand():
    ratio = lambda x, y: x / y  # noqa: E731
    weights = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    # a: 2/4, 6/4, 4/4; b: 2/4 every time; a - b: 0, 1, 0.5; the central 50 %: [0.25, 0.75].
    got = difference_interval(
        ratio,
        [np.array([1.0, 3.0]), np.array([2.0, 2.0])],
        [np.ones(2), np.array([2.0, 2.0])],
        weights,
        0.5,
    )
    assert got == pytest.approx([0.25, 0.75])


def test_event_verdict_reads_the_paired_interval_of_the_ets_difference():
    # 30 days, 24 one-hour forecasts each, 12 wet hours a day. Persistence finds between 1 and
    # 11 of a day's events (days differ widely) with 2 false alarms; the model is persistence
    # with one more miss every other day. Each ETS interval spans the days' spread and the two
    # overlap; the paired difference is below 0 in every resample: the model is worse.
    rng = np.random.default_rng(0)
    observed, said = np.zeros((30, 24)), np.zeros((30, 24))
    for day in range(30):
        wet = rng.choice(24, size=12, replace=False)
        observed[day, wet] = 2.0
        said[day, wet[: int(rng.integers(1, 12))]] = 2.0
        said[day, rng.choice(np.setdiff1d(np.arange(24), wet), 2, replace=False)] = 2.0
    model = said.copy()
    for day in range(0, 30, 2):
        model[day, np.flatnonzero(said[day] * (observed[day] > 0))[0]] = 0.0
    samples = _samples(np.stack([np.zeros(720), observed.ravel()], axis=1)[:, None, :])
    forecasts = {
        f: np.stack([np.zeros(720), x.ravel()], axis=1)[:, None, :]
        for f, x in (("model", model), ("persistence", said))
    }
    got = events(forecasts, samples, _Blocks.of(samples, Bootstrap(resamples=300)))["1"]
    (m_low, m_high), (p_low, p_high) = (
        got[f]["equitable_threat_score_interval"] for f in ("model", "persistence")
    )
    assert p_low < m_high, "the two separate intervals overlap"
    low, high = got["model"]["equitable_threat_score_difference_interval"]["persistence"]
    assert low < high < 0
    assert got["model"]["equitable_threat_score_verdict"] == {"persistence": "worse"}


def test_diurnal_persistence_keeps_an_amount_exactly_on_a_threshold():
    # With this normalisation, 1.0 and 0.1 mm come back from float32 features just below.
    spec = FeatureSpec(
        context_hours=24,
        horizon_hours=2,
        anchor_hours=2,
        mean=[10.0, 0, 0, 0, 0.13],
        std=[2.0, 1, 1, 1, 0.7],
    )
    values = np.full((27, 5), np.nan)
    values[:, 0] = 10.0
    values[:, 4] = 0.0
    values[0, 4], values[1, 4] = 1.0, 0.1
    samples = build_samples(spec, {"s": StationSeries("s", START, values, None, None, None)})
    first = samples.origin_us == int(START.timestamp() * 1e6) + 24 * HOUR
    rain = diurnal_persistence_forecast(samples, spec)[first][0, :, 1]
    assert rain[0] >= 1.0 and rain[1] >= 0.1
    assert Contingency.of(rain, rain, np.ones(2, bool), 1.0).hits == 1


def test_compare_reports_every_baseline_events_and_intervals_that_hold_the_skill():
    rng = np.random.default_rng(0)
    n = 96
    truth = rng.normal(10, 3, (n, 2, 2))
    truth[:, :, 1] = np.abs(truth[:, :, 1]) / 5
    samples = _samples(truth)
    model = truth + rng.normal(0, 0.5, truth.shape)
    clim = Climatology({"a": np.full(24, 10.0)}, {"a": 0.5})
    spec = FeatureSpec(horizon_hours=2)
    metrics = compare(model, samples, clim, spec, Bootstrap(resamples=200, seed=1))
    assert set(metrics["skill"]) == {"persistence", "diurnal_persistence", "climatology"}
    for baseline, by_target in metrics["skill_interval"].items():
        for target, (low, high) in by_target.items():
            assert low <= metrics["skill"][baseline][target] <= high
    assert len(metrics["skill_interval_by_lead_hour"]["climatology"]["air_temperature"]) == 2
    assert metrics["bootstrap"]["block_count"] == 4  # 96 hourly origins: 4 days, one station
    assert set(metrics["events"]) == {"0.1", "1"}
    assert metrics["events"]["1"]["model"]["hits"] >= 0
    again = compare(model, samples, clim, spec, Bootstrap(resamples=200, seed=1))
    assert again["skill_interval"] == metrics["skill_interval"]


def _card(metrics):
    manifest = {
        "name": "m",
        "version": "v1",
        "created": "2026-12-06T00:00:00Z",
        "code_version": "0.1.0",
        "files": {"weights.pt": {"sha256": "0" * 64}},
        "features": {"horizon_hours": 2, "context_hours": 24, "anchor_hours": 6},
    }
    data = {
        "source": "s3://b/observations/",
        "name": "hand-made",
        "rows": 1,
        "windows": 1,
        "stations": ["a"],
        "period": {"start": "2026-01-01", "end": "2026-01-05"},
        "samples": {"train": 1, "test": 96},
        "split": "2026-01-01T00:00:00+00:00",
    }
    return render_model_card(manifest, metrics, data)


def test_card_shows_bias_events_intervals_and_the_ablation():
    rng = np.random.default_rng(0)
    truth = rng.normal(10, 3, (96, 2, 2))
    truth[:, :, 1] = np.abs(truth[:, :, 1]) / 5
    samples = _samples(truth)
    metrics = compare(
        truth + 0.5,
        samples,
        Climatology({"a": np.full(24, 10.0)}, {"a": 0.5}),
        FeatureSpec(horizon_hours=2),
        Bootstrap(resamples=50),
    )
    metrics["scene_ablation"] = {
        "status": "untested",
        "reason": "no Sentinel scene within 120 h of the training or held-out samples",
        "samples_with_scene": {"train": 0, "test": 0},
    }
    card = _card(metrics)
    assert "| model | +0.500 | 0.500 | 0.500 | +0.500 | 0.500 | 0.500 |" in card
    assert "| diurnal persistence |" in card and "### Precipitation events" in card
    low, high = metrics["skill_interval"]["climatology"]["air_temperature"]
    assert f"[{low:+.2f}, {high:+.2f}]" in card
    model_events = metrics["events"]["1"]["model"]
    assert (
        f"| >= 1 mm/h | model | {model_events['hits']} | {model_events['false_alarms']} |" in card
    )
    assert "**Untested on this data**" in card
    verdicts = metrics["events"]["1"]["model"]["equitable_threat_score_verdict"]
    assert "ETS(model) - ETS(persistence) [" in card and verdicts["persistence"] in card
    text = " ".join(card.split())
    assert "fitted on the training and validation periods" in text
    assert "one mean hourly precipitation amount" in text and "not 1 - MSE/MSE" in text
    metrics["scene_ablation"] = {
        "status": "measured",
        "samples_with_scene": {"train": 10, "test": 5},
        "by_target": {
            "air_temperature": {
                "count": 10,
                "seeds": [0, 1],
                "rmse_with_scenes_by_seed": [0.9, 1.1],
                "rmse_without_scenes_by_seed": [1.2, 1.2],
                "rmse_with_scenes": 1.0,
                "rmse_without_scenes": 1.2,
                "difference": 0.2,
                "difference_interval": [0.1, 0.3],
                "verdict": "help",
            }
        },
    }
    card = _card(metrics)
    assert "each arm with seeds 0, 1, paired by seed" in card
    row = "| air_temperature | 1.000 | 1.200 | +0.200 [+0.100, +0.300] | +0.300, +0.100 |"
    assert row + " the scenes help |" in card
