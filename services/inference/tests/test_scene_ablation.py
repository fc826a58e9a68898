"""The Sentinel input's worth: every training run also trains the model without the scene
features and reports the difference with a bootstrap interval and a verdict."""

import numpy as np
import pyarrow as pa
import pytest
import torch
from fedeploy_inference.features import FeatureSpec, with_scene, without_scenes
from fedeploy_inference.hourly import to_hourly
from fedeploy_inference.synthetic import (
    SyntheticSpec,
    _fronts,
    _lag_hours,
    generate,
    scenes,
    stations,
)
from fedeploy_inference.training import TrainConfig, train, verdict
from fedeploy_inference.verification import (
    Bootstrap,
    interval,
    rmse_difference,
    seed_block_interval,
)

SPEC = SyntheticSpec(stations=3, days=60)


@pytest.mark.parametrize(
    ("spread", "said"),
    [
        ([0.01, 0.2], "help"),
        ([-0.3, -0.02], "hurt"),
        ([-0.1, 0.2], "no measurable difference"),
        ([0.0, 0.1], "no measurable difference"),
        (None, "untested"),
    ],
)
def test_verdict_reads_the_interval_of_rmse_without_minus_with(spread, said):
    assert verdict(spread) == said


def test_without_scenes_zeroes_only_the_scene_columns():
    features = np.arange(2 * FeatureSpec().n_features, dtype=np.float32).reshape(2, -1) + 1
    stripped = without_scenes(features)
    assert (stripped[:, -3:] == 0).all() and not with_scene(stripped).any()
    assert np.array_equal(stripped[:, :-3], features[:, :-3])
    assert with_scene(features).all(), "the input is left as it was"


def test_the_claim_is_untested_where_the_data_has_no_scenes(trained):
    ablation = trained.metrics["scene_ablation"]
    assert ablation["status"] == "untested"
    assert ablation["samples_with_scene"] == {"train": 0, "test": 0}


def test_synthetic_scenes_are_cloudy_only_near_a_front():
    spec = SPEC
    fronts = _fronts(spec, np.random.default_rng(spec.seed + 1), spec.days * 24.0)[:, 0]
    start_us = int(spec.start.timestamp() * 1e6)
    for st in stations(spec):
        got = scenes(spec)[st.id]
        at = (got.times_us - start_us) / 3.6e9
        nearest = np.abs(at[:, None] - (fronts + _lag_hours(spec, st))[None, :]).min(axis=1)
        assert got.cloud_cover[nearest < 4].mean() > 70
        assert got.cloud_cover[nearest > 36].mean() < 30
        assert ((got.cloud_cover >= 0) & (got.cloud_cover <= 100)).all()


def test_ablation_scores_the_same_held_out_samples_without_scenes():
    spec = SyntheticSpec(stations=2, days=30)
    series = to_hourly(pa.concat_tables([t for _, t in generate(spec)]))
    # Small and short: the wiring and the arithmetic are under test, not the skill.
    config = TrainConfig(epochs=4, hidden=32, layers=1, seed=5, ablation_seeds=2)
    result = train(series, config, torch.device("cpu"), scenes=scenes(spec))
    ablation = result.metrics["scene_ablation"]
    assert ablation["status"] == "measured"
    assert ablation["samples_with_scene"]["test"] == len(result.test)
    for target, got in ablation["by_target"].items():
        model = result.metrics["scores"]["model"][target]
        assert got["count"] == model["count"] and got["seeds"] == [5, 6]
        # The published model is the first seed of the arm with scenes.
        assert got["rmse_with_scenes_by_seed"][0] == pytest.approx(model["rmse"], abs=1e-4)
        differences = np.subtract(
            got["rmse_without_scenes_by_seed"], got["rmse_with_scenes_by_seed"]
        )
        assert got["difference"] == pytest.approx(differences.mean(), abs=2e-4)
        assert got["verdict"] == verdict(got["difference_interval"])


def test_seed_and_block_interval_by_hand():
    one_block = np.array([1.0])
    # Two seeds that disagree: +1 (sqrt 4 - sqrt 1) and -1; resampling the seeds gives a mean of
    # +1, 0 or -1 (1/4, 1/2, 1/4): the interval spans both signs.
    split = seed_block_interval(
        np.array([[4.0], [1.0]]), np.array([[1.0], [4.0]]), one_block, Bootstrap(seed=2)
    )
    assert split == [-1.0, 1.0]
    agree = seed_block_interval(
        np.array([[4.0], [4.0]]), np.array([[1.0], [1.0]]), one_block, Bootstrap(seed=2)
    )
    assert agree == [1.0, 1.0]
    # One seed: the block bootstrap of the RMSE difference alone, as `interval` draws it.
    a, b, n = np.array([[1.0, 4.0]]), np.array([[4.0, 4.0]]), np.array([2.0, 2.0])
    boot = Bootstrap(resamples=200, seed=9)
    assert seed_block_interval(a, b, n, boot) == interval(
        rmse_difference, [a[0], b[0], n], boot.weights(2), boot.confidence
    )
