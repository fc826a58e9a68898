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
