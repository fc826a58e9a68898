"""Scores against the two baselines every forecast must be held to: persistence and climatology.

Persistence repeats the anchor (the last temperature seen, the last hour's precipitation).
Climatology is the training period's mean per station and UTC hour of day (temperature) and
mean hourly amount per station (precipitation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def scores(forecast: np.ndarray, samples: Samples) -> dict[str, dict[str, Any]]:
    """RMSE and MAE per target, overall and per lead hour, over known targets only."""
    result: dict[str, dict[str, Any]] = {}
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
            "count_by_lead_hour": [int(x) for x in count],
        }
    return result


def _skill(model: float, baseline: float) -> float | None:
    """1 - model / baseline; None where the baseline is perfect (a dry spell for persistence of
    precipitation): no skill is measurable there."""
    if baseline < 1e-9:
        return None
    return round(1.0 - model / baseline, 4)


_FORECASTS = ("model", "persistence", "climatology")
_BASELINES = ("persistence", "climatology")


def by_station(forecasts: Mapping[str, np.ndarray], samples: Samples) -> dict[str, object]:
    """Per station and target: scored samples (known targets, all leads), RMSE and MAE of each
    forecast, and the model's skill against each baseline. A target a station never reported
    has a count of 0 and no scores."""
    out: dict[str, object] = {}
    for station in sorted(set(samples.station.astype(str))):
        rows = samples.station.astype(str) == station
        part = samples.select(rows)
        table = {f: scores(forecasts[f][rows], part) for f in _FORECASTS}
        entry: dict[str, object] = {}
        for name in TARGETS:
            count = table["model"][name]["count"]
            if not count:
                entry[name] = {"count": 0}
                continue
            entry[name] = {
                "count": count,
                "rmse": {f: round(float(table[f][name]["rmse"]), 4) for f in _FORECASTS},
                "mae": {f: round(float(table[f][name]["mae"]), 4) for f in _FORECASTS},
                "skill": {
                    b: _skill(table["model"][name]["rmse"], table[b][name]["rmse"])
                    for b in _BASELINES
                },
            }
        out[station] = entry
    return out


def compare(
    model: np.ndarray, samples: Samples, clim: Climatology, horizon: int
) -> dict[str, object]:
    """Scores of the model, persistence and climatology, and the model's skill against each
    (1 - rmse_model / rmse_baseline; positive is better than the baseline): overall, per lead
    hour (`skill_by_lead_hour`) and per station (`by_station`), each with its scored count."""
    forecasts = {
        "model": model,
        "persistence": persistence_forecast(samples, horizon),
        "climatology": climatology_forecast(clim, samples, horizon),
    }
    table = {f: scores(forecasts[f], samples) for f in _FORECASTS}
    skill = {
        baseline: {
            name: _skill(table["model"][name]["rmse"], table[baseline][name]["rmse"])
            for name in TARGETS
        }
        for baseline in _BASELINES
    }
    skill_by_lead = {
        baseline: {
            name: [
                _skill(m, b)
                for m, b in zip(
                    table["model"][name]["rmse_by_lead_hour"],
                    table[baseline][name]["rmse_by_lead_hour"],
                    strict=True,
                )
            ]
            for name in TARGETS
        }
        for baseline in _BASELINES
    }
    return {
        "samples": len(samples),
        "scores": table,
        "skill": skill,
        "skill_by_lead_hour": skill_by_lead,
        "by_station": by_station(forecasts, samples),
    }
