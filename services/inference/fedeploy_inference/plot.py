"""The held-out period drawn as a forecaster reads it (PNG bytes, or the matplotlib figure).

One station, named with its place (latitude, longitude, height); the data's name in the title
("(synthetic)" when they are); a UTC time axis. Every hourly value is drawn at the end of the
hour it describes (WMO: hourly means and accumulations are valid for the hour ending at their
time stamp): a forecast at +k h issued at t0 is for the hour [t0 + (k-1) h, t0 + k h) and stands
at t0 + k h. Temperature (hourly mean, degrees Celsius) as lines; precipitation (the hour's
amount) as bars spanning that hour; below them the model's skill by lead time from the
version's own metrics (`evaluation.compare`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in pods, SLURM jobs or CI

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fedeploy_inference.features import Samples  # noqa: E402

_HOUR_US = 3_600_000_000
_HOUR_DAYS = 1.0 / 24.0  # an hour in matplotlib's date unit (days)
TIME_AXIS_LABEL = "valid time (UTC): the end of the hour each value describes"
TEMPERATURE_LABEL = "air temperature (°C, hourly mean)"
PRECIPITATION_LABEL = "precipitation (mm in the hour)"
# (metrics key, label) of the skill panel's lines.
_SKILL_LINES = (
    ("air_temperature", "persistence", "temperature against persistence", "tab:red"),
    ("air_temperature", "climatology", "temperature against climatology", "lightsalmon"),
    ("precipitation", "persistence", "precipitation against persistence", "tab:blue"),
    ("precipitation", "climatology", "precipitation against climatology", "lightskyblue"),
)


def place_text(place: Mapping[str, Any] | None) -> str:
    """`46.52° N, 11.73° E, 540 m` from a station's latitude, longitude and elevation (metres
    above sea level); a part not known is said to be so."""
    place = place or {}
    lat, lon, height = (place.get(k) for k in ("latitude", "longitude", "elevation"))
    parts = [
        "latitude not recorded" if lat is None else f"{abs(lat):.2f}° {'N' if lat >= 0 else 'S'}",
        "longitude not recorded" if lon is None else f"{abs(lon):.2f}° {'E' if lon >= 0 else 'W'}",
        "height not recorded" if height is None else f"{height:.0f} m",
    ]
    return ", ".join(parts)


def period_text(first_us: int, last_us: int) -> str:
    """`6 to 30 April 2026`, `30 March to 2 May 2026`, `30 December 2025 to 2 January 2026`:
    the days (UTC) from one time stamp (microseconds since 1970) to another."""
    first, last = (datetime.fromtimestamp(int(t) / 1e6, tz=UTC) for t in (first_us, last_us))
    end = f"{last.day} {last:%B %Y}"
    if first.date() == last.date():
        return end
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day} to {end}"
    if first.year == last.year:
        return f"{first.day} {first:%B} to {end}"
    return f"{first.day} {first:%B %Y} to {end}"


def plot_station(samples: Samples, forecast: np.ndarray, lead_hours: int) -> str:
    """The station drawn: the one with the most observed precipitation targets in the held-out
    period at the plotted lead (so both panels show observations), ties going to the most
    temperature targets, then to the first name."""
    names = samples.station.astype(str)
    stations = np.unique(names)
    known = samples.target_known[:, _lead_index(lead_hours, forecast)]
    ranks = [(int(known[names == s, 1].sum()), int(known[names == s, 0].sum())) for s in stations]
    return str(stations[max(range(len(stations)), key=lambda i: ranks[i])])


def _lead_index(lead_hours: int, forecast: np.ndarray) -> int:
    return min(max(lead_hours, 1), forecast.shape[1]) - 1


def forecast_figure(
    samples: Samples,
    forecast: np.ndarray,
    lead_hours: int,
    title: str,
    places: Mapping[str, Mapping[str, Any]] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> tuple[Figure, str]:
    """The figure and the station it shows (`plot_station`). `title` names the data (and says
    `synthetic` when so); `places` maps stations to their latitude, longitude and elevation;
    `metrics` (`evaluation.compare`'s) gives the skill-by-lead panel."""
    station = plot_station(samples, forecast, lead_hours)
    rows = np.flatnonzero(samples.station.astype(str) == station)
    rows = rows[np.argsort(samples.origin_us[rows])]
    lead = _lead_index(lead_hours, forecast)
    # The end of the hour forecast: origin + (lead + 1) h.
    ends_us = samples.origin_us[rows] + (lead + 1) * _HOUR_US
    ends = mdates.date2num(ends_us.astype("datetime64[us]"))

    fig = plt.figure(figsize=(11, 10))
    grid = fig.add_gridspec(3, 1, height_ratios=(3, 2.5, 2.2), hspace=0.5)
    temperature = fig.add_subplot(grid[0])
    rain = fig.add_subplot(grid[1], sharex=temperature)
    skill = fig.add_subplot(grid[2])

    def observed(j: int) -> np.ndarray:
        return np.where(samples.target_known[rows, lead, j], samples.target[rows, lead, j], np.nan)

    temperature.plot(ends, observed(0), color="black", lw=1.0, label="observed")
    temperature.plot(
        ends,
        samples.anchor[rows, 0],
        color="tab:gray",
        lw=0.8,
        ls="--",
        label=f"persistence (+{lead + 1} h)",
    )
    temperature.plot(
        ends, forecast[rows, lead, 0], color="tab:red", lw=1.0, label=f"model (+{lead + 1} h)"
    )
    temperature.set_ylabel(TEMPERATURE_LABEL)

    seen = observed(1)
    has = ~np.isnan(seen)
    model_rain = forecast[rows, lead, 1]
    said = ~np.isnan(model_rain)
    # Each bar spans the hour it describes: from an hour before its stamp to the stamp. The
    # model's bars are filled; the observed ones are outlines drawn over them, so that over a
    # month (a pixel an hour) neither hides the other.
    rain.bar(
        ends[said],
        model_rain[said],
        width=-_HOUR_DAYS,
        align="edge",
        color="tab:blue",
        alpha=0.6,
        zorder=2,
        label=f"model (+{lead + 1} h)",
    )
    rain.bar(
        ends[has],
        seen[has],
        width=-_HOUR_DAYS,
        align="edge",
        fill=False,
        edgecolor="black",
        linewidth=0.6,
        zorder=3,
        label="observed",
    )
    # `steps-pre`: the value at a stamp holds over the hour before it, as the bars do.
    rain.plot(
        ends,
        samples.anchor[rows, 1],
        color="tab:gray",
        lw=0.8,
        ls="--",
        drawstyle="steps-pre",
        label=f"persistence (+{lead + 1} h)",
    )
    rain.set_ylabel(PRECIPITATION_LABEL)
    rain.set_ylim(bottom=0)

    locator = mdates.AutoDateLocator(tz=UTC)
    rain.xaxis.set_major_locator(locator)
    # No offset label: matplotlib derives it from the last tick, which may lie past the data
    # (data of 6 to 30 April were labelled "2026-May"); the label says the period instead.
    rain.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC, show_offset=False))
    rain.set_xlabel(f"{TIME_AXIS_LABEL} ({period_text(ends_us.min(), ends_us.max())})")
    temperature.tick_params(labelbottom=False)
    for ax in (temperature, rain):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)

    _skill_panel(skill, metrics or {}, lead + 1, len(np.unique(samples.station.astype(str))))

    place = place_text((places or {}).get(station))
    fig.suptitle(title, fontsize=12)
    temperature.set_title(
        f"station {station} ({place}): held-out period, forecasts issued {lead + 1} h ahead",
        fontsize=10,
    )
    return fig, station


