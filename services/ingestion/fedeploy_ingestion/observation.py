"""Edge observation messages, schema `fedeploy.observation/1`: validation and normalisation.

Pure: bytes in, an `Observation` or an `InvalidObservation` (with a reason code) out, and
nothing else: whatever goes wrong with one message is that message's `InvalidObservation`.
Strict: numbers must be JSON numbers (never strings or booleans), times RFC 3339 strings
(never epoch seconds), within a plausible window (`Limits`).
docs/observation-schema.md documents the schema; `message_json_schema()` is its JSON Schema.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fedeploy_ingestion.decoding import DecodeLimits, InvalidObservation, decode_message

__all__ = [
    "InvalidObservation",
    "Limits",
    "Observation",
    "canonical_value",
    "check_time",
    "parse_observation",
]
log = logging.getLogger(__name__)

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
    "air_pressure": Variable("hPa", 300.0, 1100.0, {"Pa": lambda pa: pa / 100.0}),
    "wind_speed": Variable("m s-1", 0.0, 120.0),
    "precipitation": Variable("mm", 0.0, 1000.0, {"kg m-2": lambda kg: kg}),
}

# RFC 3339 section 5.6 date-time: four-digit year, seconds required, an offset required;
# fractional seconds up to 12 digits (time-secfrac is 1*DIGIT: nanoseconds are valid; the
# parsed time keeps microseconds).
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,12})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


@dataclass(frozen=True)
class Limits:
    """What a consumer accepts: decoder bounds, and the plausible window of observation times.

    `earliest`: no observation before it (a station whose clock was never set reports 1970);
    `max_future`: how far ahead of the consumer's clock a time may be (clock skew).
    """

    decode: DecodeLimits = DecodeLimits()
    earliest: datetime = datetime(1950, 1, 1, tzinfo=UTC)
    max_future: timedelta = timedelta(minutes=10)


DEFAULT_LIMITS = Limits()
# A device whose clock was never set counts from the Unix epoch (uptime since boot): a time
# on the epoch's first day is that, not an observation, whatever the plausible window says.
UNSET_CLOCK_DAY = (datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 2, tzinfo=UTC))
NEVER_PUBLISHED = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Observation:
    """One validated observation, in canonical units, time in UTC.

    `published`: when its report was published (a WIS2 notification's `pubtime`, UTC; None
    for own-format messages); `correction`: its correction rank (0 the original report, 1 the
    first correction: a BUFR update sequence number or a `CCA` bulletin). Both order reports
    of one station and time (`merge`)."""

    station: str
    time: datetime
    values: dict[str, float]
    longitude: float | None = None
    latitude: float | None = None
    elevation: float | None = None
    published: datetime | None = None
    correction: int = 0

    @property
    def position_known(self) -> bool:
        """Whether the message carried a position."""
        return self.longitude is not None and self.latitude is not None

    def identity(self) -> tuple[str, datetime]:
        """What makes two observations the same one: a station reports once per instant."""
        return (self.station, self.time)

    def preference(self) -> tuple[bool, datetime, int, str]:
        """A total order among observations with the same identity (see `merge`): the later
        publication, then the higher correction rank, then the greater content."""
        return (
            self.published is not None,
            self.published or NEVER_PUBLISHED,
            self.correction,
            json.dumps(
                [self.longitude, self.latitude, self.elevation, sorted(self.values.items())]
            ),
        )


# --- the message model -------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Position(_Strict):
    """Where the station is (WGS 84)."""

    longitude: float = Field(strict=True, ge=-180, le=180, description="Degrees east, -180 to 180.")
    latitude: float = Field(strict=True, ge=-90, le=90, description="Degrees north, -90 to 90.")
    elevation: float | None = Field(
        default=None, strict=True, ge=-500, le=9000, description="Metres above mean sea level."
    )


class Measurement(_Strict):
    """One variable's value and the unit it is given in."""

    value: float = Field(
        strict=True, allow_inf_nan=False, description="The measured value (a JSON number)."
    )
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

    @field_validator("time", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        if not isinstance(value, str) or not RFC3339.match(value):
            raise ValueError(
                f"must be an RFC 3339 date-time string such as '2024-06-01T11:59:30Z', "
                f"not {type(value).__name__} {str(value)[:40]!r}"
            )
        return value

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


def parse_observation(
    payload: bytes, topic: str | None, now: datetime, limits: Limits = DEFAULT_LIMITS
) -> Observation:
    """Validate one message; raise InvalidObservation with a code and a readable reason.

    Raises nothing else: an unforeseen failure on one message is its `invalid` refusal.
    """
    try:
        return _parse(payload, topic, now, limits)
    except InvalidObservation:
        raise
    except Exception as error:  # noqa: BLE001 - one message fails alone, whatever it holds
        log.exception("unforeseen failure validating a message")
        raise InvalidObservation(
            "invalid", f"message could not be validated: {type(error).__name__}: {error}"
        ) from None


def _parse(payload: bytes, topic: str | None, now: datetime, limits: Limits) -> Observation:
    document = decode_message(payload, limits.decode)
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
    check_time(message.time, now, limits)
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


def check_time(time: datetime, now: datetime, limits: Limits) -> None:
    """Refuse an observation time outside the plausible window (`future`, `too-old`,
    `clock-unset`), as InvalidObservation; every message format passes it."""
    if time > now + limits.max_future:
        raise InvalidObservation(
            "future",
            f"time {time.isoformat()} is more than {limits.max_future} ahead of "
            f"the consumer's clock ({now.isoformat()})",
        )
    if time < limits.earliest:
        raise InvalidObservation(
            "too-old",
            f"time {time.isoformat()} is before {limits.earliest.isoformat()}, the "
            "earliest plausible observation",
        )
    if UNSET_CLOCK_DAY[0] <= time < UNSET_CLOCK_DAY[1]:
        raise InvalidObservation(
            "clock-unset",
            f"time {time.isoformat()} is on 1970-01-01, the Unix epoch's first day: "
            "the station's clock was never set",
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


def canonical_value(name: str, value: float, unit: str) -> float:
    """`value` of variable `name` given in `unit`, converted to the variable's canonical unit
    and range-checked; InvalidObservation (`unknown-variable`, `unit`, `range`) otherwise."""
    return _canonical(name, Measurement(value=value, unit=unit))


def merge(*batches: list[Observation]) -> list[Observation]:
    """One observation per identity, sorted by time: what a window stores.

    Redelivered messages and corrections repeat an identity. When two differ, the greater
    `preference()` wins: the later publication (`published`), then the higher correction
    rank, then (own-format messages, which carry neither) the greater content. The result
    depends only on the set of reports, never on their arrival order: rewriting a window after
    a crash, or by a second replica, gives the same bytes.
    """
    chosen: dict[tuple[str, datetime], Observation] = {}
    for batch in batches:
        for observation in batch:
            key = observation.identity()
            current = chosen.get(key)
            if current is None or observation.preference() > current.preference():
                chosen[key] = observation
    return sorted(chosen.values(), key=lambda o: (o.time, o.station))
