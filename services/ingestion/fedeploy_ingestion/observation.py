"""Edge observation messages, schema `fedeploy.observation/1`: validation and normalisation.

Pure: bytes in, an `Observation` or an `InvalidObservation` (with a reason) out.
docs/observation-schema.md documents the schema; `message_json_schema()` is its JSON Schema.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_ID = "fedeploy.observation/1"

# Station ids become parts of MQTT topics, object keys and STAC item ids.
STATION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$"
StationId = Annotated[
    str,
    Field(pattern=STATION_PATTERN, description="Letters, digits, '.' and '-', 1 to 64 characters."),
]

TOPIC_PATTERN = re.compile(r"^fedeploy/(?P<site>[^/]+)/stations/(?P<station>[^/]+)/observations$")


@dataclass(frozen=True)
class Variable:
    """A canonical variable: its unit, the units converted to it, and its plausible range."""

    unit: str
    minimum: float
    maximum: float
    conversions: dict[str, Callable[[float], float]] = field(default_factory=dict)


VARIABLES: dict[str, Variable] = {
    "air_temperature": Variable("degC", -100.0, 70.0, {"K": lambda k: k - 273.15}),
    "relative_humidity": Variable("%", 0.0, 100.0),
    "air_pressure": Variable("hPa", 300.0, 1100.0),
    "wind_speed": Variable("m s-1", 0.0, 120.0),
    "precipitation": Variable("mm", 0.0, 1000.0),
}

# How far ahead of the consumer's clock an observation may be stamped (clock skew).
MAX_FUTURE = timedelta(hours=1)


class InvalidObservation(ValueError):
    """A message that does not follow the schema; `code` is a short label for metrics."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Observation:
    """One validated observation, in canonical units, time in UTC."""

    station: str
    time: datetime
    values: dict[str, float]
    longitude: float | None = None
    latitude: float | None = None
    elevation: float | None = None

    @property
    def position_known(self) -> bool:
        """Whether the message carried a position."""
        return self.longitude is not None and self.latitude is not None

    def identity(self) -> tuple[str, datetime]:
        """What makes two observations the same one: a station reports once per instant."""
        return (self.station, self.time)

    def preference(self) -> str:
        """A total order among observations with the same identity (see `merge`)."""
        return json.dumps(
            [self.longitude, self.latitude, self.elevation, sorted(self.values.items())]
        )


# --- the message model -------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Position(_Strict):
    """Where the station is (WGS 84)."""

    longitude: float = Field(ge=-180, le=180, description="Degrees east, -180 to 180.")
    latitude: float = Field(ge=-90, le=90, description="Degrees north, -90 to 90.")
    elevation: float | None = Field(
        default=None, ge=-500, le=9000, description="Metres above mean sea level."
    )


class Measurement(_Strict):
    """One variable's value and the unit it is given in."""

    value: float = Field(allow_inf_nan=False, description="The measured value.")
    unit: str = Field(description="The unit of `value`; see the variables table.")


class ObservationMessage(_Strict):
    """An edge observation message, as published on `fedeploy/<site>/stations/<id>/observations`."""

    schema_: Literal["fedeploy.observation/1"] = Field(
        alias="schema", description="Schema name and version: `fedeploy.observation/1`."
    )
    station: StationId
    time: datetime = Field(description="When the observation was made: RFC 3339, UTC.")
    position: Position | None = Field(default=None, description="Where, if known.")
    variables: dict[str, Measurement] = Field(
        min_length=1, description="Measured variables by canonical name."
    )

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() != timedelta(0):
            raise ValueError("must be in UTC, ending in 'Z' or '+00:00'")
        return value.astimezone(UTC)


def message_json_schema() -> dict[str, Any]:
    """The JSON Schema of the message (what docs/observation-schema.md shows)."""
    return ObservationMessage.model_json_schema(by_alias=True)


# --- parsing -----------------------------------------------------------------------------


def parse_observation(payload: bytes, topic: str | None, now: datetime) -> Observation:
    """Validate one message; raise InvalidObservation with a code and a readable reason."""
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidObservation("not-json", f"payload is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidObservation(
            "schema", f"payload is a JSON {type(document).__name__}, not an object"
        )
    if document.get("schema") != SCHEMA_ID:
        raise InvalidObservation(
            "schema-version",
            f"'schema' is {document.get('schema')!r}; this consumer reads {SCHEMA_ID!r}",
        )
    try:
        message = ObservationMessage.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(message)'}: {e['msg']}"
            for e in error.errors()
        )
        raise InvalidObservation("schema", problems) from None
    if topic is not None:
        match = TOPIC_PATTERN.match(topic)
        if match and match["station"] != message.station:
            raise InvalidObservation(
                "topic-mismatch",
                f"topic names station {match['station']!r} but the message says "
                f"{message.station!r}",
            )
    if message.time > now + MAX_FUTURE:
        raise InvalidObservation(
            "future",
            f"time {message.time.isoformat()} is more than {MAX_FUTURE} ahead of "
            f"the consumer's clock ({now.isoformat()})",
        )
    values = {name: _canonical(name, m) for name, m in sorted(message.variables.items())}
    position = message.position
    return Observation(
        station=message.station,
        time=message.time,
        values=values,
        longitude=position.longitude if position else None,
        latitude=position.latitude if position else None,
        elevation=position.elevation if position else None,
    )


def _canonical(name: str, measurement: Measurement) -> float:
    variable = VARIABLES.get(name)
    if variable is None:
        raise InvalidObservation(
            "unknown-variable",
            f"variables.{name}: unknown variable; allowed: {', '.join(sorted(VARIABLES))}",
        )
    if measurement.unit == variable.unit:
        value = measurement.value
    elif measurement.unit in variable.conversions:
        value = variable.conversions[measurement.unit](measurement.value)
    else:
        allowed = ", ".join([variable.unit, *variable.conversions])
        raise InvalidObservation(
            "unit", f"variables.{name}.unit is {measurement.unit!r}; allowed: {allowed}"
        )
    if not (variable.minimum <= value <= variable.maximum) or math.isnan(value):
        raise InvalidObservation(
            "range",
            f"variables.{name} is {value:g} {variable.unit}; plausible range "
            f"{variable.minimum:g} to {variable.maximum:g} {variable.unit}",
        )
    return value


def merge(*batches: list[Observation]) -> list[Observation]:
    """One observation per identity, sorted by time: what a window stores.

    Redelivered messages repeat an identity. When two differ, the greater `preference()`
    wins, so the result depends only on the set of messages, never on their arrival order:
    rewriting a window after a crash gives the same bytes.
    """
    chosen: dict[tuple[str, datetime], Observation] = {}
    for batch in batches:
        for observation in batch:
            key = observation.identity()
            current = chosen.get(key)
            if current is None or observation.preference() > current.preference():
                chosen[key] = observation
    return sorted(chosen.values(), key=lambda o: (o.time, o.station))
