"""Scores against the baselines station verification holds a forecast to: persistence,
diurnal persistence and climatology.

Persistence repeats the anchor (the last temperature seen, the last hour's precipitation).
Diurnal persistence repeats the same hour yesterday. Climatology is fitted on every hour before
the held-out period (training and validation periods together, never a held-out hour): per
station, the mean temperature of each UTC hour of day and one mean hourly precipitation amount
(not by hour). Scores: mean error (bias), RMSE and MAE of amounts; precipitation events
(`verification.EVENT_THRESHOLDS_MM`) from their contingency tables; skill (1 - RMSE/RMSE_baseline)
and the model's ETS minus each baseline's, each with a paired day-block bootstrap interval
(`verification`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fedeploy_inference.features import (
    PRECIPITATION,
    TARGETS,
    TEMPERATURE,
    FeatureSpec,
    Samples,
    context_values,
)
from fedeploy_inference.hourly import StationSeries
from fedeploy_inference.nwp import Forecasts
from fedeploy_inference.verification import (
    EVENT_THRESHOLDS_MM,
    Bootstrap,
    Contingency,
    block_totals,
    day_blocks,
    difference_interval,
    equitable_threat_score,
    interval,
    rmse_skill,
    verdict,
)

_HOUR_US = 3_600_000_000
_RAIN = TARGETS.index("precipitation")
TEMPERATURE_TARGET = TARGETS.index("air_temperature")


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
    """Climatology from each station's hours before `before_us` (the start of the held-out
    period: training and validation hours)."""
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


def diurnal_persistence_forecast(samples: Samples, spec: FeatureSpec) -> np.ndarray:
    """(B, horizon, 2): for each lead, the value observed in the same hour yesterday (24 h
    before the hour forecast, read from the context); where that hour was not observed,
    persistence's value. Needs a context of at least 24 h and a horizon of at most 24 h.

    The context comes back from float32 normalised features, a few parts in 10^8 off: an
    amount exactly on an event threshold (1.0 mm) could come back just below it and miss the
    event. Amounts are rounded to 1e-4 mm, far finer than any gauge reports (0.1 mm, 0.01 in)
    and far coarser than that error."""
    c, h = spec.context_hours, spec.horizon_hours
    if c < 24 or h > 24:
        raise ValueError(
            f"diurnal persistence: context {c} h and horizon {h} h given; "
            "a context of at least 24 h and a horizon of at most 24 h needed"
        )
    yesterday = context_values(spec, samples.features)[:, c - 24 : c - 24 + h]
    yesterday = yesterday[:, :, [TEMPERATURE, PRECIPITATION]]
    yesterday[:, :, 1] = np.round(yesterday[:, :, 1], 4)
    return np.where(np.isnan(yesterday), persistence_forecast(samples, h), yesterday)


def climatology_forecast(clim: Climatology, samples: Samples, horizon: int) -> np.ndarray:
    """(B, horizon, 2) from the climatology; a station it lacks gets the mean of the others."""
    fallback_t: np.ndarray = np.mean(list(clim.temperature_by_hour.values()), axis=0)
    fallback_p = float(np.mean(list(clim.precipitation.values())))
    out = np.empty((len(samples), horizon, 2))
    lead_hours = (samples.origin_us[:, None] // _HOUR_US + np.arange(horizon)[None, :]) % 24
    for i, station in enumerate(samples.station):
        out[i, :, 0] = clim.temperature_by_hour.get(station, fallback_t)[lead_hours[i]]
        out[i, :, 1] = clim.precipitation.get(station, fallback_p)
    return out


def scores(forecast: np.ndarray, samples: Samples) -> dict[str, dict[str, Any]]:
    """Per target, over known targets only, overall and per lead hour: mean error (bias,
    forecast - observed), RMSE and MAE, in the target's unit, with the scored count."""
    result: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(TARGETS):
        known = samples.target_known[:, :, j]
        err = np.where(known, forecast[:, :, j] - samples.target[:, :, j], 0.0)
        count = known.sum(axis=0)
        per_lead = np.maximum(count, 1)
        total = max(known.sum(), 1)
        result[name] = {
            "bias": float(err.sum() / total),
            "rmse": float(np.sqrt((err**2).sum() / total)),
            "mae": float(np.abs(err).sum() / total),
            "bias_by_lead_hour": [round(float(x), 4) for x in err.sum(axis=0) / per_lead],
            "rmse_by_lead_hour": [
                round(float(x), 4) for x in np.sqrt((err**2).sum(axis=0) / per_lead)
            ],
            "mae_by_lead_hour": [round(float(x), 4) for x in np.abs(err).sum(axis=0) / per_lead],
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


FORECASTS = ("model", "persistence", "diurnal_persistence", "climatology")
BASELINES = ("persistence", "diurnal_persistence", "climatology")


def squared_errors(forecast: np.ndarray, samples: Samples, target: int) -> np.ndarray:
    """(B, horizon) squared errors of one target, 0 where it is not scored."""
    known = samples.target_known[:, :, target]
    return np.where(known, forecast[:, :, target] - samples.target[:, :, target], 0.0) ** 2


@dataclass(frozen=True)
class _Blocks:
    """Day blocks of a sample set (every station's samples of a UTC day together) and the bootstrap's resampling weights over them."""

    index: np.ndarray
    count: int
    weights: np.ndarray
    confidence: float

    @classmethod
    def of(cls, samples: Samples, bootstrap: Bootstrap) -> _Blocks:
        index, count = day_blocks(samples.origin_us)
        return cls(index, count, bootstrap.weights(count), bootstrap.confidence)

    def skill_interval(self, model_sse: np.ndarray, baseline_sse: np.ndarray) -> list | None:
        """Interval of 1 - RMSE ratio from per-sample sums of squared errors (B,)."""
        totals = [block_totals(x, self.index, self.count) for x in (model_sse, baseline_sse)]
        return interval(rmse_skill, totals, self.weights, self.confidence)


def _skill_intervals(
    forecasts: Mapping[str, np.ndarray], samples: Samples, blocks: _Blocks
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, list]]]:
    """Per baseline and target: the skill's interval overall and per lead hour."""
    overall: dict[str, dict[str, Any]] = {b: {} for b in BASELINES}
    by_lead: dict[str, dict[str, list]] = {b: {} for b in BASELINES}
    for j, name in enumerate(TARGETS):
        model = squared_errors(forecasts["model"], samples, j)
        for b in BASELINES:
            base = squared_errors(forecasts[b], samples, j)
            overall[b][name] = blocks.skill_interval(model.sum(axis=1), base.sum(axis=1))
            by_lead[b][name] = [
                blocks.skill_interval(model[:, k], base[:, k]) for k in range(model.shape[1])
            ]
    return overall, by_lead


