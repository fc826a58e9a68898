"""The published forecast plot as a forecaster reads it: the data named ("(synthetic)" when so),
the station with its place, a UTC time axis, each hourly value at the end of its hour,
precipitation as bars, temperature in degrees Celsius, skill by lead time."""

from datetime import UTC, datetime, timedelta

import matplotlib
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pytest
from fedeploy_inference import plot
from fedeploy_inference.registry import publish
from fedeploy_inference.s3 import s3_client
from matplotlib.container import BarContainer

from tests.samples import DATA

HOUR = 1 / 24


def _places(series):
    return {
        name: {"latitude": st.latitude, "longitude": st.longitude, "elevation": st.elevation}
        for name, st in series.items()
    }


@pytest.fixture
def published(settings, trained, small_data, monkeypatch):
    """The figure `publish` draws for a synthetic data set with its stations' places."""
    drawn = []
    original = plot.forecast_figure

    def keep(*args, **kwargs):
        fig, station = original(*args, **kwargs)
        drawn.append(fig)
        return fig, station

    monkeypatch.setattr(plot, "forecast_figure", keep)
    data = {
        **DATA,
        "name": "small set",
        "synthetic": True,
        "station_places": _places(small_data.series),
    }
    publish(s3_client(settings), settings.bucket, "m", trained, data)
    assert len(drawn) == 1
    yield drawn[0]
    plt.close(drawn[0])


def _axes(fig):
    temperature, rain, skill = fig.axes
    return temperature, rain, skill


def test_the_title_says_synthetic_and_names_the_station_and_its_place(
    published, trained, small_data
):
    temperature, _, _ = _axes(published)
    assert "small set (synthetic)" in published.get_suptitle()
    station = plot.plot_station(trained.test, trained.test_forecast, 3)
    st = small_data.series[station]
    title = temperature.get_title()
    assert f"station {station} (" in title
    assert f"{st.latitude:.2f}° N" in title and f"{st.longitude:.2f}° E" in title
    assert f"{st.elevation:.0f} m" in title


def test_the_time_axis_is_labelled_and_in_utc_whatever_matplotlib_is_told(trained):
    with matplotlib.rc_context({"timezone": "Asia/Kolkata"}):  # UTC+05:30
        fig, _ = plot.forecast_figure(trained.test, trained.test_forecast, 3, "t")
        _, rain, _ = _axes(fig)
        assert "UTC" in rain.get_xlabel()
        midnight = mdates.date2num(datetime(2026, 2, 20, tzinfo=UTC))
        # The same instant is labelled with its UTC hour (00:00), not 05:30.
        labels = rain.xaxis.get_major_formatter().format_ticks(
            [midnight, midnight + 6 * HOUR, midnight + 12 * HOUR]
        )
        assert labels[1:] == ["06:00", "12:00"]
        plt.close(fig)


