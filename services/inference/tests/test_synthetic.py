"""The generator writes the contract's windows and the signal it documents."""

import numpy as np
import pytest
from fedeploy_inference.contract import VARIABLES, WINDOW_SCHEMA, parse_window_key
from fedeploy_inference.synthetic import SyntheticSpec, generate


def test_windows_have_the_contract_schema_and_keys(small_data):
    key, table = small_data.windows[0]
    assert table.schema.equals(WINDOW_SCHEMA)
    assert parse_window_key(key.key) == key
    assert all(k.start < k.end for k, _ in small_data.windows)


def test_same_seed_same_data_other_seed_other_data():
    spec = SyntheticSpec(stations=1, days=4)
    first = [t for _, t in generate(spec)]
    again = [t for _, t in generate(spec)]
    other = [t for _, t in generate(SyntheticSpec(stations=1, days=4, seed=99))]
    assert all(a.equals(b) for a, b in zip(first, again, strict=True))
    assert not all(a.equals(b) for a, b in zip(first, other, strict=False))


def test_diurnal_cycle_peaks_in_the_afternoon(small_data):
    st = small_data.series["syn-000"]
    temp = st.values[:, VARIABLES.index("air_temperature")]
    hours = np.arange(temp.size) % 24
    by_hour = np.array([np.nanmean(temp[hours == h]) for h in range(24)])
    assert 12 <= int(np.argmax(by_hour)) <= 16
    assert by_hour.max() - by_hour.min() > 6.0


def test_pressure_falls_before_rain(small_data):
    st = small_data.series["syn-001"]
    pressure = st.values[:, VARIABLES.index("air_pressure")]
    rain = st.values[:, VARIABLES.index("precipitation")]
    wet = np.flatnonzero(np.nan_to_num(rain) >= 0.5)
    wet = wet[wet >= 12]
    assert wet.size > 5, "fronts bring rain"
    fall = np.nanmean(pressure[wet - 12] - pressure[wet])
    assert fall > 2.0, f"pressure 12 h before rain is only {fall:.2f} hPa above"
    assert np.nanmean(pressure[wet]) < np.nanmean(pressure) - 3.0


def test_gaps_are_there(small_data):
    values = np.concatenate([s.values for s in small_data.series.values()])
    missing = np.isnan(values).mean(axis=0)
    assert (missing > 0.005).all(), "every variable has missing values"
    rows = sum(t.num_rows for _, t in small_data.windows)
    assert rows < 3 * 60 * 24, "outages drop whole observations"


def test_bad_spec_is_refused_with_the_field_named():
    with pytest.raises(ValueError, match="step_minutes"):
        SyntheticSpec(step_minutes=7)