def _skill_panel(ax, metrics: Mapping[str, Any], drawn_lead: int, stations: int) -> None:
    """1 - RMSE / RMSE of a baseline by lead hour (all stations of the held-out period), with
    the bootstrap interval where the metrics have one."""
    by_lead = metrics.get("skill_by_lead_hour") or {}
    intervals = metrics.get("skill_interval_by_lead_hour") or {}
    drawn = False
    for n, (target, baseline, label, color) in enumerate(_SKILL_LINES):
        values = (by_lead.get(baseline) or {}).get(target)
        if not values:
            continue
        leads = np.arange(1, len(values) + 1)
        y = np.array([np.nan if v is None else v for v in values], float)
        spans = (intervals.get(baseline) or {}).get(target) or [None] * len(values)
        x = leads + (n - 1.5) * 0.06  # side by side, each line's intervals visible
        ax.plot(x, y, marker="o", ms=4, lw=1.0, color=color, label=label)
        # A percentile interval need not hold the point estimate: drawn as it is, low to high.
        for k, span in zip(x, spans, strict=True):
            if span is not None:
                ax.vlines(k, span[0], span[1], color=color, lw=1.0)
        ax.set_xticks(leads)
        drawn = True
    ax.axhline(0.0, color="black", lw=0.8)
    ax.axvline(drawn_lead, color="0.7", lw=0.8, ls=":")
    ax.set_xlabel("lead time (hours after issue)")
    ax.set_ylabel("skill (1 - RMSE / RMSE of baseline)")
    confidence = (metrics.get("bootstrap") or {}).get("confidence")
    bars = f"; vertical lines: {confidence:.0%} interval" if confidence else ""
    ax.set_title(
        f"skill by lead time, all {stations} station(s) of the held-out period "
        f"(above 0: better than the baseline{bars})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(loc="lower left", fontsize=8, ncols=2)
    else:
        ax.text(
            0.5, 0.5, "no skill by lead time in the metrics", ha="center", transform=ax.transAxes
        )


def forecast_plot(
    samples: Samples,
    forecast: np.ndarray,
    lead_hours: int,
    title: str,
    places: Mapping[str, Mapping[str, Any]] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> tuple[bytes, str]:
    """PNG of `forecast_figure`, and the station it shows."""
    fig, station = forecast_figure(samples, forecast, lead_hours, title, places, metrics)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue(), station
