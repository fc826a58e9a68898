"""Requests to tensors and back: the serving path around a loaded model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import torch

from fedeploy_inference.api_schema import (
    LeadForecast,
    ModelRef,
    PredictionRequest,
    PredictionResponse,
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
from fedeploy_inference.hourly import aggregate_bins
from fedeploy_inference.registry import LoadedModel

_HOUR_US = 3_600_000_000


class RequestRejected(ValueError):
    """A request is well-formed but the model cannot use it; `loc` names the field."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _us(when) -> int:  # type: ignore[no-untyped-def]
    return int(when.timestamp() * 1_000_000)


def encode_requests(
    spec: FeatureSpec, requests: Sequence[PredictionRequest], history_hours: int = 24
) -> Encoded:
    """Bin each request's observations onto the model's context hours and encode the batch.

    All observations of the batch are binned in one pass. A target is forecast only if the
    request has an observation of it within `history_hours` (at least the context) before
    `issued_at`. Raises RequestRejected (loc relative to the request list) for a request
    without a recent temperature.
    """
    b = len(requests)
    c = max(spec.context_hours, history_hours)  # bins read; the context is the last ones
    counts = np.fromiter((len(r.observations) for r in requests), np.int64, b)
    origins = np.fromiter((_us(r.issued_at) for r in requests), np.int64, b)
    owner = np.repeat(np.arange(b), counts)
    times = np.fromiter(
        (_us(o.time) for r in requests for o in r.observations), np.int64, int(counts.sum())
    )
    # numpy turns None into NaN in a float array: missing values need no special case.
    values = np.array(
        [tuple(getattr(o, v) for v in VARIABLES) for r in requests for o in r.observations],
        dtype=float,
    ).reshape(-1, len(VARIABLES))
    hour = (times - (origins[owner] - c * _HOUR_US)) // _HOUR_US
    hour = np.where((hour >= 0) & (hour < c), hour, -1)
    index = np.where(hour >= 0, owner * c + hour, -1)
    history = aggregate_bins(index, values, b * c).reshape(b, c, len(VARIABLES))
    context = history[:, c - spec.context_hours :]
    lon = np.array([np.nan if r.longitude is None else r.longitude for r in requests])
    cloud = np.full(b, np.nan)
    age = np.full(b, np.nan)
    for i, req in enumerate(requests):
        if req.scene is not None and req.scene.acquired < req.issued_at:
            hours = (origins[i] - _us(req.scene.acquired)) / _HOUR_US
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


def run_model(loaded: LoadedModel, encoded: Encoded) -> np.ndarray:
    """The model's forecasts (B, horizon, 2) for an encoded batch, on the model's device."""
    with torch.inference_mode():
        features = torch.from_numpy(encoded.features).to(loaded.device)
        anchor = torch.from_numpy(encoded.anchor).to(loaded.device)
        return loaded.model(features, anchor).float().cpu().numpy()


def _value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def predict_requests(
    loaded: LoadedModel, requests: Sequence[PredictionRequest], history_hours: int = 24
) -> list[PredictionResponse]:
    """Answer requests with one model call for the whole batch. A target the request has no
    observation of within `history_hours` is answered null, with its reason."""
    encoded = encode_requests(loaded.spec, requests, history_hours)
    forecast = withhold_unobserved(run_model(loaded, encoded), encoded.observed)
    ref = ModelRef(name=loaded.name, version=loaded.version)
    return [
        PredictionResponse(
            station=req.station,
            issued_at=req.issued_at,
            model=ref,
            forecast=[
                LeadForecast(
                    lead_hours=lead + 1,
                    time=req.issued_at + timedelta(hours=lead),
                    air_temperature=_value(forecast[i, lead, 0]),
                    precipitation=_value(forecast[i, lead, 1]),
                    reason={
                        t: absent_reason(t)
                        for j, t in enumerate(TARGETS)
                        if not encoded.observed[i, j]
                    },
                )
                for lead in range(forecast.shape[1])
            ],
        )
        for i, req in enumerate(requests)
    ]