def events(
    forecasts: Mapping[str, np.ndarray], samples: Samples, blocks: _Blocks
) -> dict[str, dict[str, dict[str, object]]]:
    """Per precipitation threshold (mm/h, as text) and forecast: the contingency table, its
    scores, and the equitable threat score's bootstrap interval; for the model also, per
    baseline, the paired interval of ETS(model) - ETS(baseline) and its verdict (`better`,
    `worse`, `no measurable difference`, `not measurable`)."""
    known = samples.target_known[:, :, _RAIN]
    observed = samples.target[:, :, _RAIN]
    out: dict[str, dict[str, dict[str, object]]] = {}
    for threshold in EVENT_THRESHOLDS_MM:
        entry: dict[str, dict[str, object]] = {}
        block_sums: dict[str, list[np.ndarray]] = {}
        for f, forecast in forecasts.items():
            said = forecast[:, :, _RAIN]
            table = Contingency.of(said, observed, known, threshold)
            yes_f = (said >= threshold) & known
            yes_o = (observed >= threshold) & known
            parts = [
                (yes_f & yes_o).sum(axis=1),
                (yes_f & ~yes_o).sum(axis=1),
                (~yes_f & yes_o).sum(axis=1),
                known.sum(axis=1),
            ]
            totals = [block_totals(p.astype(float), blocks.index, blocks.count) for p in parts]
            block_sums[f] = totals
            entry[f] = {
                **table.to_dict(),
                "equitable_threat_score_interval": interval(
                    equitable_threat_score, totals, blocks.weights, blocks.confidence
                ),
            }
        if "model" in block_sums:
            spreads = {
                b: difference_interval(
                    equitable_threat_score,
                    block_sums["model"],
                    block_sums[b],
                    blocks.weights,
                    blocks.confidence,
                )
                for b in BASELINES
                if b in block_sums
            }
            entry["model"]["equitable_threat_score_difference_interval"] = spreads
            entry["model"]["equitable_threat_score_verdict"] = {
                b: verdict(spread) for b, spread in spreads.items()
            }
        out[f"{threshold:g}"] = entry
    return out


