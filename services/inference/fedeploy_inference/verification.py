"""Station verification scores as WMO/ECMWF verification reports them: precipitation events
from a 2x2 contingency table, and block-bootstrap confidence intervals for any score built from
sums over samples.

Event scores follow the WMO/WWRP Joint Working Group on Forecast Verification Research's
definitions (hits a, false alarms b, misses c, correct negatives d, n = a + b + c + d):
hit rate (probability of detection) a / (a + c); false alarm ratio b / (a + b); frequency bias
(a + b) / (a + c); equitable threat score (Gilbert skill score) (a - a_r) / (a + b + c - a_r)
with a_r = (a + b)(a + c) / n, the hits a random forecast of the same frequency would get.
A score whose denominator is zero is None: not measurable on that data.

Samples of one day overlap in time (consecutive origins share targets), and stations a few tens
of kilometres apart see the same weather the same day (New York's three airports are within
25 km; a front crosses them in hours), so intervals resample whole UTC days with every station's
samples of that day together (a block bootstrap), not single samples or station-days, which
would make them too narrow. A comparison of two forecasts is read from one interval of their
difference, both scored on the same resampled days (paired), never from two separate intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

EVENT_THRESHOLDS_MM: tuple[float, ...] = (0.1, 1.0)
_DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Contingency:
    """Counts of a yes/no event: forecast and observed (hits), forecast only (false alarms),
    observed only (misses), neither (correct negatives)."""

    hits: int
    false_alarms: int
    misses: int
    correct_negatives: int

    @classmethod
    def of(
        cls, forecast: np.ndarray, observed: np.ndarray, known: np.ndarray, threshold: float
    ) -> Contingency:
        """The table for the event `value >= threshold` over the values where `known` is True;
        the three arrays share a shape (any), amounts in the threshold's unit."""
        f = (forecast >= threshold) & known
        o = (observed >= threshold) & known
        hits = int((f & o).sum())
        false_alarms = int((f & ~o).sum())
        misses = int((~f & o).sum())
        return cls(hits, false_alarms, misses, int(known.sum()) - hits - false_alarms - misses)

    @property
    def total(self) -> int:
        """n: every scored value."""
        return self.hits + self.false_alarms + self.misses + self.correct_negatives

    @property
    def hit_rate(self) -> float | None:
        """a / (a + c): the share of observed events that were forecast."""
        return _ratio(self.hits, self.hits + self.misses)

    @property
    def false_alarm_ratio(self) -> float | None:
        """b / (a + b): the share of forecast events that did not happen."""
        return _ratio(self.false_alarms, self.hits + self.false_alarms)

    @property
    def frequency_bias(self) -> float | None:
        """(a + b) / (a + c): events forecast per event observed (1 is unbiased)."""
        return _ratio(self.hits + self.false_alarms, self.hits + self.misses)

    @property
    def equitable_threat_score(self) -> float | None:
        """(a - a_r) / (a + b + c - a_r): 1 perfect, 0 no better than chance, down to -1/3."""
        if not self.total:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            score = equitable_threat_score(
                *(np.float64(x) for x in (self.hits, self.false_alarms, self.misses, self.total))
            )
        return float(score) if np.isfinite(score) else None

    def to_dict(self) -> dict[str, float | int | None]:
        """Counts and scores, JSON-ready (scores rounded to 4 decimals)."""
        return {
            "hits": self.hits,
            "false_alarms": self.false_alarms,
            "misses": self.misses,
            "correct_negatives": self.correct_negatives,
            "hit_rate": _round(self.hit_rate),
            "false_alarm_ratio": _round(self.false_alarm_ratio),
            "frequency_bias": _round(self.frequency_bias),
            "equitable_threat_score": _round(self.equitable_threat_score),
        }


# Counts as floats: arrays of any matching shapes, or one float64 each.
_Counts = TypeVar("_Counts", np.ndarray, np.float64)


def equitable_threat_score(
    hits: _Counts, false_alarms: _Counts, misses: _Counts, total: _Counts
) -> _Counts:
    """ETS from counts (arrays of any matching shapes, or scalars, as floats); NaN where it is
    undefined."""
    random_hits = (hits + false_alarms) * (hits + misses) / total
    return (hits - random_hits) / (hits + false_alarms + misses - random_hits)


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if abs(denominator) < 1e-12 else numerator / denominator


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


DRY_THRESHOLD_CANDIDATES_MM: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(21))


def calibrate_dry_threshold(
    forecast: np.ndarray,
    observed: np.ndarray,
    known: np.ndarray,
    event_mm: float = EVENT_THRESHOLDS_MM[0],
    candidates: tuple[float, ...] = DRY_THRESHOLD_CANDIDATES_MM,
) -> float:
    """The amount (mm) below which forecasts are best given as 0, for the event
    `value >= event_mm`: the candidate whose zeroing gives the highest equitable threat score on
    the given (validation) values, the smallest on ties; 0 where none is measurable. Arrays of
    one shape: forecast and observed amounts (mm), `known` (bool)."""
    best, chosen = -np.inf, 0.0
    for threshold in candidates:
        zeroed = np.where(forecast < threshold, 0.0, forecast)
        score = Contingency.of(zeroed, observed, known, event_mm).equitable_threat_score
        if score is not None and score > best + 1e-12:
            best, chosen = score, float(threshold)
    return chosen


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn: resamples of the day blocks (`day_blocks`), the central confidence
    level of the percentile interval, and the seed (the same seed gives the same interval)."""

    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resamples < 10 or not 0.5 <= self.confidence < 1.0:
            raise ValueError(
                f"Bootstrap: {self.resamples} resamples and confidence {self.confidence} given; "
                "at least 10 resamples and a confidence in [0.5, 1) allowed"
            )

    def weights(self, blocks: int) -> np.ndarray:
        """(resamples, blocks): how often each block is drawn in each resample (each row sums
        to `blocks`), from this spec's seed."""
        rng = np.random.default_rng(self.seed)
        if blocks == 0:
            return np.zeros((self.resamples, 0))
        return rng.multinomial(blocks, np.full(blocks, 1.0 / blocks), size=self.resamples).astype(
            float
        )


