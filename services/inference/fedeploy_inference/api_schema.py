"""Typed requests and responses of the prediction API (FastAPI answers 422 naming the field)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
)

from fedeploy_inference.contract import LIMITS

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


def _limited(variable: str, description: str) -> float | None:
    low, high = LIMITS[variable]
    return Field(None, ge=low, le=high, description=description)  # type: ignore[return-value]


class Observation(BaseModel):
    """One observation of a station, as the edge stream stores it; any variable may be missing."""

    model_config = _STRICT
    time: AwareDatetime = Field(description="Observation time (RFC 3339 with offset).")
    air_temperature: float | None = _limited("air_temperature", "degC")
    relative_humidity: float | None = _limited("relative_humidity", "%")
    air_pressure: float | None = _limited("air_pressure", "hPa")
    wind_speed: float | None = _limited("wind_speed", "m s-1")
    precipitation: float | None = _limited(
        "precipitation", "mm over the observation interval ending at `time`"
    )


class Scene(BaseModel):
    """The newest Sentinel scene over the station, if the caller knows one."""

    model_config = _STRICT
    cloud_cover: float = Field(ge=0, le=100, description="eo:cloud_cover of the scene, %.")
    acquired: AwareDatetime = Field(description="Acquisition time of the scene.")


_LOW_C, _HIGH_C = LIMITS["air_temperature"]
MAX_FORECAST_LEADS = 48  # a request's `forecast` (JSON) or forecast list (Arrow) at most


class PredictionRequest(BaseModel):
    """Forecast the hours from `issued_at` on, from observations before it."""

    model_config = _STRICT
    station: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    issued_at: AwareDatetime = Field(
        description="Forecast origin, a whole hour; observations must be before it."
    )
    longitude: float | None = Field(None, ge=-180, le=180, description="deg east")
    latitude: float | None = Field(None, ge=-90, le=90, description="deg north")
    observations: list[Observation] = Field(min_length=1, max_length=10_000)
    scene: Scene | None = None
    # Strict: a JSON number or null per lead (true or "3" would be read as 1 or 3 degC).
    forecast: list[Annotated[float | None, Strict(), Field(ge=_LOW_C, le=_HIGH_C)]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_FORECAST_LEADS,
        description="NWP 2 m temperature at the station (degC; nearest grid point, lapse-rate "
        "corrected) for lead hours 1, 2, ... (the middle of each hour), a number or null where "
        "none (no strings or booleans), from "
        "the newest run published before issued_at: required by a model trained with NWP input "
        "(GET /v1/model: features.nwp), refused by one without.",
    )

    @field_validator("issued_at")
    @classmethod
    def _whole_hour(cls, value: datetime) -> datetime:
        if value.minute or value.second or value.microsecond:
            raise ValueError(f"{value.isoformat()} given; a whole hour (mm:ss = 00:00) is allowed")
        return value

    @field_validator("observations")
    @classmethod
    def _before_origin(cls, value: list[Observation], info: ValidationInfo) -> list[Observation]:
        origin = info.data.get("issued_at")
        if origin is None:
            return value
        for i, obs in enumerate(value):
            if obs.time >= origin:
                raise ValueError(
                    f"observations[{i}].time {obs.time.isoformat()} is not before issued_at "
                    f"{origin.isoformat()}; only past observations are allowed"
                )
        return value


class BatchRequest(BaseModel):
    """Several forecasts in one call (at most the server's INFER_MAX_BATCH)."""

    model_config = _STRICT
    requests: list[PredictionRequest] = Field(min_length=1)


class ModelRef(BaseModel):
    """Which model answered."""

    name: str
    version: str


class LeadForecast(BaseModel):
    """The forecast for the hour [time, time + 1 h)."""

    lead_hours: int
    time: datetime
    air_temperature: float | None = Field(
        description="degC, hourly mean; null when the station has not reported temperature"
    )
    precipitation: float | None = Field(
        description="mm in the hour; null when the station has not reported precipitation in "
        "the history the server looks at (INFER_OBSERVED_HISTORY_HOURS)"
    )
    reason: dict[str, str] = Field(
        default_factory=dict,
        description="Per variable answered null, why: e.g. `precipitation`: `no observations "
        "of precipitation at this station`. Empty when every variable is forecast.",
    )


class PredictionResponse(BaseModel):
    """One station's forecast."""

    station: str
    issued_at: datetime
    model: ModelRef
    forecast: list[LeadForecast]


class BatchResponse(BaseModel):
    """Forecasts in the order of the requests."""

    predictions: list[PredictionResponse]
