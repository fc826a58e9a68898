"""The vectorised request path equals the per-observation one it replaced, on hostile batches:
missing values, NaN, unsorted and duplicated times, observations outside the history, offsets
other than UTC, scenes recent, stale, later than the origin or absent, one station and many."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from fedeploy_inference.api_schema import (
    LeadForecast,
    ModelRef,
    Observation,
    PredictionRequest,
    PredictionResponse,
    Scene,
)
from fedeploy_inference.contract import VARIABLES
from fedeploy_inference.features import (
    SCENE_MAX_AGE_HOURS,
    TARGETS,
    Encoded,
    FeatureSpec,
    absent_reason,
    encode,
    observed_targets,
    withhold_unobserved,
)
from fedeploy_inference.predictor import (
    RequestArrays,
    RequestRejected,
    encode_arrays,
    encode_requests,
    predict_requests,
)
from fedeploy_inference.server import to_json

_HOUR_US = 3_600_000_000
SPEC = FeatureSpec(
    context_hours=6,
    horizon_hours=3,
    anchor_hours=3,
    mean=[10.0, 60.0, 1000.0, 3.0, 0.1],
    std=[5.0, 20.0, 10.0, 2.0, 0.5],
)


def old_aggregate_bins(index: np.ndarray, values: np.ndarray, bins: int) -> np.ndarray:
    """hourly.aggregate_bins before it took every variable in one bincount."""
    out = np.full((bins, len(VARIABLES)), np.nan)
    inside = (index >= 0) & (index < bins)
    index, values = index[inside], values[inside]
    for j, name in enumerate(VARIABLES):
        column = values[:, j]
        ok = ~np.isnan(column)
        counts = np.bincount(index[ok], minlength=bins)
        sums = np.bincount(index[ok], weights=column[ok], minlength=bins)
        has = counts > 0
        out[has, j] = sums[has] if name == "precipitation" else sums[has] / counts[has]
    return out


def _old_us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def old_encode_requests(
    spec: FeatureSpec, requests: list[PredictionRequest], history_hours: int = 24
) -> Encoded:
    """The encoder before the vectorised one (a loop per observation and per request)."""
    b = len(requests)
    c = max(spec.context_hours, history_hours)
    counts = np.fromiter((len(r.observations) for r in requests), np.int64, b)
    origins = np.fromiter((_old_us(r.issued_at) for r in requests), np.int64, b)
    owner = np.repeat(np.arange(b), counts)
    times = np.fromiter(
        (_old_us(o.time) for r in requests for o in r.observations), np.int64, int(counts.sum())
    )
    values = np.array(
        [tuple(getattr(o, v) for v in VARIABLES) for r in requests for o in r.observations],
        dtype=float,
    ).reshape(-1, len(VARIABLES))
    hour = (times - (origins[owner] - c * _HOUR_US)) // _HOUR_US
    hour = np.where((hour >= 0) & (hour < c), hour, -1)
    index = np.where(hour >= 0, owner * c + hour, -1)
    history = old_aggregate_bins(index, values, b * c).reshape(b, c, len(VARIABLES))
    context = history[:, c - spec.context_hours :]
    lon = np.array([np.nan if r.longitude is None else r.longitude for r in requests])
    cloud = np.full(b, np.nan)
    age = np.full(b, np.nan)
    for i, req in enumerate(requests):
        if req.scene is not None and req.scene.acquired < req.issued_at:
            hours = (origins[i] - _old_us(req.scene.acquired)) / _HOUR_US
            if hours <= SCENE_MAX_AGE_HOURS:
                cloud[i], age[i] = req.scene.cloud_cover, hours
    encoded = encode(spec, context, origins, lon, cloud, age, observed_targets(history))
    for i in np.flatnonzero(~encoded.usable):
        raise RequestRejected(
            (int(i), "observations"),
            f"no air_temperature in the {spec.anchor_hours} hours before issued_at "
            f"{requests[i].issued_at.isoformat()}; the model needs one",
        )
    return encoded


def hostile_batch(stations: int, seed: int) -> list[PredictionRequest]:
    """Requests built without validation where validation would refuse NaN."""
    rng = random.Random(seed)
    zones = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    requests = []
    for s in range(stations):
        zone = rng.choice(zones)
        origin = datetime(2026, 3, 1, 12, tzinfo=UTC) + timedelta(hours=rng.randrange(0, 400))
        observations = []
        for _ in range(rng.randrange(1, 40)):
            back = timedelta(minutes=rng.randrange(1, 60 * 40), milliseconds=rng.randrange(1000))
            values: dict[str, float | None] = {}
            for name in VARIABLES:
                roll = rng.random()
                if roll < 0.25:
                    values[name] = None
                elif roll < 0.3:
                    values[name] = float("nan")
                else:
                    values[name] = rng.uniform(0, 30)
            observations.append(
                Observation.model_construct(time=(origin - back).astimezone(zone), **values)
            )
        if observations and rng.random() < 0.3:
            observations.append(observations[0])  # a duplicate
        # The temperature the model needs, one hour before the origin (unless sorted last).
        observations.append(
            Observation.model_construct(
                time=origin - timedelta(minutes=30), air_temperature=rng.uniform(-5, 25)
            )
        )
        rng.shuffle(observations)  # unsorted
        scene = None
        kind = rng.randrange(4)
        if kind:
            acquired = origin + timedelta(
                hours=[0, -3, -(SCENE_MAX_AGE_HOURS + 1), 2][kind] + rng.random()
            )
            scene = Scene.model_construct(cloud_cover=rng.uniform(0, 100), acquired=acquired)
        requests.append(
            PredictionRequest.model_construct(
                station=f"st-{s}",
                issued_at=origin.astimezone(zone),
                longitude=None if rng.random() < 0.2 else rng.uniform(-180, 180),
                latitude=None,
                observations=observations,
                scene=scene,
            )
        )
    return requests


def assert_same(new: Encoded, old: Encoded) -> None:
    for name in ("features", "anchor", "usable", "observed"):
        assert np.array_equal(getattr(new, name), getattr(old, name), equal_nan=True), name
        assert getattr(new, name).dtype == getattr(old, name).dtype, name


@pytest.mark.parametrize(("stations", "seed"), [(1, 0), (1, 1), (7, 2), (64, 3), (300, 4)])
@pytest.mark.parametrize("history", [6, 24])
def test_the_vectorised_encoder_equals_the_per_observation_one(
    stations: int, seed: int, history: int
) -> None:
    batch = hostile_batch(stations, seed)
    assert_same(encode_requests(SPEC, batch, history), old_encode_requests(SPEC, batch, history))


def test_a_batch_parsed_once_encodes_as_its_requests_and_any_head_of_it() -> None:
    batch = hostile_batch(40, 5)
    arrays = RequestArrays.from_requests(batch)
    for b in (1, 13, 40):
        assert_same(encode_arrays(SPEC, arrays.head(b)), old_encode_requests(SPEC, batch[:b]))


def test_a_request_without_a_recent_temperature_is_rejected_alike() -> None:
    batch = hostile_batch(5, 6)
    origin = batch[3].issued_at
    batch[3] = batch[3].model_copy(
        update={
            "observations": [
                Observation.model_construct(
                    time=origin - timedelta(hours=SPEC.anchor_hours + 1), air_temperature=3.0
                )
            ]
        }
    )
    with pytest.raises(RequestRejected) as old:
        old_encode_requests(SPEC, batch)
    with pytest.raises(RequestRejected) as new:
        encode_requests(SPEC, batch)
    assert (new.value.loc, str(new.value)) == (old.value.loc, str(old.value))


class _Loaded:
    """What predict_requests reads of a loaded model, with a model that echoes its input."""

    name, version, spec = "m", "v", SPEC
    device = None

    @staticmethod
    def model(features, anchor):  # noqa: ANN001, ANN205 - torch tensors
        import torch

        lead = torch.arange(1, SPEC.horizon_hours + 1, dtype=torch.float32)[None, :, None]
        return anchor[:, None, :] * lead + features[:, :1, None] / 7


def test_the_documents_serialise_as_the_response_models_did(monkeypatch) -> None:  # noqa: ANN001
    import torch
    from fedeploy_inference import predictor

    monkeypatch.setattr(
        predictor,
        "run_model",
        lambda loaded, encoded: (
            loaded.model(torch.from_numpy(encoded.features), torch.from_numpy(encoded.anchor))
            .float()
            .numpy()
        ),
    )
    batch = hostile_batch(30, 7)
    encoded = old_encode_requests(SPEC, batch)
    forecast = withhold_unobserved(predictor.run_model(_Loaded, encoded), encoded.observed)

    def value(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    old = [
        PredictionResponse(
            station=req.station,
            issued_at=req.issued_at,
            model=ModelRef(name="m", version="v"),
            forecast=[
                LeadForecast(
                    lead_hours=lead + 1,
                    time=req.issued_at + timedelta(hours=lead),
                    air_temperature=value(forecast[i, lead, 0]),
                    precipitation=value(forecast[i, lead, 1]),
                    reason={
                        t: absent_reason(t)
                        for j, t in enumerate(TARGETS)
                        if not encoded.observed[i, j]
                    },
                )
                for lead in range(forecast.shape[1])
            ],
        ).model_dump(mode="json")
        for i, req in enumerate(batch)
    ]
    new = predict_requests(_Loaded, batch)  # type: ignore[arg-type]
    assert to_json(new) == to_json(old)
    assert any(lead["precipitation"] is None for answer in old for lead in answer["forecast"])


@pytest.mark.parametrize("seed", range(4))
def test_aggregate_bins_equals_the_loop_per_variable(seed: int) -> None:
    """Duplicated bins, NaN, rows outside the bins, -0.0 and precipitation (summed)."""
    from fedeploy_inference.hourly import aggregate_bins

    rng = np.random.default_rng(seed)
    n, bins = 3000, 400
    index = rng.integers(-50, bins + 50, n)
    values = rng.normal(scale=10, size=(n, len(VARIABLES)))
    values[rng.random(values.shape) < 0.3] = np.nan
    values[rng.random(values.shape) < 0.05] = -0.0
    new, old = aggregate_bins(index, values, bins), old_aggregate_bins(index, values, bins)
    assert np.array_equal(new, old, equal_nan=True)
    assert np.array_equal(np.signbit(new), np.signbit(old))
