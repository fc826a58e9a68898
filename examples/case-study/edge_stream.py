"""The synthetic data set as an edge stream: one `fedeploy.observation/1` message per row,
published to `fedeploy/<site>/stations/<station>/observations` at QoS 1."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import pyarrow as pa
from fedeploy_inference.contract import UNITS, VARIABLES
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def messages(site: str, tables: Iterable[pa.Table]) -> Iterator[tuple[str, bytes]]:
    """(topic, payload) for every row of the windows, missing values left out."""
    for table in tables:
        for row in table.to_pylist():
            variables = {
                name: {"value": row[name], "unit": UNITS[name]}
                for name in VARIABLES
                if row[name] is not None
            }
            if not variables:
                continue
            payload = {
                "schema": "fedeploy.observation/1",
                "station": row["station"],
                "time": row["time"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "position": {
                    "longitude": row["longitude"],
                    "latitude": row["latitude"],
                    "elevation": row["elevation"],
                },
                "variables": variables,
            }
            topic = f"fedeploy/{site}/stations/{row['station']}/observations"
            yield topic, json.dumps(payload).encode()


def publish(host: str, port: int, stream: Iterable[tuple[str, bytes]], in_flight: int = 20) -> int:
    """Publish at QoS 1, at most `in_flight` unacknowledged at once; the count published."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="case-study-edge")
    client.max_inflight_messages_set(in_flight)
    client.connect(host, port)
    client.loop_start()
    count = 0
    pending = []
    try:
        for topic, payload in stream:
            pending.append(client.publish(topic, payload, qos=1))
            count += 1
            if len(pending) >= 1000:
                for info in pending:
                    info.wait_for_publish(timeout=60)
                pending.clear()
        for info in pending:
            info.wait_for_publish(timeout=60)
    finally:
        client.loop_stop()
        client.disconnect()
    return count


# --- the same rows as WIS2 notifications linking to BUFR (run.py --wis2) ------------------

WIS2_TOPIC = "origin/a/wis2/xx-case-study/data/core/weather/surface-based-observations/synop"
# Model unit -> the BUFR unit of the element (bufr.py maps them back).
_TO_BUFR = {
    "air_temperature": ("airTemperature", lambda v: v + 273.15),
    "air_pressure": ("nonCoordinatePressure", lambda v: v * 100.0),
    "relative_humidity": ("relativeHumidity", lambda v: round(v)),
    "wind_speed": ("windSpeed", lambda v: v),
    "precipitation": ("totalPrecipitationOrTotalWaterEquivalent", lambda v: v),
}


def wis2_station(station: str) -> str:
    """The station id the WIS2 path stores: the WIGOS id with `station` as local identifier."""
    return f"0-20000-0-{station}"


def wis2_files(
    tables: Iterable[pa.Table], base_url: str
) -> tuple[dict[str, bytes], list[tuple[str, bytes]]]:
    """One BUFR file per observation time (every station's row as a subset), and a WIS2
    notification per file: (path -> bytes served under `base_url`, [(topic, payload)])."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from services.ingestion.tests.bufr_encode import Station, encode
    from services.ingestion.tests.wis2_build import notification, payload

    by_time: dict[object, list[Station]] = {}
    for table in tables:
        for row in table.to_pylist():
            values = {
                bufr: convert(row[name])
                for name, (bufr, convert) in _TO_BUFR.items()
                if name in VARIABLES and row[name] is not None
            }
            if not values:
                continue
            by_time.setdefault(row["time"], []).append(
                Station(
                    row["time"],
                    wigos=row["station"],
                    latitude=row["latitude"],
                    longitude=row["longitude"],
                    height=row["elevation"],
                    values=values,
                )
            )
    files: dict[str, bytes] = {}
    notes: list[tuple[str, bytes]] = []
    for moment, stations in sorted(by_time.items()):
        path = f"/synop/{moment:%Y%m%dT%H%M%S}.bufr4"
        files[path] = encode(stations)
        note = notification(
            files[path],
            base_url + path,
            data_id=f"case-study{path}",
            pubtime=f"{moment:%Y-%m-%dT%H:%M:%SZ}",
            when=moment,
        )
        notes.append((f"{WIS2_TOPIC}/{moment:%Y%m%d}", payload(note)))
    return files, notes
