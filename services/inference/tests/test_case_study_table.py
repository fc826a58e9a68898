"""The case study's printed forecast (examples/case-study/run.py): the station the published
plot shows, named with its place, each value stamped at the end of the hour it describes."""

import importlib.util
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fedeploy_inference.contract import VARIABLES
from fedeploy_inference.model_card import dataset_title
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.synthetic import SyntheticSpec
from fedeploy_inference.train_from_store import describe_dataset, record_dataset

CASE_STUDY = Path(__file__).resolve().parents[3] / "examples" / "case-study"


@pytest.fixture(scope="module")
def run():
    """examples/case-study/run.py as a module (it imports edge_stream from its folder)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(CASE_STUDY))
        spec = importlib.util.spec_from_file_location("case_study_run", CASE_STUDY / "run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def _data(series, station):
    start = min(st.start for st in series.values())
    return {"split": (start + timedelta(days=30)).isoformat(), "plot_station": station}


def _answer(request, temperatures):
    """A /v1/predict answer as the server gives it (`time`: the start of the hour)."""
    issued = datetime.fromisoformat(request["issued_at"].replace("Z", "+00:00"))
    return {
        "station": request["station"],
        "issued_at": request["issued_at"],
        "forecast": [
            {
                "lead_hours": k,
                "time": (issued + timedelta(hours=k - 1)).isoformat(),
                "air_temperature": t,
                "precipitation": 0.0,
            }
            for k, t in enumerate(temperatures, start=1)
        ],
    }


@pytest.mark.parametrize("pick", [0, -1])
def test_the_request_is_for_the_station_the_published_plot_shows(run, small_data, pick):
    station = sorted(small_data.series)[pick]
    request, _ = run.prediction_request(small_data.series, _data(small_data.series, station))
    assert request["station"] == station


def test_the_table_names_the_plots_station_with_its_place(run, small_data):
    station = sorted(small_data.series)[0]
    st = small_data.series[station]
    request, observed = run.prediction_request(small_data.series, _data(small_data.series, station))
    place = {"latitude": st.latitude, "longitude": st.longitude, "elevation": st.elevation}
    lines = run.forecast_table(_answer(request, [1.0] * 6), request, observed, place)
    assert lines[0].startswith(f"forecast for station {station} (")
    assert f"{st.latitude:.2f}° N, {st.longitude:.2f}° E, {st.elevation:.0f} m" in lines[0]
    assert "UTC" in lines[1] and "°C" in lines[1]


def test_the_valid_time_is_the_end_of_the_hour_each_line_describes(run, small_data):
    """Issued 06:00: +1 h is the hour 06:00-07:00, printed 07:00, beside the observation of
    that hour (bin 06:00 of the hourly series)."""
    station = sorted(small_data.series)[1]
    st = small_data.series[station]
    request, observed = run.prediction_request(small_data.series, _data(small_data.series, station))
    issued = datetime.fromisoformat(request["issued_at"].replace("Z", "+00:00"))
    assert issued.hour == 6
    lines = run.forecast_table(_answer(request, [1.0] * 6), request, observed, {})
    rows = lines[2:]
    assert len(rows) == 6
    for k, row in enumerate(rows, start=1):
        valid = issued + timedelta(hours=k)
        assert row.split()[:2] == [f"+{k}h", f"{valid:%Y-%m-%dT%H:%MZ}"]
    first = st.hour_index(issued)  # the bin [06:00, 07:00)
    expected = st.values[first, VARIABLES.index("air_temperature")]
    if not np.isnan(expected):
        assert float(rows[0].split()[4]) == pytest.approx(expected, abs=0.005)


def test_the_demo_records_its_data_as_synthetic(run, settings):
    client = s3_client(settings)
    spec = SyntheticSpec(stations=3, days=30)
    record_dataset(client, settings.bucket, run.demo_dataset_name(spec), synthetic=True)
    title = dataset_title(describe_dataset(client, settings.bucket))
    # Said once: the demo's name says synthetic, so no "(synthetic)" is added (review 34, P3).
    assert title.lower().count("synthetic") == 1 and "3 stations, 30 days" in title
