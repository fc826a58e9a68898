"""Turning hourly observations into model inputs and targets: plain numpy, shared by training,
serving and batch runs so all three see the same encoding.

A sample's origin `t0` is a whole hour. Its context is the `context_hours` hourly bins before
`t0`; its targets are the `horizon_hours` bins from `t0` on: air temperature (degC, bin mean)
and precipitation (mm in the bin). The anchor is what persistence would forecast: the last
temperature seen within `anchor_hours` of `t0`, and the last hour's precipitation (0 if unknown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from fedeploy_inference.contract import VARIABLES
from fedeploy_inference.hourly import StationSeries
from fedeploy_inference.nwp import DEFAULT_AVAILABLE_AFTER_HOURS, StationForecasts

TEMPERATURE = VARIABLES.index("air_temperature")
PRECIPITATION = VARIABLES.index("precipitation")
TARGETS: tuple[str, ...] = ("air_temperature", "precipitation")
_HOUR_US = 3_600_000_000
_DAY_HOURS = 24.0
_YEAR_DAYS = 365.25
SCENE_MAX_AGE_HOURS = 120.0
# A feature vector ends with the scene's cloud cover, age and a has-a-scene flag.
SCENE_COLUMNS = 3


@dataclass(frozen=True)
class FeatureSpec:
    """How inputs are encoded; stored with the model so a served version encodes as trained."""

    context_hours: int = 24
    horizon_hours: int = 6
    anchor_hours: int = 6
    mean: list[float] = field(default_factory=lambda: [0.0] * len(VARIABLES))
    std: list[float] = field(default_factory=lambda: [1.0] * len(VARIABLES))
    # Whether the model takes NWP 2 m temperature forecasts (nwp.py) as input: per lead hour
    # the forecast minus the anchor and a has-a-forecast flag (2 * horizon_hours columns just
    # before the scene columns). Part of the contract: such a model is fed forecasts, and a
    # model without is never fed them (NwpInputError).
    nwp: bool = False

    @property
    def n_features(self) -> int:
        """Width of one sample's feature vector."""
        nwp = 2 * self.horizon_hours if self.nwp else 0
        return 2 * self.context_hours * len(VARIABLES) + 4 + nwp + 3

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form; `nwp` only where true, so a model without NWP input is stored
        exactly as before NWP input existed."""
        data = asdict(self)
        if not self.nwp:
            del data["nwp"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> FeatureSpec:
        """Back from `to_dict`."""
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Scenes:
    """One station's Sentinel scenes: acquisition times (us, sorted) and cloud cover (%)."""

    times_us: np.ndarray
    cloud_cover: np.ndarray


@dataclass(frozen=True)
class Encoded:
    """Model inputs for a batch: features (B, F), anchor (B, 2), which rows are usable (B,), and
    which targets each row may be forecast (B, len(TARGETS)): only those the station observed."""

    features: np.ndarray
    anchor: np.ndarray
    usable: np.ndarray
    observed: np.ndarray

    def select(self, rows: np.ndarray) -> Encoded:
        """The subset at the given rows (indices or boolean mask)."""
        return Encoded(
            self.features[rows], self.anchor[rows], self.usable[rows], self.observed[rows]
        )


class NwpInputError(ValueError):
    """NWP forecasts given to a model not trained on them, or missing for one that was."""


def nwp_columns(spec: FeatureSpec, anchor_c: np.ndarray, forecast_c: np.ndarray) -> np.ndarray:
    """(B, 2 * horizon): per lead hour, the NWP temperature (degC, (B, horizon), NaN where
    none) minus the anchor (B,) in the spec's temperature standard deviations (0 where none),
    then a has-a-forecast flag per lead hour."""
    has = ~np.isnan(forecast_c)
    delta = (forecast_c - anchor_c[:, None]) / spec.std[TEMPERATURE]
    return np.concatenate([np.where(has, delta, 0.0), has.astype(float)], axis=1)