def by_station(
    forecasts: Mapping[str, np.ndarray], samples: Samples, bootstrap: Bootstrap
) -> dict[str, object]:
    """Per station and target: scored samples (known targets, all leads), bias, RMSE and MAE of
    each forecast, and the model's skill against each baseline with its interval (resampling
    that station's days). A target a
    station never reported has a count of 0 and no scores."""
    out: dict[str, object] = {}
    for station in sorted(set(samples.station.astype(str))):
        rows = samples.station.astype(str) == station
        part = samples.select(rows)
        own = {f: forecasts[f][rows] for f in FORECASTS}
        blocks = _Blocks.of(part, bootstrap)
        table = {f: scores(own[f], part) for f in FORECASTS}
        entry: dict[str, object] = {}
        for j, name in enumerate(TARGETS):
            count = table["model"][name]["count"]
            if not count:
                entry[name] = {"count": 0}
                continue
            model_sse = squared_errors(own["model"], part, j).sum(axis=1)
            entry[name] = {
                "count": count,
                **{
                    score: {f: round(float(table[f][name][score]), 4) for f in FORECASTS}
                    for score in ("bias", "rmse", "mae")
                },
                "skill": {
                    b: _skill(table["model"][name]["rmse"], table[b][name]["rmse"])
                    for b in BASELINES
                },
                "skill_interval": {
                    b: blocks.skill_interval(model_sse, squared_errors(own[b], part, j).sum(axis=1))
                    for b in BASELINES
                },
            }
        out[station] = entry
    return out


def compare(
    model: np.ndarray,
    samples: Samples,
    clim: Climatology,
    spec: FeatureSpec,
    bootstrap: Bootstrap | None = None,
) -> dict[str, object]:
    """Scores of the model and each baseline, and the model's skill against each
    (1 - rmse_model / rmse_baseline; positive is better than the baseline) with its bootstrap
    interval: overall, per lead hour (`skill_by_lead_hour`, `skill_interval_by_lead_hour`) and
    per station (`by_station`), each with its scored count; precipitation events (`events`)."""
    bootstrap = bootstrap or Bootstrap()
    horizon = spec.horizon_hours
    forecasts = {
        "model": model,
        "persistence": persistence_forecast(samples, horizon),
        "diurnal_persistence": diurnal_persistence_forecast(samples, spec),
        "climatology": climatology_forecast(clim, samples, horizon),
    }
    table = {f: scores(forecasts[f], samples) for f in FORECASTS}
    skill = {
        baseline: {
            name: _skill(table["model"][name]["rmse"], table[baseline][name]["rmse"])
            for name in TARGETS
        }
        for baseline in BASELINES
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
        for baseline in BASELINES
    }
    blocks = _Blocks.of(samples, bootstrap)
    skill_interval, skill_interval_by_lead = _skill_intervals(forecasts, samples, blocks)
    return {
        "samples": len(samples),
        "scores": table,
        "skill": skill,
        "skill_interval": skill_interval,
        "skill_by_lead_hour": skill_by_lead,
        "skill_interval_by_lead_hour": skill_interval_by_lead,
        "events": events(forecasts, samples, blocks),
        "bootstrap": {
            "resamples": bootstrap.resamples,
            "confidence": bootstrap.confidence,
            "seed": bootstrap.seed,
            "blocks": "UTC day of the forecast origin, all stations together "
            "(per station: that station's days)",
            "block_count": blocks.count,
        },
        "by_station": by_station(forecasts, samples, bootstrap),
    }


