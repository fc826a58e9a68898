"""Window keys as the data contract lays them out; observations binned to hours."""

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from fedeploy_inference.contract import VARIABLES, WINDOW_SCHEMA, WindowKey, parse_window_key
from fedeploy_inference.hourly import to_hourly

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def test_window_key_follows_the_contract_and_reads_back():
    key = WindowKey("st-1", T0, datetime(2026, 3, 1, 6, tzinfo=UTC))
    assert key.key == "observations/st-1/2026/03/01/st-1_20260301T000000Z_20260301T060000Z.parquet"
    assert parse_window_key(key.key) == key


def test_keys_that_are_not_windows_are_not_read_as_windows():
    assert parse_window_key("observations/st-1/2026/03/01/notes.txt") is None
    # The file name must repeat the station of the folder.
    assert (
        parse_window_key(
            "observations/st-1/2026/03/01/st-2_20260301T000000Z_20260301T060000Z.parquet"
        )
        is None
    )


def _table(rows):
    columns = {f.name: [] for f in WINDOW_SCHEMA}
    for station, minute, temp, rain in rows:
        columns["station"].append(station)
        columns["time"].append(datetime(2026, 3, 1, minute // 60, minute % 60, tzinfo=UTC))
        for name in ("longitude", "latitude", "elevation"):
            columns[name].append(1.0)
        for name in VARIABLES:
            columns[name].append(None)
        columns["air_temperature"][-1] = temp
        columns["precipitation"][-1] = rain
    return pa.Table.from_pydict(columns, schema=WINDOW_SCHEMA)


def test_hourly_bins_average_states_and_sum_precipitation():
    table = _table([("a", 0, 1.0, 0.2), ("a", 30, 3.0, 0.3), ("a", 130, None, None)])
    series = to_hourly(table)["a"]
    t = series.values[:, VARIABLES.index("air_temperature")]
    p = series.values[:, VARIABLES.index("precipitation")]
    assert series.start == T0
    assert t[0] == 2.0 and np.isclose(p[0], 0.5)
    assert np.isnan(t[1]) and np.isnan(p[1]), "an hour without observations is missing, not 0"
    assert series.values.shape[0] == 3


def test_an_observation_repeated_across_windows_counts_once():
    table = _table([("a", 0, 1.0, 0.5), ("a", 0, 1.0, 0.5), ("b", 0, 5.0, 0.0)])
    series = to_hourly(table)
    assert series["a"].values[0, VARIABLES.index("precipitation")] == 0.5
    assert set(series) == {"a", "b"}


def test_implausible_values_are_dropped_when_read():
    table = _table([("a", 0, 1.0, 0.0), ("a", 10, 99.0, 2000.0)])
    series = to_hourly(table)["a"]
    assert series.values[0, VARIABLES.index("air_temperature")] == 1.0
    assert series.values[0, VARIABLES.index("precipitation")] == 0.0
