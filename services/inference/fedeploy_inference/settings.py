"""The service's settings, read from the environment (prefix `INFER_`), one typed model.

The inference chart maps its values onto these names one to one; docs/model.md lists them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# A version is `latest` or what `registry.new_version` makes: a UTC timestamp and a digest.
MODEL_VERSION_PATTERN = r"^(latest|[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8})$"


class InferenceSettings(BaseSettings):
    """Everything the service reads from its environment; secrets stay `SecretStr`."""

    model_config = SettingsConfigDict(env_prefix="INFER_", extra="ignore", frozen=True)

    s3_endpoint_url: str = Field(
        "", description="S3 endpoint URL; empty means AWS S3 in `s3_region`."
    )
    s3_region: str = Field("us-east-1", description="Region of the site's bucket.")
    bucket: str = Field(
        min_length=3,
        max_length=63,
        description="The site's bucket: observation windows in, models and forecasts out.",
    )
    model_name: str = Field(
        "station-forecast",
        pattern=MODEL_NAME_PATTERN,
        description="Model name; versions live under `models/<name>/<version>/`.",
    )
    model_version: str = Field(
        "latest",
        pattern=MODEL_VERSION_PATTERN,
        description="`latest` follows `models/<name>/LATEST`; a pinned version never changes.",
    )
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="`auto` takes the GPU where there is one; `cuda` fails without one."
    )
    catalog_url: str = Field(
        "",
        description="STAC API of the site: Sentinel scenes for features, forecasts registered. "
        "Empty: no Sentinel features, batch results are not registered.",
    )
    sentinel_collection: str = Field(
        "sentinel-2-l2a",
        description="Collection whose scenes' `eo:cloud_cover` feeds the model.",
    )
    forecast_collection: str = Field(
        "station-forecasts", description="Collection that batch prediction runs register into."
    )
    bridge_url: str = Field("", description="SLURM bridge endpoint (slurmrestd).")
    bridge_user: str = Field("", description="User the bridge submits jobs as.")
    bridge_user_file: str = Field(
        "",
        description="File holding that user's name (the bridge Secret mounted as a volume), read "
        "at each submit with the token it belongs to; takes precedence over `bridge_user`.",
    )
    bridge_token: SecretStr = Field(
        SecretStr(""),
        description="Bridge token (secret; never logged). For use outside a pod; a pod reads "
        "`bridge_token_file` instead.",
    )
    bridge_token_file: str = Field(
        "",
        description="File holding the bridge token (the bridge Secret mounted as a volume), "
        "read at each submit, so a rotated token reaches a running process; takes precedence "
        "over `bridge_token`.",
    )
    bridge_partition: str = Field("", description="SLURM partition; empty: the default one.")
    bridge_ca_file: str = Field(
        "", description="CA bundle that signed the bridge's TLS certificate; empty: system CAs."
    )
    host: str = Field(
        "127.0.0.1",
        description="Address the HTTP server binds; the image passes `--host 0.0.0.0`.",
    )
    port: int = Field(8080, ge=1, le=65535, description="HTTP port.")
    poll_seconds: float = Field(
        30.0, gt=0, le=3600, description="How often the server looks for a newer version."
    )
    max_batch: int = Field(
        1024, ge=1, le=65536, description="Most requests one batched prediction call may carry."
    )
    body_receive_rate: float = Field(
        float(2**20),
        gt=0,
        description="Slowest rate (bytes/s) a request body is waited for: a body not received "
        "within 10 s plus its Content-Length (else the size cap) at this rate is answered 408 "
        "and its connection closed.",
    )
    body_buffer_mib: int = Field(
        1024,
        ge=1,
        description="Request bodies (MiB) the server holds at once, all connections together, "
        "counted as their bytes arrive and until their requests are answered: a body that "
        "would pass it is answered 503 with Retry-After and its connection closed (a body "
        "larger than the whole budget is taken alone). It bounds the bodies, not the memory "
        "their reading and forecasts take besides (about 1.3 times an Arrow body's size).",
    )
    observed_history_hours: int = Field(
        24,
        ge=1,
        le=8760,
        description="Hours before a forecast origin in which a station must have reported a "
        "variable for it to be forecast (never less than the model's context); otherwise the "
        "variable is answered null with a reason, by the API and in batch runs.",
    )
