"""The network: a small MLP that forecasts corrections to the best baseline it is given.

It sees the encoded context (features.encode) and the anchor (what persistence forecasts) and
returns, per lead hour, air temperature (degC) and precipitation (mm, never negative). Working
in corrections to persistence keeps a barely trained model no worse than persistence itself.
A model with NWP input (`NetConfig.nwp_base`) corrects the lapse-rate corrected NWP
temperature instead, for each lead hour that has one (persistence where none): untrained, it
is the NWP itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from fedeploy_inference.features import PRECIPITATION, SCENE_COLUMNS, TEMPERATURE, FeatureSpec


@dataclass(frozen=True)
class NetConfig:
    """Shape of the network; stored with the weights."""

    n_features: int
    horizon_hours: int
    hidden: int = 128
    layers: int = 2
    temperature_scale: float = 1.0
    precipitation_scale: float = 1.0
    # Precipitation forecasts below this amount (mm) are given as 0: trained on squared error
    # the network spreads a little rain over every hour that might see some; the threshold is
    # calibrated on the validation period (training.calibrate_dry_threshold).
    dry_below_mm: float = 0.0
    # Temperature is a correction to the NWP forecast the features carry (FeatureSpec.nwp: per
    # lead hour the forecast minus the anchor in temperature standard deviations, then a flag),
    # not to persistence, for each lead hour with a forecast.
    nwp_base: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form; `nwp_base` only where true (a model without NWP input is stored
        exactly as before it existed)."""
        data = asdict(self)
        if not self.nwp_base:
            del data["nwp_base"]
        return data

    @classmethod
    def for_spec(cls, spec: FeatureSpec, hidden: int = 128, layers: int = 2) -> NetConfig:
        """A config whose output scales are the spec's standard deviations; a spec with NWP
        input gives a network correcting the NWP (`nwp_base`)."""
        return cls(
            n_features=spec.n_features,
            horizon_hours=spec.horizon_hours,
            hidden=hidden,
            layers=layers,
            temperature_scale=spec.std[TEMPERATURE],
            precipitation_scale=spec.std[PRECIPITATION],
            nwp_base=spec.nwp,
        )


def baseline(config: NetConfig, features: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """What the corrections are added to, (B, horizon, 2) in physical units: the anchor
    (persistence), or where `nwp_base` the NWP temperature for the lead hours that have one
    (from the features' NWP columns)."""
    base = anchor[:, None, :]
    if not config.nwp_base:
        return base
    h = config.horizon_hours
    end = features.shape[1] - SCENE_COLUMNS
    delta = features[:, end - 2 * h : end - h] * features[:, end - h : end]
    temperature = anchor[:, None, 0] + delta * config.temperature_scale
    return torch.stack([temperature, base[..., 1].expand(-1, h)], dim=-1)


class StationForecaster(nn.Module):
    """features (B, F) and anchor (B, 2) -> forecast (B, horizon, 2) in physical units."""

    scale: torch.Tensor  # a buffer (register_buffer): the output scales, (2,)

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        width = config.n_features
        for _ in range(config.layers):
            blocks += [nn.Linear(width, config.hidden), nn.GELU()]
            width = config.hidden
        last = nn.Linear(width, config.horizon_hours * 2)
        blocks.append(last)
        self.net = nn.Sequential(*blocks)
        scale = torch.tensor([config.temperature_scale, config.precipitation_scale])
        self.register_buffer("scale", scale, persistent=True)
        if config.nwp_base:
            # Untrained, the model is its baseline: the NWP where there is one.
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def corrections(self, features: torch.Tensor) -> torch.Tensor:
        """Raw output in normalised units (B, horizon, 2): what the loss is computed on."""
        return self.net(features).view(-1, self.config.horizon_hours, 2)

    def forward(self, features: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        out = self.corrections(features) * self.scale
        base = baseline(self.config, features, anchor)
        temperature = base[..., 0] + out[..., 0]
        precipitation = torch.relu(anchor[:, None, 1] + out[..., 1])
        if self.config.dry_below_mm > 0:
            dry = precipitation < self.config.dry_below_mm
            precipitation = precipitation.masked_fill(dry, 0.0)
        return torch.stack([temperature, precipitation], dim=-1)
