"""Requests to tensors and back: the serving path around a loaded model.

A batch is parsed once into columns (RequestArrays) and encoded with array operations over the
whole batch; the answers are built from the forecast arrays as plain JSON-ready documents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from fedeploy_inference.api_schema import PredictionRequest
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


_NO_SCENE = np.iinfo(np.int64).max  # acquired_us of a request without a scene
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(moments: Sequence[datetime]) -> np.ndarray:
    """Aware datetimes as integer microseconds since the epoch (int64), exactly, in one call."""
    if not moments:
        return np.zeros(0, np.int64)
    stamps = pa.array(moments, type=pa.timestamp("us", tz="UTC"))
    return stamps.cast(pa.int64()).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class RequestArrays:
    """A batch of requests as columns, parsed once: per request (B,) its origin (us), longitude
    (NaN: unknown), scene cloud cover (%, NaN: none) and acquisition (us); per observation (N,)
    its request (`owner`), time (us) and values (N, len(VARIABLES)), NaN where missing. `nwp`
    (B, most leads given) the requests' NWP forecasts (degC, NaN: none) and `nwp_count` (B,) how
    many leads each gave (-1: no `forecast`); both None where no request gave one."""

    origins_us: np.ndarray
    longitude: np.ndarray
    scene_cloud: np.ndarray
    scene_acquired_us: np.ndarray
    owner: np.ndarray
    times_us: np.ndarray
    values: np.ndarray
    nwp: np.ndarray | None = None
    nwp_count: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.origins_us.shape[0])

    @classmethod
    def from_requests(cls, requests: Sequence[PredictionRequest]) -> RequestArrays:
        """The columns of validated requests: one pass over the objects, no arithmetic."""
        b = len(requests)
        observations = [o for r in requests for o in r.observations]
        counts = np.fromiter(map(len, (r.observations for r in requests)), np.int64, b)
        scenes = [r.scene for r in requests]
        has_scene = np.array([s is not None for s in scenes], dtype=bool)
        acquired = np.full(b, _NO_SCENE, np.int64)
        acquired[has_scene] = _us([s.acquired for s in scenes if s is not None])
        # numpy turns None into NaN in a float array: missing values need no special case.
        values = np.array(list(map(_VALUES, observations)), dtype=float)
        forecasts = [r.forecast for r in requests]
        nwp, nwp_count = None, None
        if any(f is not None for f in forecasts):
            nwp_count = np.array([-1 if f is None else len(f) for f in forecasts], np.int64)
            nwp = np.full((b, int(nwp_count.max())), np.nan)
            for i, f in enumerate(forecasts):
                if f is not None:
                    nwp[i, : len(f)] = np.array(f, dtype=float)  # None becomes NaN
        return cls(
            origins_us=_us([r.issued_at for r in requests]),
            longitude=np.array([np.nan if r.longitude is None else r.longitude for r in requests]),
            scene_cloud=np.array([np.nan if s is None else s.cloud_cover for s in scenes]),
            scene_acquired_us=acquired,
            owner=np.repeat(np.arange(b), counts),
            times_us=_us([o.time for o in observations]),
            values=values.reshape(-1, len(VARIABLES)),
            nwp=nwp,
            nwp_count=nwp_count,
        )

    def head(self, b: int) -> RequestArrays:
        """The first `b` requests and their observations."""
        n = int(np.searchsorted(self.owner, b))
        return RequestArrays(
            self.origins_us[:b],
            self.longitude[:b],
            self.scene_cloud[:b],
            self.scene_acquired_us[:b],
            self.owner[:n],
            self.times_us[:n],
            self.values[:n],
            None if self.nwp is None else self.nwp[:b],
            None if self.nwp_count is None else self.nwp_count[:b],
        )


_VALUES = attrgetter(*VARIABLES)


def encode_arrays(spec: FeatureSpec, batch: RequestArrays, history_hours: int = 24) -> Encoded:
    """Bin every observation of the batch onto its request's context hours and encode: array
    operations over the whole batch, no loop per observation or request.

    A target is forecast only if the request has an observation of it within `history_hours`
    (at least the context) before its origin. Raises RequestRejected (loc relative to the
    request list) for the first request without a recent temperature.
    """
    b = len(batch)
    c = max(spec.context_hours, history_hours)  # bins read; the context is the last ones
    hour = (batch.times_us - (batch.origins_us[batch.owner] - c * _HOUR_US)) // _HOUR_US
    index = np.where((hour >= 0) & (hour < c), batch.owner * c + hour, -1)
    history = aggregate_bins(index, batch.values, b * c).reshape(b, c, len(VARIABLES))
    context = history[:, c - spec.context_hours :]
    hours = (batch.origins_us - batch.scene_acquired_us) / _HOUR_US  # < 0 without a scene
    recent = (batch.scene_acquired_us < batch.origins_us) & (hours <= SCENE_MAX_AGE_HOURS)
    cloud = np.where(recent, batch.scene_cloud, np.nan)
    age = np.where(recent, hours, np.nan)
    nwp = _nwp_input(spec, batch) if spec.nwp or batch.nwp is not None else None
    encoded = encode(
        spec,
        context,
        batch.origins_us,
        batch.longitude,
        cloud,
        age,
        observed_targets(history),
        nwp,
    )
    unusable = np.flatnonzero(~encoded.usable)
    if unusable.size:
        i = int(unusable[0])
        issued = _EPOCH + timedelta(microseconds=int(batch.origins_us[i]))
        raise RequestRejected((i, "observations"), _no_temperature(spec, issued))
    return encoded


def _nwp_input(spec: FeatureSpec, batch: RequestArrays) -> np.ndarray | None:
    """(B, horizon) the requests' NWP forecasts (degC, NaN where none) for a model with NWP
    input; RequestRejected (loc: the request, `forecast`) for the first request without one, or
    with more leads than the model forecasts, and for any that gives one to a model without."""
    count = batch.nwp_count if batch.nwp_count is not None else np.full(len(batch), -1)
    if not spec.nwp:
        i = int(np.flatnonzero(count >= 0)[0])
        raise RequestRejected(
            (i, "forecast"),
            "this model was trained without NWP input (GET /v1/model: no features.nwp); "
            "leave forecast out",
        )
    h = spec.horizon_hours
    for i in np.flatnonzero((count < 0) | (count > h))[:1].tolist():
        said = "none given" if count[i] < 0 else f"{int(count[i])} given"
        raise RequestRejected(
            (i, "forecast"),
            f"this model was trained with NWP input (features.nwp): forecast must give the "
            f"station's NWP 2 m temperature (degC) for lead hours 1 to at most {h}, null where "
            f"none; {said} (JSON: the request's forecast; Arrow: the forecast column on the "
            "request's first row)",
        )
    assert batch.nwp is not None  # every request gave one
    out = np.full((len(batch), h), np.nan)
    width = min(h, batch.nwp.shape[1])
    out[:, :width] = batch.nwp[:, :width]
    return out


def _no_temperature(spec: FeatureSpec, issued_at: datetime) -> str:
    return (
        f"no air_temperature in the {spec.anchor_hours} hours before issued_at "
        f"{issued_at.isoformat()}; the model needs one"
    )


def encode_requests(
    spec: FeatureSpec, requests: Sequence[PredictionRequest], history_hours: int = 24
) -> Encoded:
    """`encode_arrays` of validated requests (RequestArrays.from_requests); a rejection names
    issued_at as the request wrote it."""
    try:
        return encode_arrays(spec, RequestArrays.from_requests(requests), history_hours)
    except RequestRejected as rejected:
        if rejected.loc[1] != "observations":
            raise
        i = int(rejected.loc[0])
        raise RequestRejected(rejected.loc, _no_temperature(spec, requests[i].issued_at)) from None


def run_model(loaded: LoadedModel, encoded: Encoded) -> np.ndarray:
    """The model's forecasts (B, horizon, 2) for an encoded batch, on the model's device."""
    with torch.inference_mode():
        features = torch.from_numpy(encoded.features).to(loaded.device)
        anchor = torch.from_numpy(encoded.anchor).to(loaded.device)
        return loaded.model(features, anchor).float().cpu().numpy()


def forecast_arrays(
    loaded: LoadedModel, batch: RequestArrays, history_hours: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """Encode and run a batch: forecasts (B, horizon, len(TARGETS)), NaN for every target a
    station has not observed, and which targets each row observed (B, len(TARGETS))."""
    encoded = encode_arrays(loaded.spec, batch, history_hours)
    return withhold_unobserved(run_model(loaded, encoded), encoded.observed), encoded.observed


def predict_requests(
    loaded: LoadedModel, requests: Sequence[PredictionRequest], history_hours: int = 24
) -> list[dict[str, Any]]:
    """Answer requests with one model call for the whole batch, as JSON-ready documents of
    PredictionResponse's shape (plain lists and dicts: the server writes them with
    pydantic's serializer, no response model per lead). A target the request has no
    observation of within `history_hours` is answered null, with its reason."""
    encoded = encode_requests(loaded.spec, requests, history_hours)
    forecast = withhold_unobserved(run_model(loaded, encoded), encoded.observed)
    observed = encoded.observed
    values = forecast.astype(object)  # Python floats (float32 widened exactly), None for NaN
    values[np.isnan(forecast)] = None
    rows = values.tolist()
    model = {"name": loaded.name, "version": loaded.version}
    leads = [(lead + 1, timedelta(hours=lead)) for lead in range(forecast.shape[1])]
    answers = []
    for req, row, seen in zip(requests, rows, observed.tolist(), strict=True):
        reason = {t: absent_reason(t) for t, ok in zip(TARGETS, seen, strict=True) if not ok}
        answers.append(
            {
                "station": req.station,
                "issued_at": req.issued_at,
                "model": model,
                "forecast": [
                    {
                        "lead_hours": number,
                        "time": req.issued_at + offset,
                        "air_temperature": temperature,
                        "precipitation": precipitation,
                        "reason": reason,
                    }
                    for (number, offset), (temperature, precipitation) in zip(
                        leads, row, strict=True
                    )
                ],
            }
        )
    return answers