def test_temperature_is_in_degrees_celsius_and_precipitation_is_bars_over_its_hour(trained):
    fig, station = plot.forecast_figure(trained.test, trained.test_forecast, 3, "t")
    temperature, rain, _ = _axes(fig)
    assert "°C" in temperature.get_ylabel()
    assert "mm" in rain.get_ylabel()
    bars = [c for c in rain.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2  # observed and model
    rows = trained.test.station.astype(str) == station
    known = trained.test.target_known[rows, 2, 1].sum()
    observed = next(c for c in bars if c.get_label() == "observed")
    assert len(observed.patches) == known > 0
    # Each observed bar spans exactly one hour and ends at a whole hour (its valid time).
    for patch in observed.patches[:5]:
        left, right = sorted((patch.get_x(), patch.get_x() + patch.get_width()))
        assert right - left == pytest.approx(HOUR)
        assert right * 24 == pytest.approx(round(right * 24), abs=1e-6)
    plt.close(fig)


def test_each_value_is_stamped_at_the_end_of_the_hour_it_describes(trained):
    """Lead +3 h issued at t0 is the hour [t0 + 2 h, t0 + 3 h): drawn at t0 + 3 h."""
    fig, station = plot.forecast_figure(trained.test, trained.test_forecast, 3, "t")
    temperature, rain, _ = _axes(fig)
    rows = np.flatnonzero(trained.test.station.astype(str) == station)
    first_origin = int(trained.test.origin_us[rows].min())
    expected = mdates.date2num(
        datetime.fromtimestamp(first_origin / 1e6, tz=UTC) + timedelta(hours=3)
    )
    observed_line = next(line for line in temperature.lines if line.get_label() == "observed")
    assert observed_line.get_xdata()[0] == pytest.approx(expected, abs=1e-9)
    # The observed value drawn there is the hour the sample's third target bin holds.
    first = rows[np.argmin(trained.test.origin_us[rows])]
    if trained.test.target_known[first, 2, 0]:
        assert observed_line.get_ydata()[0] == pytest.approx(trained.test.target[first, 2, 0])
    observed_bars = next(c for c in rain.containers if c.get_label() == "observed")
    ends = [max(p.get_x(), p.get_x() + p.get_width()) for p in observed_bars.patches]
    assert min(ends) >= expected - 1e-9
    plt.close(fig)


def test_skill_by_lead_time_comes_from_the_versions_metrics(published, trained):
    _, _, skill = _axes(published)
    assert "lead time" in skill.get_xlabel()
    by_lead = trained.metrics["skill_by_lead_hour"]
    for target, baseline, label, _ in plot._SKILL_LINES:
        line = next(line for line in skill.lines if line.get_label() == label)
        expected = [np.nan if v is None else v for v in by_lead[baseline][target]]
        np.testing.assert_allclose(line.get_ydata(), expected)
        assert np.round(line.get_xdata()).tolist() == list(range(1, len(expected) + 1))


def test_a_station_without_a_recorded_place_says_so(trained):
    fig, _ = plot.forecast_figure(trained.test, trained.test_forecast, 3, "t", places={})
    title = fig.axes[0].get_title()
    assert "latitude not recorded" in title and "height not recorded" in title
    plt.close(fig)


def test_place_text_names_the_hemispheres():
    assert plot.place_text({"latitude": -33.9, "longitude": -70.65, "elevation": 520.4}) == (
        "33.90° S, 70.65° W, 520 m"
    )


def _us(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1_000_000)


def test_the_period_is_said_in_the_axis_label_not_an_offset_from_a_tick_past_the_data(trained):
    """Data of 6 to 30 April were labelled "2026-May" (the offset of the last tick, past the
    data): the label says the days the data cover, and no offset is drawn."""
    assert plot.period_text(_us(2026, 4, 6, 1), _us(2026, 4, 30, 23)) == "6 to 30 April 2026"
    assert plot.period_text(_us(2026, 3, 30), _us(2026, 5, 2)) == "30 March to 2 May 2026"
    assert plot.period_text(_us(2025, 12, 30), _us(2026, 1, 2)) == (
        "30 December 2025 to 2 January 2026"
    )
    fig, station = plot.forecast_figure(trained.test, trained.test_forecast, 3, "t")
    _, rain, _ = _axes(fig)
    fig.canvas.draw()
    rows = trained.test.station.astype(str) == station
    ends = trained.test.origin_us[rows] + 3 * 3_600_000_000
    assert f"({plot.period_text(ends.min(), ends.max())})" in rain.get_xlabel()
    assert rain.xaxis.get_major_formatter().get_offset() == ""
    assert rain.xaxis.get_offset_text().get_text() == ""
    plt.close(fig)


def test_observed_precipitation_is_an_outline_over_the_models_bars(trained):
    """Over a month the grey observed bars were hidden under the blue model bars."""
    fig, _ = plot.forecast_figure(trained.test, trained.test_forecast, 3, "t")
    _, rain, _ = _axes(fig)
    bars = {c.get_label(): c for c in rain.containers if isinstance(c, BarContainer)}
    observed, model = bars["observed"], bars["model (+3 h)"]
    assert all(not p.get_fill() for p in observed.patches)
    assert min(p.get_zorder() for p in observed.patches) > max(
        p.get_zorder() for p in model.patches
    )
    for patch in model.patches[:5]:  # the model's bar spans its hour too
        assert abs(patch.get_width()) == pytest.approx(HOUR)
    plt.close(fig)


def test_a_name_that_says_synthetic_is_not_marked_synthetic_twice():
    from fedeploy_inference.model_card import dataset_title

    named = {"name": "fedeploy synthetic set (4 stations)", "synthetic": True}
    assert dataset_title(named) == "fedeploy synthetic set (4 stations)"
    assert dataset_title({"name": "small set", "synthetic": True}) == "small set (synthetic)"
    assert dataset_title({"name": "DWD stations"}) == "DWD stations"
