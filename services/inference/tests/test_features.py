"""Inputs and targets: the anchor, the scene features, and no target leaking into training."""

from datetime import UTC, datetime

import numpy as np
from fedeploy_inference.contract import VARIABLES
from fedeploy_inference.features import (
    FeatureSpec,
    Scenes,
    build_samples,
    encode,
    scene_features,
)

HOUR = 3_600_000_000
T = VARIABLES.index("air_temperature")
P = VARIABLES.index("precipitation")
ORIGIN = int(datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp() * 1e6)


def _context(spec, temps_by_back_hour):
    ctx = np.full((1, spec.context_hours, len(VARIABLES)), np.nan)
    for back, temp in temps_by_back_hour.items():
        ctx[0, spec.context_hours - back, T] = temp
    return ctx


def _encode(spec, ctx):
    nan = np.array([np.nan])
    return encode(spec, ctx, np.array([ORIGIN]), nan, nan, nan)


def test_anchor_is_the_last_temperature_within_the_anchor_hours():
    spec = FeatureSpec()
    enc = _encode(spec, _context(spec, {5: 3.0, 2: 7.5, 10: 1.0}))
    assert enc.usable[0] and enc.anchor[0, 0] == 7.5


def test_no_recent_temperature_makes_a_request_unusable():
    spec = FeatureSpec(anchor_hours=6)
    enc = _encode(spec, _context(spec, {7: 3.0}))
    assert not enc.usable[0]


def test_feature_width_matches_the_spec():
    spec = FeatureSpec(context_hours=12)
    assert _encode(spec, _context(spec, {1: 1.0})).features.shape == (1, spec.n_features)


def test_scene_feature_is_the_newest_scene_before_the_origin_and_recent_enough():
    scenes = Scenes(
        np.array([ORIGIN - 300 * HOUR, ORIGIN - 30 * HOUR, ORIGIN + HOUR], dtype=np.int64),
        np.array([10.0, 55.0, 90.0]),
    )
    cloud, age = scene_features(scenes, np.array([ORIGIN, ORIGIN - 100 * HOUR]))
    assert cloud[0] == 55.0 and age[0] == 30.0, "the scene after the origin is not seen"
    assert np.isnan(cloud[1]), "a scene older than the limit is not used"


def test_training_targets_never_reach_past_the_cut(small_data):
    spec = FeatureSpec()
    cut = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp() * 1e6)
    samples = build_samples(spec, small_data.series, origin_to_us=cut - spec.horizon_hours * HOUR)
    last_target_hour = samples.origin_us.max() + (spec.horizon_hours - 1) * HOUR
    assert last_target_hour < cut
    later = build_samples(spec, small_data.series, origin_from_us=cut)
    assert later.origin_us.min() >= cut


def test_targets_are_the_hours_from_the_origin_on(small_data):
    spec = FeatureSpec()
    samples = build_samples(spec, small_data.series)
    row = int(np.flatnonzero(samples.target_known[:, 0, 0])[100])
    st = small_data.series[samples.station[row]]
    index = (samples.origin_us[row] - int(st.start.timestamp() * 1e6)) // HOUR
    assert np.isclose(samples.target[row, 0, 0], st.values[index, T])
    assert np.isclose(samples.target[row, 0, 1], np.nan_to_num(st.values[index, P]))