def day_blocks(origin_us: np.ndarray) -> tuple[np.ndarray, int]:
    """Per sample (B,), the index of its block (the UTC day of its origin, every station's
    samples of that day in one block), and the number of blocks."""
    days = np.asarray(origin_us, dtype=np.int64) // _DAY_US
    _, index = np.unique(days, return_inverse=True)
    return index.reshape(-1), int(index.max()) + 1 if index.size else 0


def block_totals(values: np.ndarray, blocks: np.ndarray, count: int) -> np.ndarray:
    """Sums of `values` (B, ...) over the samples of each block: (count, ...)."""
    out = np.zeros((count, *values.shape[1:]))
    np.add.at(out, blocks, values)
    return out


def interval(
    statistic: Callable[..., np.ndarray],
    totals: Sequence[np.ndarray],
    weights: np.ndarray,
    confidence: float,
) -> list[float] | None:
    """The percentile interval [low, high] of `statistic` over resampled totals.

    `totals`: per-block sums (blocks,) that the statistic is built from (sums of squared errors,
    counts); `weights` (resamples, blocks) from `Bootstrap.weights`. The statistic takes the
    resampled sums, one array (resamples,) per entry of `totals`, and returns (resamples,);
    NaN results (a resample where a denominator is zero) are left out. None when none remain.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(statistic(*(weights @ np.asarray(t, float) for t in totals)), float)
    return percentile_interval(values, confidence)


def difference_interval(
    statistic: Callable[..., np.ndarray],
    totals_a: Sequence[np.ndarray],
    totals_b: Sequence[np.ndarray],
    weights: np.ndarray,
    confidence: float,
) -> list[float] | None:
    """The paired percentile interval of statistic(a) - statistic(b): both built from the same
    resampled blocks (`weights`), so what the two forecasts share (the same days' weather)
    cancels. Arguments as for `interval`, one list of per-block totals per forecast."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = (
            np.asarray(statistic(*(weights @ np.asarray(t, float) for t in totals)), float)
            for totals in (totals_a, totals_b)
        )
        return percentile_interval(a - b, confidence)


def verdict(spread: list[float] | None) -> str:
    """What a paired interval of a difference (first minus second, higher better) says:
    `better` when it lies above 0, `worse` below, `no measurable difference` when it holds 0,
    `not measurable` when there is none."""
    if spread is None:
        return "not measurable"
    if spread[0] > 0:
        return "better"
    if spread[1] < 0:
        return "worse"
    return "no measurable difference"


def percentile_interval(values: np.ndarray, confidence: float) -> list[float] | None:
    """The central `confidence` share of the finite resampled values, [low, high] (rounded to
    4 decimals); None when none is finite."""
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [round(float(low), 4), round(float(high), 4)]


def rmse_skill(model_sse: np.ndarray, baseline_sse: np.ndarray) -> np.ndarray:
    """1 - RMSE_model / RMSE_baseline from sums of squared errors over the same values (the
    counts cancel); NaN where the baseline's sum is zero."""
    return 1.0 - np.sqrt(model_sse / np.where(baseline_sse > 0, baseline_sse, np.nan))


def rmse_difference(sse_a: np.ndarray, sse_b: np.ndarray, count: np.ndarray) -> np.ndarray:
    """RMSE_a - RMSE_b over the same values, from their sums of squared errors and count."""
    n = np.where(count > 0, count, np.nan)
    return np.sqrt(sse_a / n) - np.sqrt(sse_b / n)


def seed_block_interval(
    sse_a: np.ndarray, sse_b: np.ndarray, count: np.ndarray, bootstrap: Bootstrap
) -> list[float] | None:
    """Interval of the mean over training seeds of RMSE_a - RMSE_b, resampling both the seeds
    and the day blocks (paired: both arms on the same resampled days and seeds): what a network learns varies with its seed as much as the test
    days vary, so an interval over test days alone would take one seed's luck for an effect.

    `sse_a`, `sse_b`: (seeds, blocks) per-block sums of squared errors of the two arms, paired
    by seed; `count`: (blocks,) values scored per block. Each resample draws the blocks
    (`bootstrap.weights`) and, independently, as many seeds as there are, with replacement.
    """
    seeds = sse_a.shape[0]
    weights = bootstrap.weights(count.shape[0])
    picks = np.random.default_rng(bootstrap.seed + 1).integers(
        0, seeds, (bootstrap.resamples, seeds)
    )
    n = weights @ count
    with np.errstate(divide="ignore", invalid="ignore"):
        per_seed = rmse_difference(weights @ sse_a.T, weights @ sse_b.T, n[:, None])
    values = np.take_along_axis(per_seed, picks, axis=1).mean(axis=1)
    return percentile_interval(values, bootstrap.confidence)
