"""The messages edge stations publish (`fedeploy.observation/1`), as tests send them to a broker
(`MosquittoBroker.publish`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def observation(
    station: str,
    moment: datetime,
    temperature: float = 12.5,
    position: tuple[float, float] | None = (11.35, 46.5),
    *,
    humidity: float | None = 61.0,
    **extra: Any,
) -> dict[str, Any]:
    """A valid `fedeploy.observation/1` message: air temperature (and relative humidity unless
    `humidity` is None) at `moment`, from a station at `position` (none: a station without
    one); `extra` adds or replaces fields."""
    variables: dict[str, Any] = {"air_temperature": {"value": temperature, "unit": "degC"}}
    if humidity is not None:
        variables["relative_humidity"] = {"value": humidity, "unit": "%"}
    message: dict[str, Any] = {
        "schema": "fedeploy.observation/1",
        "station": station,
        "time": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "variables": variables,
    }
    if position:
        message["position"] = {
            "longitude": position[0],
            "latitude": position[1],
            "elevation": 262.0,
        }
    message.update(extra)
    return message


def encoded(message: dict[str, Any]) -> bytes:
    """The message as the payload a station publishes (JSON, UTF-8)."""
    return json.dumps(message).encode()
