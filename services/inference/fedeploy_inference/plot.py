"""The held-out period drawn: forecasts against observations and persistence (PNG bytes)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display in pods, SLURM jobs or CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fedeploy_inference.features import Samples  # noqa: E402

_HOUR_US = 3_600_000_000


def forecast_plot(
    samples: Samples, forecast: np.ndarray, lead_hours: int, title: str
) -> tuple[bytes, str]:
    """PNG of one station at one lead time, and that station: the one with the most observed
    precipitation targets in the held-out period (so both panels show observations), ties going
    to the most temperature targets. `title` names the data (and says `synthetic` when so)."""
    names = samples.station.astype(str)
    stations = np.unique(names)
    known = samples.target_known[:, min(max(lead_hours, 1), forecast.shape[1]) - 1]
    ranks = [(int(known[names == s, 1].sum()), int(known[names == s, 0].sum())) for s in stations]
    station = str(stations[max(range(len(stations)), key=lambda i: ranks[i])])
    rows = np.flatnonzero(samples.station.astype(str) == station)
    rows = rows[np.argsort(samples.origin_us[rows])]
    lead = min(max(lead_hours, 1), forecast.shape[1]) - 1
    valid = (samples.origin_us[rows] + lead * _HOUR_US).astype("datetime64[us]")
    fig, axes = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for ax, j, label in (
        (axes[0], 0, "air temperature (degC)"),
        (axes[1], 1, "precipitation (mm/h)"),
    ):
        observed = np.where(
            samples.target_known[rows, lead, j], samples.target[rows, lead, j], np.nan
        )
        ax.plot(valid, observed, color="black", lw=1.0, label="observed")
        ax.plot(
            valid,
            samples.anchor[rows, j],
            color="tab:gray",
            lw=0.8,
            ls="--",
            label=f"persistence (+{lead + 1} h)",
        )
        ax.plot(
            valid, forecast[rows, lead, j], color="tab:blue", lw=1.0, label=f"model (+{lead + 1} h)"
        )
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[0].set_title(f"{title}: station {station}, held-out period")
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue(), station