def nwp_forecast(
    forecasts: Forecasts, samples: Samples, horizon: int, corrected: bool = True
) -> np.ndarray:
    """(B, horizon, 2): the NWP 2 m temperature (degC; lapse-rate corrected or raw) for each
    sample's lead hours from the newest run available at its origin (`StationForecasts.at`),
    NaN where there is none; precipitation NaN (the NWP's is not read)."""
    out = np.full((len(samples), horizon, 2), np.nan)
    stations = samples.station.astype(str)
    for station in np.unique(stations):
        own = forecasts.stations.get(station)
        if own is None:
            continue
        rows = stations == station
        out[rows, :, 0] = own.at(
            samples.origin_us[rows], horizon, forecasts.available_after_hours, corrected
        )
    return out


NWP_FORECASTS = (
    "nwp_raw",
    "nwp_lapse_corrected",
    "persistence",
    "climatology",
    "model_without_nwp",
    "model_with_nwp",
)


def nwp_comparison(
    forecasts: Mapping[str, np.ndarray],
    samples: Samples,
    covered: np.ndarray,
    bootstrap: Bootstrap | None = None,
) -> dict[str, object]:
    """Temperature scores (bias, RMSE, MAE, count, by lead hour) of each of NWP_FORECASTS
    ((B, horizon, 2) each) on the same values: the held-out (sample, lead hour)s whose
    temperature was observed and that the NWP covers (`covered`, (B, horizon) bool); the model
    with the NWP input's skill against each other forecast with its day-block bootstrap
    interval; and on which data it rests (stations, period, samples, values)."""
    bootstrap = bootstrap or Bootstrap()
    rows = np.asarray(covered.any(axis=1))
    part = samples.select(rows)
    known = part.target_known.copy()
    known[:, :, TEMPERATURE_TARGET] &= covered[rows]
    known[:, :, _RAIN] = False
    part = Samples(part.features, part.anchor, part.target, known, part.station, part.origin_us)
    own = {f: forecasts[f][rows] for f in NWP_FORECASTS}
    table = {f: scores(own[f], part)["air_temperature"] for f in NWP_FORECASTS}
    blocks = _Blocks.of(part, bootstrap)
    mine = squared_errors(own["model_with_nwp"], part, TEMPERATURE_TARGET).sum(axis=1)
    others = [f for f in NWP_FORECASTS if f != "model_with_nwp"]
    stations = sorted(set(part.station.astype(str)))
    first = int(part.origin_us.min()) if len(part) else None
    last = int(part.origin_us.max()) if len(part) else None
    return {
        "target": "air_temperature",
        "scores": table,
        "skill_of_model_with_nwp": {
            f: _skill(table["model_with_nwp"]["rmse"], table[f]["rmse"]) for f in others
        },
        "skill_interval_of_model_with_nwp": {
            f: blocks.skill_interval(
                mine, squared_errors(own[f], part, TEMPERATURE_TARGET).sum(axis=1)
            )
            for f in others
        },
        "data": {
            "stations": stations,
            "samples": len(part),
            "values": int(table["model_with_nwp"]["count"]),
            "held_out_samples": len(samples),
            "origins": {
                "start": None if first is None else _iso(first),
                "end": None if last is None else _iso(last),
            },
        },
    }


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat()