def absent_reason(target: str) -> str:
    """Why a target is answered as absent (null) instead of forecast."""
    return f"no observations of {target} at this station"


def observed_targets(history: np.ndarray) -> np.ndarray:
    """(B, len(TARGETS)) bool: whether each row's history (B, hours, len(VARIABLES)), NaN for
    missing, holds at least one observation of each target. A target the station has not
    reported is never forecast: the model has nothing to anchor it on."""
    columns = [VARIABLES.index(t) for t in TARGETS]
    return (~np.isnan(history[:, :, columns])).any(axis=1)


def fit_normalization(spec: FeatureSpec, series: list[np.ndarray]) -> FeatureSpec:
    """The spec with per-variable mean and standard deviation taken from the given values."""
    stacked = np.concatenate(series, axis=0)
    mean = np.nanmean(stacked, axis=0)
    std = np.nanstd(stacked, axis=0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    return replace(spec, mean=[float(x) for x in mean], std=[float(x) for x in std])


def context_values(spec: FeatureSpec, features: np.ndarray) -> np.ndarray:
    """The context back from encoded features (B, n_features): (B, context_hours,
    len(VARIABLES)) in physical units, NaN where the hour was not observed."""
    b, width = features.shape[0], spec.context_hours * len(VARIABLES)
    shape = (b, spec.context_hours, len(VARIABLES))
    normed = features[:, :width].astype(float).reshape(shape)
    known = features[:, width : 2 * width].reshape(shape) > 0.5
    return np.where(known, normed * np.asarray(spec.std) + np.asarray(spec.mean), np.nan)


def _last_valid(values: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of (B, hours), the last non-NaN value within the last `lookback` hours."""
    tail = values[:, -lookback:]
    ok = ~np.isnan(tail)
    has = ok.any(axis=1)
    last = tail.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
    picked = tail[np.arange(tail.shape[0]), last]
    return np.where(has, picked, 0.0), has


def scene_features(scenes: Scenes | None, origins_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cloud cover (%) and age (hours) of the newest scene before each origin, NaN if none
    within SCENE_MAX_AGE_HOURS."""
    cloud = np.full(origins_us.shape, np.nan)
    age = np.full(origins_us.shape, np.nan)
    if scenes is None or scenes.times_us.size == 0:
        return cloud, age
    pos = np.searchsorted(scenes.times_us, origins_us, side="left") - 1
    has = pos >= 0
    hours = (origins_us[has] - scenes.times_us[pos[has]]) / _HOUR_US
    recent = hours <= SCENE_MAX_AGE_HOURS
    idx = np.flatnonzero(has)[recent]
    cloud[idx] = scenes.cloud_cover[pos[idx]]
    age[idx] = hours[recent]
    return cloud, age


def without_scenes(features: np.ndarray) -> np.ndarray:
    """Encoded features (B, n_features) as they would be with no Sentinel scene: the scene
    columns (the last SCENE_COLUMNS) zeroed, everything else unchanged (a copy)."""
    out = features.copy()
    out[:, -SCENE_COLUMNS:] = 0.0
    return out


def with_scene(features: np.ndarray) -> np.ndarray:
    """(B,) bool: which encoded rows had a scene."""
    return features[:, -1] > 0.5


def encode(
    spec: FeatureSpec,
    context: np.ndarray,
    origins_us: np.ndarray,
    longitude: np.ndarray,
    cloud_cover: np.ndarray,
    scene_age_hours: np.ndarray,
    observed: np.ndarray | None = None,
    nwp_temperature: np.ndarray | None = None,
) -> Encoded:
    """Encode a batch: context (B, context_hours, len(VARIABLES)) with NaN for missing, origins
    in us, longitudes (NaN: unknown, UTC is used for the solar hour), scene cloud cover and age
    (NaN: no scene). `observed` (B, len(TARGETS)) says which targets the station reported in its
    history (serving looks further back than the context); None: within the context.
    `nwp_temperature` (B, horizon) degC, NaN where none: required where `spec.nwp`, refused
    (NwpInputError) where not."""
    if spec.nwp and nwp_temperature is None:
        raise NwpInputError(
            "this model was trained with NWP forecasts as input (features.nwp); none were "
            "supplied: serve it where the site's ingested forecasts are read, or use a version "
            "trained without them"
        )
    if not spec.nwp and nwp_temperature is not None:
        raise NwpInputError(
            "NWP forecasts were supplied to a model trained without them (features.nwp false)"
        )
    b = context.shape[0]
    mean = np.asarray(spec.mean)
    std = np.asarray(spec.std)
    known = ~np.isnan(context)
    normed = np.where(known, (context - mean) / std, 0.0)
    lon = np.where(np.isnan(longitude), 0.0, longitude)
    hours_utc = (origins_us / _HOUR_US) % _DAY_HOURS
    solar = 2 * np.pi * ((hours_utc + lon / 15.0) % _DAY_HOURS) / _DAY_HOURS
    season = 2 * np.pi * ((origins_us / _HOUR_US / _DAY_HOURS) % _YEAR_DAYS) / _YEAR_DAYS
    has_scene = ~np.isnan(cloud_cover)
    temp, has_temp = _last_valid(context[:, :, TEMPERATURE], spec.anchor_hours)
    nwp = [] if nwp_temperature is None else [nwp_columns(spec, temp, nwp_temperature)]
    scene = np.column_stack(
        [
            np.where(has_scene, cloud_cover / 100.0, 0.0),
            np.where(has_scene, scene_age_hours / SCENE_MAX_AGE_HOURS, 0.0),
            has_scene.astype(float),
        ]
    )
    features = np.concatenate(
        [
            normed.reshape(b, -1),
            known.reshape(b, -1).astype(float),
            np.column_stack([np.sin(solar), np.cos(solar), np.sin(season), np.cos(season)]),
            *nwp,
            scene,
        ],
        axis=1,
    )
    rain, _ = _last_valid(context[:, :, PRECIPITATION], 1)
    anchor = np.column_stack([temp, rain])
    seen = observed_targets(context) if observed is None else np.asarray(observed, dtype=bool)
    # The temperature anchor is the one observation the model cannot do without.
    seen = seen.copy()
    seen[:, TARGETS.index("air_temperature")] &= has_temp
    return Encoded(features.astype(np.float32), anchor.astype(np.float32), has_temp, seen)


@dataclass(frozen=True)
class Samples:
    """Training or evaluation samples, one row each."""

    features: np.ndarray
    anchor: np.ndarray
    target: np.ndarray
    target_known: np.ndarray
    station: np.ndarray
    origin_us: np.ndarray

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def select(self, rows: np.ndarray) -> Samples:
        """The subset at the given rows (indices or boolean mask)."""
        return Samples(
            self.features[rows],
            self.anchor[rows],
            self.target[rows],
            self.target_known[rows],
            self.station[rows],
            self.origin_us[rows],
        )


def _continuous(values: np.ndarray, start_us: int, span: int, breaks: Sequence[int]) -> np.ndarray:
    """(n,) bool for the n windows of `span` bins: True where the window holds no empty bin and
    does not straddle a declared break (a time in us where a new stretch begins)."""
    empty = np.isnan(values).all(axis=1).astype(np.int64)
    holes = np.concatenate([[0], np.cumsum(empty)])
    n = values.shape[0] - span + 1
    ok = holes[span : span + n] - holes[:n] == 0
    for when in breaks:
        k = (int(when) - start_us) // _HOUR_US  # first bin of the new stretch
        # Window s covers bins s .. s + span - 1; it straddles the break when s < k <= s+span-1.
        first, last = max(0, k - span + 1), min(n, k)
        if first < last:
            ok[first:last] = False
    return ok


def build_samples(
    spec: FeatureSpec,
    series: Mapping[str, StationSeries],
    origin_from_us: int | None = None,
    origin_to_us: int | None = None,
    scenes: Mapping[str, Scenes] | None = None,
    breaks: Mapping[str, Sequence[int]] | None = None,
    forecasts: Mapping[str, StationForecasts] | None = None,
    available_after_hours: float = DEFAULT_AVAILABLE_AFTER_HOURS,
) -> Samples:
    """Every usable sample whose origin lies in [origin_from, origin_to) (either open).

    Usable: a temperature within `anchor_hours` of the origin, at least one target known, and
    no gap inside its context and horizon: no hour without any observation (a hole of more
    than an hour in the record) and no discontinuity the data declares (`breaks`: per station,
    times in us where a new continuous stretch begins, e.g. a month of a typical year taken
    from another year than the month before). Where `spec.nwp`: each sample's NWP input from
    `forecasts` (per station; a station without any has none: flags 0), the newest run
    available `available_after_hours` after its reference time.
    """
    parts: list[Samples] = []
    c, h = spec.context_hours, spec.horizon_hours
    for name, st in sorted(series.items()):
        v = st.values
        if v.shape[0] < c + h:
            continue
        n = v.shape[0] - c - h + 1
        windows = np.lib.stride_tricks.sliding_window_view(v, c + h, axis=0)
        windows = np.moveaxis(windows, -1, 1)  # (n, c + h, vars)
        start_us = int(st.start.timestamp() * 1_000_000)
        origins = start_us + (np.arange(n) + c) * _HOUR_US
        keep = _continuous(v, start_us, c + h, (breaks or {}).get(name, ()))
        if origin_from_us is not None:
            keep &= origins >= origin_from_us
        if origin_to_us is not None:
            keep &= origins < origin_to_us
        if not keep.any():
            continue
        windows, origins = windows[keep], origins[keep]
        cloud, age = scene_features((scenes or {}).get(name), origins)
        lon = np.full(origins.shape, np.nan if st.longitude is None else st.longitude)
        nwp = None
        if spec.nwp:
            own = (forecasts or {}).get(name)
            nwp = (
                np.full((origins.size, h), np.nan)
                if own is None
                else own.at(origins, h, available_after_hours)
            )
        enc = encode(spec, windows[:, :c], origins, lon, cloud, age, nwp_temperature=nwp)
        target = windows[:, c:][:, :, [TEMPERATURE, PRECIPITATION]]
        # A target the context never reported is not forecast, so it is not scored or learnt.
        known = ~np.isnan(target) & enc.observed[:, None, :]
        usable = enc.usable & known.any(axis=(1, 2))
        parts.append(
            Samples(
                enc.features[usable],
                enc.anchor[usable],
                np.nan_to_num(target[usable]).astype(np.float32),
                known[usable],
                np.full(int(usable.sum()), name, dtype=object),
                origins[usable],
            )
        )
    if not parts:
        raise ValueError(
            "build_samples: no usable sample; each station needs at least "
            f"{c + h} consecutive hours with a temperature in the last {spec.anchor_hours}"
        )
    return Samples(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in Samples.__dataclass_fields__)
    )


def withhold_unobserved(forecast: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """The forecast (B, horizon, len(TARGETS)) with NaN for every target its row's station has
    not observed (`observed`, (B, len(TARGETS)) bool): such values are never handed out."""
    return np.where(observed[:, None, :], forecast, np.nan)


def reported_targets(series: Mapping[str, StationSeries]) -> dict[str, list[str]]:
    """Per station, the targets it has at least one observation of: the only ones it can be
    forecast (the model card lists them)."""
    columns = [VARIABLES.index(t) for t in TARGETS]
    return {
        name: [
            t for t, j in zip(TARGETS, columns, strict=True) if (~np.isnan(st.values[:, j])).any()
        ]
        for name, st in sorted(series.items())
    }
