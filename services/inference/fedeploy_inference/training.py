"""Training: split by time, fit on the earlier period, score the held-out later period.

Runs on one process (CPU or one GPU) or under `torchrun` (several GPUs or nodes, launched by
`srun` in a SLURM job): with a process group initialised the model is wrapped in
DistributedDataParallel and each rank trains on an equal shard of the samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from fedeploy_inference.evaluation import (
    Climatology,
    climatology_forecast,
    compare,
    fit_climatology,
    nwp_comparison,
    nwp_forecast,
    persistence_forecast,
    squared_errors,
)
from fedeploy_inference.features import (
    TARGETS,
    FeatureSpec,
    Samples,
    Scenes,
    build_samples,
    fit_normalization,
    reported_targets,
    with_scene,
    without_scenes,
)
from fedeploy_inference.hourly import StationSeries
from fedeploy_inference.model import NetConfig, StationForecaster, baseline
from fedeploy_inference.nwp import DEFAULT_AVAILABLE_AFTER_HOURS, Forecasts
from fedeploy_inference.verification import (
    Bootstrap,
    block_totals,
    calibrate_dry_threshold,
    day_blocks,
    seed_block_interval,
)

_HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class TrainConfig:
    """Training knobs; the defaults train on the synthetic set in a few seconds on 2 cores."""

    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    hidden: int = 128
    layers: int = 2
    holdout_fraction: float = 0.2
    seed: int = 0
    validation_fraction: float = 0.15
    patience: int = 5
    balance_stations: bool = True
    # The Sentinel ablation trains both arms with this many seeds (seed, seed + 1, ...).
    ablation_seeds: int = 3
    # Hours after its reference time an ingested NWP run may be used (its publication delay;
    # nwp.DEFAULT_AVAILABLE_AFTER_HOURS is ECMWF open data's): no sample sees a run before.
    nwp_available_after_hours: float = DEFAULT_AVAILABLE_AFTER_HOURS
    # Publish the model with the NWP input where forecasts were read. Off: it is trained and
    # scored in the card all the same, and the model without it is published: batch runs do
    # not feed forecasts yet (they refuse such a model), and HTTP clients would have to.
    nwp_input: bool = False

    def __post_init__(self) -> None:
        if not 0.05 <= self.holdout_fraction <= 0.5:
            raise ValueError(
                f"TrainConfig.holdout_fraction: {self.holdout_fraction} given; 0.05 to 0.5 allowed"
            )
        if not 0.05 <= self.validation_fraction <= 0.5:
            raise ValueError(
                f"TrainConfig.validation_fraction: {self.validation_fraction} given; "
                "0.05 to 0.5 allowed"
            )
        if self.ablation_seeds < 1:
            raise ValueError(
                f"TrainConfig.ablation_seeds: {self.ablation_seeds} given; at least 1 allowed"
            )
        if not 0 <= self.nwp_available_after_hours <= 48:
            raise ValueError(
                f"TrainConfig.nwp_available_after_hours: {self.nwp_available_after_hours} given; "
                "0 to 48 allowed"
            )
        if self.epochs < 1 or self.patience < 1:
            raise ValueError(
                f"TrainConfig: epochs {self.epochs} and patience {self.patience} given; "
                "at least 1 each allowed"
            )


@dataclass
class TrainingResult:
    """A trained model with everything needed to publish it."""

    model: StationForecaster
    spec: FeatureSpec
    climatology: Climatology
    metrics: dict[str, object]
    test: Samples
    test_forecast: np.ndarray
    split: datetime
    period: tuple[datetime, datetime]
    train_samples: int
    station_targets: dict[str, list[str]]
    selection: dict[str, object]


def split_time(series: Mapping[str, StationSeries], holdout_fraction: float) -> datetime:
    """The whole hour where the held-out period starts: the last fraction of the data's span."""
    starts = [s.start for s in series.values()]
    ends = [s.start + timedelta(hours=s.values.shape[0]) for s in series.values()]
    first, last = min(starts), max(ends)
    split = last - (last - first) * holdout_fraction
    return split.replace(minute=0, second=0, microsecond=0)


def _to_us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def predict(
    model: StationForecaster,
    features: np.ndarray,
    anchor: np.ndarray,
    device: torch.device,
    batch_size: int = 4096,
) -> np.ndarray:
    """Forecasts (B, horizon, 2) in physical units for encoded inputs."""
    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, features.shape[0], batch_size):
            f = torch.from_numpy(features[i : i + batch_size]).to(device)
            a = torch.from_numpy(anchor[i : i + batch_size]).to(device)
            outs.append(model(f, a).float().cpu().numpy())
    return np.concatenate(outs) if outs else np.empty((0, model.config.horizon_hours, 2))


