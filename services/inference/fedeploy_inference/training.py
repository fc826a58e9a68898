"""Training: split by time, fit on the earlier period, score the held-out later period.

Runs on one process (CPU or one GPU) or under `torchrun` (several GPUs or nodes, launched by
`srun` in a SLURM job): with a process group initialised the model is wrapped in
DistributedDataParallel and each rank trains on an equal shard of the samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from fedeploy_inference.evaluation import Climatology, compare, fit_climatology
from fedeploy_inference.features import (
    FeatureSpec,
    Samples,
    Scenes,
    build_samples,
    fit_normalization,
)
from fedeploy_inference.hourly import StationSeries
from fedeploy_inference.model import NetConfig, StationForecaster

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

    def __post_init__(self) -> None:
        if not 0.05 <= self.holdout_fraction <= 0.5:
            raise ValueError(
                f"TrainConfig.holdout_fraction: {self.holdout_fraction} given; 0.05 to 0.5 allowed"
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


def fit(
    samples: Samples, net: NetConfig, config: TrainConfig, device: torch.device
) -> StationForecaster:
    """Train a new network on the samples; masked MSE on normalised corrections."""
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
    scale = torch.tensor([net.temperature_scale, net.precipitation_scale], device=device)
    features = torch.from_numpy(shard.features).to(device)
    anchor = torch.from_numpy(shard.anchor).to(device)
    target = (torch.from_numpy(shard.target).to(device) - anchor[:, None, :]) / scale
    known = torch.from_numpy(shard.target_known).to(device).float()
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = max(1, -(-len(shard) // config.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(shard), generator=generator).to(device)
        for i in range(steps_per_epoch):
            rows = order[i * config.batch_size : (i + 1) * config.batch_size]
            out = trainable(features[rows])
            err = (out - target[rows]) ** 2 * known[rows]
            loss = err.sum() / known[rows].sum().clamp(min=1.0)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    return model


def train(
    series: Mapping[str, StationSeries],
    config: TrainConfig,
    device: torch.device,
    spec: FeatureSpec | None = None,
    scenes: Mapping[str, Scenes] | None = None,
) -> TrainingResult:
    """Split, normalise on the training period, fit, and compare on the held-out period."""
    spec = spec or FeatureSpec()
    split = split_time(series, config.holdout_fraction)
    split_us = _to_us(split)
    before = [
        st.values[: max(0, st.hour_index(split))] for st in series.values() if st.start < split
    ]
    if not before:
        raise ValueError(f"train: no observations before the held-out period starting {split}")
    spec = fit_normalization(spec, before)
    # Training origins stop a horizon before the split so no target leaks into training.
    train_set = build_samples(
        spec, series, origin_to_us=split_us - spec.horizon_hours * _HOUR_US, scenes=scenes
    )
    test_set = build_samples(spec, series, origin_from_us=split_us, scenes=scenes)
    model = fit(train_set, NetConfig.for_spec(spec, config.hidden, config.layers), config, device)
    forecast = predict(model, test_set.features, test_set.anchor, device)
    climatology = fit_climatology(series, split_us)
    metrics = compare(forecast, test_set, climatology, spec.horizon_hours)
    first = min(s.start for s in series.values())
    last = max(s.start + timedelta(hours=s.values.shape[0]) for s in series.values())
    return TrainingResult(
        model=model,
        spec=spec,
        climatology=climatology,
        metrics=metrics,
        test=test_set,
        test_forecast=forecast,
        split=split.astimezone(UTC),
        period=(first, last),
        train_samples=len(train_set),
    )
