"""Scores against the two baselines every forecast must be held to: persistence and climatology.

Persistence repeats the anchor (the last temperature seen, the last hour's precipitation).
Climatology is the training period's mean per station and UTC hour of day (temperature) and
mean hourly amount per station (precipitation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fedeploy_inference.features import PRECIPITATION, TARGETS, TEMPERATURE, Samples
from fedeploy_inference.hourly import StationSeries

_HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class Climatology:
    """Per station: temperature by UTC hour of day (24 values) and mean hourly precipitation."""

    temperature_by_hour: dict[str, np.ndarray]
    precipitation: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (stored with the model, so served forecasts can be compared)."""
        return {
            "temperature_by_hour": {k: v.tolist() for k, v in self.temperature_by_hour.items()},
            "precipitation": self.precipitation,
        }


def fit_climatology(series: Mapping[str, StationSeries], before_us: int) -> Climatology:
    """Climatology from each station's hours before `before_us`."""
    temps: dict[str, np.ndarray] = {}
    rain: dict[str, float] = {}
    for name, st in series.items():
        start_us = int(st.start.timestamp() * 1_000_000)
        n = max(0, min(st.values.shape[0], (before_us - start_us) // _HOUR_US))
        hours = ((start_us // _HOUR_US) + np.arange(n)) % 24
        t = st.values[:n, TEMPERATURE]
        by_hour = np.full(24, np.nan)
        for h in range(24):
            chosen = t[(hours == h) & ~np.isnan(t)]
            if chosen.size:
                by_hour[h] = chosen.mean()
        if np.isnan(by_hour).all():
            continue
        temps[name] = np.where(np.isnan(by_hour), np.nanmean(by_hour), by_hour)
        p = st.values[:n, PRECIPITATION]
        rain[name] = float(np.nanmean(p)) if (~np.isnan(p)).any() else 0.0
    return Climatology(temps, rain)


def persistence_forecast(samples: Samples, horizon: int) -> np.ndarray:
    """(B, horizon, 2): the anchor held for every lead."""
    return np.repeat(samples.anchor[:, None, :], horizon, axis=1).astype(float)


def climatology_forecast(clim: Climatology, samples: Samples, horizon: int) -> np.ndarray:
    """(B, horizon, 2) from the climatology; a station it lacks gets the mean of the others."""
    fallback_t = np.mean(list(clim.temperature_by_hour.values()), axis=0)
    fallback_p = float(np.mean(list(clim.precipitation.values())))
    out = np.empty((len(samples), horizon, 2))
    lead_hours = (samples.origin_us[:, None] // _HOUR_US + np.arange(horizon)[None, :]) % 24
    for i, station in enumerate(samples.station):
        out[i, :, 0] = clim.temperature_by_hour.get(station, fallback_t)[lead_hours[i]]
        out[i, :, 1] = clim.precipitation.get(station, fallback_p)
    return out


def scores(forecast: np.ndarray, samples: Samples) -> dict[str, dict[str, object]]:
    """RMSE and MAE per target, overall and per lead hour, over known targets only."""
    result: dict[str, dict[str, object]] = {}
    for j, name in enumerate(TARGETS):
        known = samples.target_known[:, :, j]
        err = np.where(known, forecast[:, :, j] - samples.target[:, :, j], 0.0)
        count = known.sum(axis=0)
        per_lead_rmse = np.sqrt((err**2).sum(axis=0) / np.maximum(count, 1))
        result[name] = {
            "rmse": float(np.sqrt((err**2).sum() / max(known.sum(), 1))),
            "mae": float(np.abs(err).sum() / max(known.sum(), 1)),
            "rmse_by_lead_hour": [round(float(x), 4) for x in per_lead_rmse],
            "count": int(known.sum()),
        }
    return result


def compare(
    model: np.ndarray, samples: Samples, clim: Climatology, horizon: int
) -> dict[str, object]:
    """Scores of the model, persistence and climatology, and the model's skill against each
    (1 - rmse_model / rmse_baseline; positive is better than the baseline)."""
    table = {
        "model": scores(model, samples),
        "persistence": scores(persistence_forecast(samples, horizon), samples),
        "climatology": scores(climatology_forecast(clim, samples, horizon), samples),
    }
    skill = {
        baseline: {
            name: round(
                1.0 - table["model"][name]["rmse"] / max(table[baseline][name]["rmse"], 1e-9), 4
            )
            for name in TARGETS
        }
        for baseline in ("persistence", "climatology")
    }
    return {"samples": len(samples), "scores": table, "skill": skill}