def _shard(samples: Samples) -> Samples:
    """This rank's equal share of the samples (all of them without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return samples
    rank, world = dist.get_rank(), dist.get_world_size()
    per_rank = len(samples) // world
    return samples.select(np.arange(rank * per_rank, (rank + 1) * per_rank))


class _Corrections(torch.nn.Module):
    """The network's training output as a module's forward."""

    def __init__(self, model: StationForecaster) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.corrections(features)


@dataclass(frozen=True)
class _Tensors:
    """Samples on the device: features, normalised corrections to learn, and their mask."""

    features: torch.Tensor
    target: torch.Tensor
    known: torch.Tensor

    @classmethod
    def of(
        cls, samples: Samples, net: NetConfig, device: torch.device, balance: bool = False
    ) -> _Tensors:
        """The corrections are from the network's baseline (model.baseline: persistence, or the
        NWP where the network has NWP input). `balance`: weight each station's targets by the
        inverse of its mean squared change from that baseline, so a station whose weather
        changes little (a maritime one) counts as much as one with large swings; the weights
        ride on the mask."""
        scale = torch.tensor([net.temperature_scale, net.precipitation_scale], device=device)
        anchor = torch.from_numpy(samples.anchor).to(device)
        features = torch.from_numpy(samples.features).to(device)
        base = baseline(net, features, anchor)
        target = (torch.from_numpy(samples.target).to(device) - base) / scale
        known_np = samples.target_known.astype(np.float32)
        if balance:
            base_np = base.cpu().numpy() if net.nwp_base else samples.anchor[:, None, :]
            change = ((samples.target - base_np) ** 2) * known_np
            overall = change.sum(axis=(0, 1)) / np.maximum(known_np.sum(axis=(0, 1)), 1)
            for station in np.unique(samples.station.astype(str)):
                rows = samples.station.astype(str) == station
                own = change[rows].sum(axis=(0, 1)) / np.maximum(known_np[rows].sum(axis=(0, 1)), 1)
                weight = np.where(own > 0, overall / np.maximum(own, 1e-9), 1.0)
                known_np[rows] *= np.clip(weight, 0.1, 10.0).astype(np.float32)
        known = torch.from_numpy(known_np).to(device)
        return cls(features, target, known)


def _loss(out: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Masked MSE over the known targets."""
    return ((out - target) ** 2 * known).sum() / known.sum().clamp(min=1.0)


def _validation_loss(model: StationForecaster, data: _Tensors, batch_size: int = 8192) -> float:
    model.eval()
    total, count = 0.0, 0.0
    with torch.inference_mode():
        for i in range(0, data.features.shape[0], batch_size):
            out = model.corrections(data.features[i : i + batch_size])
            known = data.known[i : i + batch_size]
            total += float((((out - data.target[i : i + batch_size]) ** 2) * known).sum())
            count += float(known.sum())
    model.train()
    return total / max(count, 1.0)


@dataclass(frozen=True)
class FitReport:
    """How training ended: the epoch kept (1-based; best validation loss), epochs run."""

    best_epoch: int
    epochs_run: int
    best_validation_loss: float | None
    validation_losses: list[float]


def fit(
    samples: Samples,
    net: NetConfig,
    config: TrainConfig,
    device: torch.device,
    validation: Samples | None = None,
) -> tuple[StationForecaster, FitReport]:
    """Train a new network on the samples; masked MSE on normalised corrections.

    With validation samples: the loss on them after each epoch picks the weights kept (the
    best epoch's), and training stops once `patience` epochs have not improved it. A network
    correcting the NWP (`net.nwp_base`) starts as the NWP itself (epoch 0), which is kept
    where no epoch beats it on the validation samples.
    """
    torch.manual_seed(config.seed)
    model = StationForecaster(net).to(device)
    distributed = dist.is_available() and dist.is_initialized()
    # DDP synchronises gradients only through its own forward, so it wraps the loss's path.
    trainable: torch.nn.Module = _Corrections(model)
    if distributed:
        trainable = DistributedDataParallel(
            trainable, device_ids=[device.index] if device.type == "cuda" else None
        )
    shard = _shard(samples)
    data = _Tensors.of(shard, net, device, config.balance_stations)
    checks = _Tensors.of(validation, net, device) if validation is not None else None
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = max(1, -(-len(shard) // config.batch_size))
    # Without a validation set: one cycle over all epochs. With one: the rate drops when the
    # validation loss stalls, and training stops when it stalls for `patience` epochs.
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
    if checks is None:
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, config.learning_rate, total_steps=config.epochs * steps_per_epoch
        )
    else:
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, factor=0.3, patience=max(1, config.patience // 3)
        )
    generator = torch.Generator().manual_seed(config.seed)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    losses: list[float] = []
    if checks is not None and net.nwp_base:
        untrained = round(_validation_loss(model, checks), 6)
        best = (untrained, 0, {k: v.detach().clone() for k, v in model.state_dict().items()})
    epoch = 0
    model.train()
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(len(shard), generator=generator).to(device)
        for i in range(steps_per_epoch):
            rows = order[i * config.batch_size : (i + 1) * config.batch_size]
            loss = _loss(trainable(data.features[rows]), data.target[rows], data.known[rows])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if schedule is not None:
                schedule.step()
        if checks is None or plateau is None:
            continue
        # Every rank holds the same weights and the whole validation set: same decision.
        losses.append(round(_validation_loss(model, checks), 6))
        plateau.step(losses[-1])
        if best is None or losses[-1] < best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = (losses[-1], epoch, state)
        elif epoch - best[1] >= config.patience:
            break
    if best is not None:
        model.load_state_dict(best[2])
    model.eval()
    return model, FitReport(best[1] if best else epoch, epoch, best[0] if best else None, losses)


def verdict(difference_interval: list[float] | None) -> str:
    """What an interval of RMSE without scenes minus RMSE with them says: `help` where all of
    it is above 0, `hurt` where all of it is below, else `no measurable difference`."""
    if difference_interval is None:
        return "untested"
    low, high = difference_interval
    if low > 0:
        return "help"
    if high < 0:
        return "hurt"
    return "no measurable difference"


def _strip(samples: Samples) -> Samples:
    return replace(samples, features=without_scenes(samples.features))


def scene_ablation(
    sets: tuple[Samples, Samples, Samples],
    forecast: np.ndarray,
    net: NetConfig,
    config: TrainConfig,
    device: torch.device,
    bootstrap: Bootstrap | None = None,
) -> dict[str, object]:
    """The Sentinel input's worth: the same network trained on the same (train, validation)
    samples and schedule with the scene features zeroed, scored on the same held-out samples as
    `forecast` (the model with scenes, trained with `config.seed`). Both arms are trained with
    `config.ablation_seeds` seeds (seed, seed + 1, ...; the model itself is the first with
    scenes), paired by seed. Per target: RMSE with and without per seed, the mean difference
    (without - with; positive: the scenes help) with an interval over seeds and days
    (`verification.seed_block_interval`), and the verdict. `untested` where no training or
    held-out sample has a scene."""
    train_set, validation, test_set = sets
    counts = {
        "train": int(with_scene(train_set.features).sum()),
        "test": int(with_scene(test_set.features).sum()),
    }
    if not counts["train"] or not counts["test"]:
        return {
            "status": "untested",
            "reason": "no Sentinel scene within 120 h of the training or held-out samples",
            "samples_with_scene": counts,
        }
    seeds = [config.seed + k for k in range(config.ablation_seeds)]

    def arm(strip: bool, seed: int) -> np.ndarray:
        pick = _strip if strip else (lambda s: s)
        model, _ = fit(pick(train_set), net, replace(config, seed=seed), device, pick(validation))
        calibrated(model, pick(validation), device)
        held_out = pick(test_set)
        return predict(model, held_out.features, held_out.anchor, device)

    with_scenes = [forecast] + [arm(False, s) for s in seeds[1:]]
    without = [arm(True, s) for s in seeds]
    bootstrap = bootstrap or Bootstrap(seed=config.seed)
    blocks, n_blocks = day_blocks(test_set.origin_us)
    by_target: dict[str, object] = {}
    for j, name in enumerate(TARGETS):
        count = test_set.target_known[:, :, j].sum(axis=1).astype(float)
        n = max(float(count.sum()), 1.0)
        sse = {
            arm_name: np.stack([squared_errors(f, test_set, j).sum(axis=1) for f in forecasts])
            for arm_name, forecasts in (("with", with_scenes), ("without", without))
        }
        rmse = {k: np.sqrt(v.sum(axis=1) / n) for k, v in sse.items()}
        sse_without, sse_with = (
            block_totals(sse[k].T, blocks, n_blocks).T for k in ("without", "with")
        )
        spread = seed_block_interval(
            sse_without, sse_with, block_totals(count, blocks, n_blocks), bootstrap
        )
        by_target[name] = {
            "count": int(count.sum()),
            "seeds": seeds,
            "rmse_with_scenes_by_seed": [round(float(x), 4) for x in rmse["with"]],
            "rmse_without_scenes_by_seed": [round(float(x), 4) for x in rmse["without"]],
            "rmse_with_scenes": round(float(rmse["with"].mean()), 4),
            "rmse_without_scenes": round(float(rmse["without"].mean()), 4),
            "difference": round(float((rmse["without"] - rmse["with"]).mean()), 4),
            "difference_interval": spread,
            "verdict": verdict(spread) if count.sum() else "untested",
        }
    return {"status": "measured", "samples_with_scene": counts, "by_target": by_target}


def target_period(samples: Samples, horizon_hours: int) -> dict[str, str | None]:
    """The span of time the samples' targets cover: from the first origin to the end of the
    last lead hour (RFC 3339, UTC); None for an empty set."""
    if not len(samples):
        return {"start": None, "end": None}
    first = int(samples.origin_us.min())
    last = int(samples.origin_us.max()) + horizon_hours * _HOUR_US
    return {
        "start": datetime.fromtimestamp(first / 1e6, tz=UTC).isoformat(),
        "end": datetime.fromtimestamp(last / 1e6, tz=UTC).isoformat(),
    }


def calibrated(model: StationForecaster, validation: Samples, device: torch.device) -> float:
    """Set the model's dry threshold (`NetConfig.dry_below_mm`) from its precipitation
    forecasts on the validation samples (`verification.calibrate_dry_threshold`); returns it."""
    rain = TARGETS.index("precipitation")
    model.config = replace(model.config, dry_below_mm=0.0)
    said = predict(model, validation.features, validation.anchor, device)[:, :, rain]
    threshold = calibrate_dry_threshold(
        said, validation.target[:, :, rain], validation.target_known[:, :, rain]
    )
    model.config = replace(model.config, dry_below_mm=threshold)
    return threshold


@dataclass(frozen=True)
class _Periods:
    """The three periods' bounds (us) and the normalisation fitted on the time before."""

    split: datetime
    validation_start: datetime
    spec: FeatureSpec


def _periods(
    series: Mapping[str, StationSeries], config: TrainConfig, spec: FeatureSpec
) -> _Periods:
    split = split_time(series, config.holdout_fraction)
    first = min(s.start for s in series.values())
    validation_start = (split - (split - first) * config.validation_fraction).replace(
        minute=0, second=0, microsecond=0
    )
    before = [
        st.values[: max(0, st.hour_index(validation_start))]
        for st in series.values()
        if st.start < validation_start
    ]
    if not before:
        raise ValueError(
            f"train: no observations before the validation period starting {validation_start}"
        )
    return _Periods(split, validation_start, fit_normalization(spec, before))


@dataclass(frozen=True)
class _Arm:
    """One trained network on its (train, validation, test) samples, with its test forecast."""

    sets: tuple[Samples, Samples, Samples]
    net: NetConfig
    model: StationForecaster
    report: FitReport
    dry_below: float
    forecast: np.ndarray


def _train_arm(
    series: Mapping[str, StationSeries],
    config: TrainConfig,
    device: torch.device,
    spec: FeatureSpec,
    periods: _Periods,
    **inputs: Any,
) -> _Arm:
    """Build the three periods' samples (`inputs`: scenes, breaks, forecasts, ... as
    build_samples takes them), fit with early stopping, calibrate, forecast the test set."""
    split_us, val_us = _to_us(periods.split), _to_us(periods.validation_start)
    lead_us = spec.horizon_hours * _HOUR_US
    train_set = build_samples(spec, series, origin_to_us=val_us - lead_us, **inputs)
    validation = build_samples(
        spec, series, origin_from_us=val_us, origin_to_us=split_us - lead_us, **inputs
    )
    test_set = build_samples(spec, series, origin_from_us=split_us, **inputs)
    net = NetConfig.for_spec(spec, config.hidden, config.layers)
    model, report = fit(train_set, net, config, device, validation)
    dry_below = calibrated(model, validation, device)
    forecast = predict(model, test_set.features, test_set.anchor, device)
    return _Arm((train_set, validation, test_set), net, model, report, dry_below, forecast)


NO_NWP = "no NWP forecast was ingested for these stations (no ECMWF product in the site's bucket)"


def nwp_evaluation(
    forecasts: Forecasts | None,
    with_nwp: _Arm | None,
    without_nwp: _Arm,
    climatology: Climatology,
    spec: FeatureSpec,
) -> dict[str, object]:
    """The card's NWP section: where forecasts were read, NWP raw and lapse-rate corrected
    beside persistence, climatology and the model with and without the NWP input, on the
    held-out samples and lead hours the NWP covers (`evaluation.nwp_comparison`); else the
    reason there is none."""
    if forecasts is None or with_nwp is None:
        reason = NO_NWP
        if forecasts is not None:
            reason = "no ingested NWP product covers these stations"
        return {
            "status": "none ingested",
            "reason": reason,
            "source": forecasts.describe() if forecasts is not None else None,
        }
    test = with_nwp.sets[2]
    same = without_nwp.sets[2]
    if not (
        np.array_equal(test.origin_us, same.origin_us) and (test.station == same.station).all()
    ):
        raise RuntimeError("nwp_evaluation: the two arms' held-out samples differ")
    h = spec.horizon_hours
    arms = {
        "model_with_nwp": with_nwp.forecast,
        "model_without_nwp": without_nwp.forecast,
        "nwp_raw": nwp_forecast(forecasts, test, h, corrected=False),
        "nwp_lapse_corrected": nwp_forecast(forecasts, test, h, corrected=True),
        "persistence": persistence_forecast(test, h),
        "climatology": climatology_forecast(climatology, test, h),
    }
    result = nwp_comparison(arms, test, ~np.isnan(arms["nwp_raw"][:, :, 0]))
    return {"status": "measured", "source": forecasts.describe(), **result}


def train(
    series: Mapping[str, StationSeries],
    config: TrainConfig,
    device: torch.device,
    spec: FeatureSpec | None = None,
    scenes: Mapping[str, Scenes] | None = None,
    breaks: Mapping[str, Sequence[int]] | None = None,
    forecasts: Forecasts | None = None,
) -> TrainingResult:
    """Split, normalise on the training period, fit with early stopping on a validation period
    (the end of the training period), and compare on the held-out period.

    Periods: training | validation (`validation_fraction` of the time before the held-out
    period) | held out (`holdout_fraction` of the whole). Origins stop a horizon before the next
    period begins, so no target leaks across. `breaks`: declared discontinuities per station
    (times in us) that no sample may straddle.

    `forecasts` (NWP read from the site's ingested products, nwp.collect): where any station
    has one, a second network is trained with the NWP input (FeatureSpec.nwp) on the same
    samples and schedule and both are scored in `metrics["nwp"]`; the one with it is the model
    returned where `config.nwp_input`, else the one without (`metrics["nwp"]["published"]`
    says which). Without forecasts the model is trained exactly as before.
    """
    periods = _periods(series, config, spec or FeatureSpec())
    spec = periods.spec
    split, validation_start = periods.split, periods.validation_start
    inputs: dict[str, Any] = {"scenes": scenes, "breaks": breaks}
    plain = _train_arm(series, config, device, spec, periods, **inputs)
    climatology = fit_climatology(series, _to_us(split))
    arm, with_nwp = plain, None
    if forecasts is not None and forecasts.any:
        nwp_spec = replace(spec, nwp=True)
        with_nwp = _train_arm(
            series,
            config,
            device,
            nwp_spec,
            periods,
            forecasts=forecasts.stations,
            available_after_hours=forecasts.available_after_hours,
            **inputs,
        )
        if config.nwp_input:
            arm, spec = with_nwp, nwp_spec
    train_set, validation, test_set = arm.sets
    metrics = compare(arm.forecast, test_set, climatology, spec)
    metrics["scene_ablation"] = scene_ablation(arm.sets, arm.forecast, arm.net, config, device)
    nwp = nwp_evaluation(forecasts, with_nwp, plain, climatology, spec)
    if with_nwp is not None:
        nwp["published"] = "model_with_nwp" if arm is with_nwp else "model_without_nwp"
    metrics["nwp"] = nwp
    metrics["periods"] = {
        name: target_period(part, spec.horizon_hours)
        for name, part in (("train", train_set), ("validation", validation), ("test", test_set))
    }
    first = min(s.start for s in series.values())
    last = max(s.start + timedelta(hours=s.values.shape[0]) for s in series.values())
    return TrainingResult(
        model=arm.model,
        spec=spec,
        climatology=climatology,
        metrics=metrics,
        test=test_set,
        test_forecast=arm.forecast,
        split=split.astimezone(UTC),
        period=(first, last),
        train_samples=len(train_set),
        station_targets=reported_targets(series),
        selection={
            "max_epochs": config.epochs,
            "patience": config.patience,
            "epochs_run": arm.report.epochs_run,
            "best_epoch": arm.report.best_epoch,
            "best_validation_loss": arm.report.best_validation_loss,
            "validation_losses": arm.report.validation_losses,
            "validation_start": validation_start.astimezone(UTC).isoformat(),
            "validation_samples": len(validation),
            "dry_below_mm": arm.dry_below,
        },
    )
