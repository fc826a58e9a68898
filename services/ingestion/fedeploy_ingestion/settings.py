"""Every setting of the service, from the environment (prefix INGEST_; HARVEST_ for the hub).

The `ingestion` chart's values map onto these names one to one; docs/ingestion.md lists them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from fedeploy_ingestion.errors import ConfigError
from fedeploy_ingestion.windowing import check_window_seconds

COPERNICUS_STAC_URL = "https://stac.dataspace.copernicus.eu/v1"
COPERNICUS_TOKEN_URL = (
    "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
)
# Where Copernicus Data Space serves (and redirects) product downloads.
COPERNICUS_DOWNLOAD_HOSTS = (
    "download.dataspace.copernicus.eu",
    "zipper.dataspace.copernicus.eu",
    "catalogue.dataspace.copernicus.eu",
    "eodata.dataspace.copernicus.eu",
)
NAME_PATTERN = r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$"
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def check_download_host(value: str) -> str:
    """A host name ('*.' admits its sub-domains) or an IP address, lower case."""
    host = value.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.removeprefix("*.").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a host name ('download.example.org', '*.example.org') "
            "or an IP address"
        )
    return host


DownloadHost = Annotated[str, AfterValidator(check_download_host)]
SiteName = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description=(
            "Lower-case letters, digits and '-', 3 to 24 characters, starting with a letter."
        ),
    ),
]


def check_bbox(
    value: tuple[float, float, float, float] | None,
) -> tuple[float, float, float, float] | None:
    """west, south, east, north in degrees, each within its range (ValueError if not)."""
    if value is None:
        return value
    west, south, east, north = value
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise ValueError(f"bbox longitudes must be within -180..180, got {west}, {east}")
    if not (-90 <= south <= north <= 90):
        raise ValueError(f"bbox needs -90 <= south <= north <= 90, got {south}, {north}")
    return value


def check_time_window(value: str | None) -> str | None:
    """A source's time window as given: a STAC interval, or an ISO 8601 duration ('P3D')."""
    if value and value.startswith("P"):
        try:
            TypeAdapter(dt.timedelta).validate_python(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 duration such as 'P3D'") from None
    return value


def time_window(value: str | None, now: dt.datetime) -> str | None:
    """The STAC interval of a time window: a duration becomes `<now - duration>/<now>`."""
    if value and value.startswith("P"):
        span = TypeAdapter(dt.timedelta).validate_python(value)
        start, end = (now - span).astimezone(dt.UTC), now.astimezone(dt.UTC)
        fmt = "%m-%dT%H:%M:%SZ"  # the year separately: always four digits
        return f"{start.year:04d}-{start:{fmt}}/{end.year:04d}-{end:{fmt}}"
    return value


class Source(BaseModel):
    """One upstream STAC API to copy Sentinel products from (an entry of INGEST_SOURCES)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: SiteName = Field(description="A name for logs and metrics.")
    url: str = Field(
        default=COPERNICUS_STAC_URL,
        pattern=r"^https?://",
        description="The STAC API root; Copernicus Data Space by default.",
    )
    collections: list[str] = Field(min_length=1, description="Collections to search.")
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="Area: west, south, east, north in degrees (WGS 84)."
    )
    datetime: str | None = Field(
        default=None,
        description="Time window: a STAC interval ('2024-01-01T00:00:00Z/..') or an ISO 8601 "
        "duration back from now ('P3D', 'PT12H'), for a CronJob's rolling window.",
    )
    assets: list[str] = Field(min_length=1, description="Asset names to copy.")
    max_cloud_cover: float | None = Field(
        default=None,
        ge=0,
        le=100,
        alias="maxCloudCover",
        description="Keep items whose eo:cloud_cover is at most this (percent).",
    )
    max_items: int | None = Field(
        default=None, ge=1, alias="maxItems", description="At most this many items per run."
    )
    token_url: str | None = Field(
        default=None,
        alias="tokenUrl",
        description="OpenID Connect token endpoint: the credentials are exchanged there for a "
        "bearer token (password grant). Defaults to Copernicus's for the "
        "Copernicus URL; without it credentials are sent as HTTP Basic.",
    )
    client_id: str = Field(
        default="cdse-public",
        alias="clientId",
        description="OpenID Connect client id for `tokenUrl`.",
    )
    download_hosts: list[DownloadHost] = Field(
        default_factory=list,
        alias="downloadHosts",
        description="Hosts besides the search host that assets may be downloaded from, and that "
        "receive the credentials ('*.example.org' admits its sub-domains); Copernicus's download "
        "hosts are added for the Copernicus URL. An href or redirect to any other host is "
        "refused.",
    )
    private_hosts: list[DownloadHost] = Field(
        default_factory=list,
        alias="privateHosts",
        description="Hosts of this source that may resolve to loopback or private addresses (an "
        "on-premises mirror); link-local addresses and the cluster's ranges stay refused.",
    )

    @field_validator("bbox")
    @classmethod
    def _bbox(cls, value: tuple[float, float, float, float] | None):
        return check_bbox(value)

    @field_validator("datetime")
    @classmethod
    def _datetime(cls, value: str | None) -> str | None:
        return check_time_window(value)

    @model_validator(mode="after")
    def _copernicus_token(self) -> Source:
        if self.token_url is None and self.url.rstrip("/") == COPERNICUS_STAC_URL:
            object.__setattr__(self, "token_url", COPERNICUS_TOKEN_URL)
        return self

    @model_validator(mode="after")
    def _copernicus_download_hosts(self) -> Source:
        if self.url.rstrip("/") == COPERNICUS_STAC_URL:
            hosts = list(dict.fromkeys([*self.download_hosts, *COPERNICUS_DOWNLOAD_HOSTS]))
            object.__setattr__(self, "download_hosts", hosts)
        return self

    def search_datetime(self, now: dt.datetime) -> str | None:
        """The datetime interval to search: a duration becomes `<now - duration>/<now>`."""
        return time_window(self.datetime, now)


class AgencySource(BaseModel):
    """What every agency source kind declares: a name, an area, and its hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: SiteName = Field(description="A name for logs, reports and metrics.")
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="Area: west, south, east, north in degrees (WGS 84)."
    )
    download_hosts: list[DownloadHost] = Field(
        default_factory=list,
        alias="downloadHosts",
        description="Hosts besides the url's that files and redirects may come from (and "
        "that receive the source's token, where it has one).",
    )
    private_hosts: list[DownloadHost] = Field(
        default_factory=list,
        alias="privateHosts",
        description="Hosts of this source that may resolve to loopback or private addresses "
        "(a mirror on the site's network); link-local and the cluster's ranges stay refused.",
    )

    @field_validator("bbox")
    @classmethod
    def _bbox(cls, value: tuple[float, float, float, float] | None):
        return check_bbox(value)


ECMWF_OPEN_DATA_URL = "https://data.ecmwf.int/forecasts"
_ECMWF_WORD = r"^[a-z0-9][a-z0-9_-]{0,23}$"
# A parameter: no '_' (the item id's separator of parameters) and no level word (the item id's
# last word: `sfc`, `sol`, `pl500_850`, `l500`), so that two selections never share an item id.
_ECMWF_PARAM = r"^[a-z0-9]{1,24}$"
_LEVEL_WORD = re.compile(r"^(?:sfc|sol|pl|l)[0-9]*$")


# The hours (UTC) at which ECMWF's open-data forecasts run.
RunHour = Literal[0, 6, 12, 18]


def _midnight_and_noon() -> list[RunHour]:
    """The runs an EcmwfSource copies unless it names its own: 00 and 12 UTC."""
    return [0, 12]


class EcmwfSource(AgencySource):
    """ECMWF open-data forecasts to copy (an entry of INGEST_ECMWF_SOURCES): one product per
    run, step and this source's parameters, read by byte ranges from the file's `.index`."""

    url: str = Field(
        default=ECMWF_OPEN_DATA_URL,
        pattern=r"^https?://",
        description="The open-data root (`<url>/<yyyymmdd>/<HH>z/<model>/...`): ECMWF's by "
        "default, or a mirror (AWS, Azure, Google, or one of the site's own).",
    )
    model: Literal["ifs", "aifs-single", "aifs-ens"] = Field(
        default="ifs", description="IFS, or the AIFS (single or ensemble)."
    )
    resol: str = Field(default="0p25", pattern=r"^[0-9]p[0-9]+(-beta)?$", description="Grid.")
    stream: Literal["oper", "wave", "scda", "scwv", "enfo", "waef"] = Field(
        default="oper", description="ECMWF stream: oper (deterministic), enfo (ensemble)..."
    )
    type: Literal["fc", "cf", "pf", "em", "es", "ep"] = Field(
        default="fc", description="ECMWF type: fc forecast, cf/pf control/perturbed members..."
    )
    steps: list[Annotated[int, Field(ge=0, le=1440)]] = Field(
        min_length=1, max_length=400, description="Forecast steps, hours after the run."
    )
    params: list[Annotated[str, Field(pattern=_ECMWF_PARAM)]] = Field(
        min_length=1,
        max_length=32,
        description="Parameters by ECMWF short name (2t, msl, tp): letters and digits, not a "
        "level word (sfc, sol, pl500, l500), so that the item id names one selection.",
    )
    levtype: Literal["sfc", "pl", "sol"] | None = Field(
        default=None, description="Level type; both when unset."
    )
    levelist: list[Annotated[int, Field(ge=1, le=1000)]] = Field(
        default_factory=list, description="Pressure levels (hPa) of upper-air parameters."
    )
    times: list[RunHour] = Field(
        default_factory=_midnight_and_noon, min_length=1, description="Run hours (UTC)."
    )
    datetime: str = Field(
        default="P1D",
        description="Runs to copy: a closed interval of run times "
        "('2026-12-01T00:00:00Z/2026-12-02T00:00:00Z') or an ISO 8601 duration back from now.",
    )
    bbox: tuple[float, float, float, float] | None = Field(
        default=None,
        description="Area of interest, west, south, east, north (degrees): recorded in each item "
        "(`fedeploy:area_of_interest`); the open-data files are global and copied whole.",
    )
    max_product_mib: int = Field(
        default=2048,
        ge=1,
        le=1024 * 1024,
        alias="maxProductMiB",
        description="Largest product (the selected messages together), from the index, "
        "before any byte of it is read; a larger one fails alone.",
    )

    # No credentials: ECMWF's open data is anonymous (upstream.Credentials sends nothing).
    token_url: None = None

    @field_validator("datetime")
    @classmethod
    def _datetime(cls, value: str) -> str:
        checked = check_time_window(value) or ""
        if not checked.startswith("P"):
            start, _, end = checked.partition("/")
            for end_point in (start, end):
                try:
                    dt.datetime.fromisoformat(end_point)
                except ValueError:
                    raise ValueError(
                        f"{value!r} is neither a duration ('P1D') nor a closed interval of two "
                        "RFC 3339 times"
                    ) from None
        return checked

    @field_validator("params")
    @classmethod
    def _params(cls, value: list[str]) -> list[str]:
        words = [p for p in value if _LEVEL_WORD.match(p)]
        if words:
            raise ValueError(
                f"{', '.join(words)}: a level word (sfc, sol, pl500, l500), not a parameter; "
                "levels are levtype and levelist"
            )
        return value

    def runs(self, now: dt.datetime) -> list[dt.datetime]:
        """The run times of the window at `now`, oldest first (UTC)."""
        window = time_window(self.datetime, now) or ""
        start, end = (dt.datetime.fromisoformat(t).astimezone(dt.UTC) for t in window.split("/", 1))
        runs: list[dt.datetime] = []
        day = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
        while day <= end and len(runs) < 1000:
            for hour in sorted(set(self.times)):
                run = day + dt.timedelta(hours=hour)
                if start <= run <= end:
                    runs.append(run)
            day += dt.timedelta(days=1)
        return runs


EUMETSAT_API_URL = "https://api.eumetsat.int"


# Products one EUMETSAT collection copies a run unless its maxItems says otherwise.
EUMETSAT_MAX_ITEMS = 1000


class EumetsatSource(AgencySource):
    """EUMETSAT Data Store collections to copy (an entry of INGEST_EUMETSAT_SOURCES): the
    products whose sensing time meets the window and whose footprint meets the area."""

    url: str = Field(
        default=EUMETSAT_API_URL,
        pattern=r"^https?://",
        description="The API root eumdac's endpoints hang from (its `[DEFAULT] api`): token, "
        "search and download; EUMETSAT's by default.",
    )
    collections: list[Annotated[str, Field(pattern=r"^EO:[A-Z0-9][A-Z0-9:_-]{0,100}$")]] = Field(
        min_length=1, description="Data Store collection ids (EO:EUM:DAT:MSG:HRSEVIRI)."
    )
    datetime: str = Field(
        default="P1D",
        description="Sensing times: an interval ('2026-12-01T00:00:00Z/2026-12-02T00:00:00Z') "
        "or an ISO 8601 duration back from now.",
    )
    max_items: int = Field(
        default=EUMETSAT_MAX_ITEMS,
        ge=1,
        le=10000,
        alias="maxItems",
        description="At most this many products a collection per run (1000 unless set; the "
        "Data Store pages through 10000 at most).",
    )
    max_product_mib: int = Field(
        default=4096,
        ge=1,
        le=1024 * 1024,
        alias="maxProductMiB",
        description="Largest product accepted (its Content-Length); a larger one fails alone.",
    )

    @field_validator("datetime")
    @classmethod
    def _datetime(cls, value: str) -> str:
        return check_time_window(value) or value

    def sensing_window(self, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
        """(start, end) of the window at `now`, UTC; None for an open end ('..')."""
        window = time_window(self.datetime, now) or "../.."
        start, _, end = window.partition("/")
        return tuple(  # type: ignore[return-value]
            None if t in ("", "..") else dt.datetime.fromisoformat(t).astimezone(dt.UTC)
            for t in (start, end)
        )


class EodagSource(AgencySource):
    """Products of one EODAG provider to copy (an entry of INGEST_EODAG_SOURCES): ESA's and
    other catalogues EODAG knows (`cop_dataspace`, `dedl`, ...), or a STAC API given as `url`."""

    provider: str = Field(
        pattern=r"^[a-z][a-z0-9_]{1,40}$",
        description="EODAG provider name (cop_dataspace, dedl, creodias...); with `url`, the "
        "name given to that STAC API.",
    )
    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="A STAC API EODAG does not know, added as provider `provider`.",
    )
    collections: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,100}$")]] = (
        Field(min_length=1, description="Collections, as EODAG names them (S2_MSI_L2A).")
    )
    datetime: str = Field(
        default="P1D", description="Time window: an interval, or a duration back from now."
    )
    assets: list[str] = Field(min_length=1, description="Asset names to copy.")
    max_items: int | None = Field(
        default=None, ge=1, alias="maxItems", description="At most this many items per run."
    )
    token_url: str | None = Field(
        default=None,
        alias="tokenUrl",
        description="OpenID Connect token endpoint for the download credentials (password "
        "grant); Copernicus's for provider cop_dataspace; without it, HTTP Basic.",
    )
    client_id: str = Field(default="cdse-public", alias="clientId", description="OIDC client.")
    max_cloud_cover: None = None  # what SentinelRun's items read; EODAG filters by its own

    @field_validator("datetime")
    @classmethod
    def _datetime(cls, value: str) -> str:
        return check_time_window(value) or value

    @model_validator(mode="after")
    def _copernicus(self) -> EodagSource:
        if self.provider == "cop_dataspace":
            if self.token_url is None:
                object.__setattr__(self, "token_url", COPERNICUS_TOKEN_URL)
            hosts = list(dict.fromkeys([*self.download_hosts, *COPERNICUS_DOWNLOAD_HOSTS]))
            object.__setattr__(self, "download_hosts", hosts)
        return self

    def search_datetime(self, now: dt.datetime) -> str | None:
        """The window as a STAC interval."""
        return time_window(self.datetime, now)


POLYTOPE_DESTINE_URL = "https://polytope.lumi.apps.dte.destination-earth.eu"
_MARS_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# A key or e-mail in an HTTP header: printable ASCII, no space (a file's final newline is cut).
_HEADER_WORD = re.compile(r"^[\x21-\x7e]{1,4096}$")
_MARS_TEXT = re.compile(r"^[A-Za-z0-9._:/+ -]{1,512}$")
_MARS_DATE = re.compile(r"^(?:[0-9]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2}|to|by|[1-9][0-9]{0,3})$")
# A feature (Polytope's feature extraction: timeseries, polygon...) as JSON, at most this long.
MAX_FEATURE_CHARS = 16 * 1024


def mars_words(value: object) -> list[str]:
    """A MARS value as its words: '2t/msl', ['2t', 'msl'] and 167 alike."""
    items = value if isinstance(value, list) else str(value).split("/")
    return [str(item).strip() for item in items if str(item).strip()]


def check_mars_request(request: dict[str, object]) -> dict[str, object]:
    """A MARS-language request as Polytope takes it (ValueError naming the key if not): keys
    lower case, values words, numbers or lists of them (`feature` a JSON object), `date`
    absolute (yyyymmdd, yyyy-mm-dd, `to`, `by`): a relative date ('-1') would give one
    identity to changing data."""
    import json

    for key in ("date", "param"):
        if key not in request:
            raise ValueError(f"the request names no {key!r} (a product is a date's params)")
    if "dataset" not in request and "class" not in request:
        raise ValueError("the request names neither 'dataset' nor 'class'")
    for key, value in request.items():
        if not _MARS_KEY.match(key):
            raise ValueError(f"{key!r} is not a MARS key (lower-case letters, digits, '_')")
        if key == "feature":
            if not isinstance(value, dict) or len(json.dumps(value)) > MAX_FEATURE_CHARS:
                raise ValueError(
                    f"feature must be a JSON object of at most {MAX_FEATURE_CHARS} characters"
                )
            continue
        items = value if isinstance(value, list) else [value]
        if not items or len(items) > 1000:
            raise ValueError(f"{key}: give 1 to 1000 values")
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise ValueError(f"{key}: {item!r} is not a word or a number")
            if isinstance(item, str) and not _MARS_TEXT.match(item):
                raise ValueError(
                    f"{key}: {item[:40]!r} holds characters a MARS value does not (letters, "
                    "digits, '.', '_', ':', '/', '+', '-', spaces)"
                )
    bad = [word for word in mars_words(request["date"]) if not _MARS_DATE.match(word)]
    if bad:
        raise ValueError(
            f"date: {', '.join(bad)} is not an absolute date (yyyymmdd or yyyy-mm-dd, 'to', "
            "'by'): a relative date would copy changing data under one identity"
        )
    return request


class PolytopeSource(AgencySource):
    """Requests to ECMWF's Polytope to copy (an entry of INGEST_POLYTOPE_SOURCES): DestinE's
    digital-twin data (collection destination-earth), one product per MARS request."""

    url: str = Field(
        default=POLYTOPE_DESTINE_URL,
        pattern=r"^https?://",
        description="Polytope's address (polytope-client's `address`): DestinE's by default. "
        "Only its host receives the key.",
    )
    collection: str = Field(
        default="destination-earth",
        pattern=r"^[a-z][a-z0-9-]{1,62}$",
        description="Polytope collection: destination-earth (DestinE's digital twins), "
        "ecmwf-mars, ...",
    )
    requests: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=200,
        description="MARS-language requests, one product each: class, dataset (climate-dt, "
        "extremes-dt), activity, experiment, model, generation, realization, expver, stream, "
        "type, levtype, param, date, time, step, and an area or a feature.",
    )
    max_product_mib: int = Field(
        default=2048,
        ge=1,
        le=1024 * 1024,
        alias="maxProductMiB",
        description="Largest result accepted (its Content-Length, before any byte is read); "
        "a larger one fails alone.",
    )
    poll_seconds: float = Field(
        default=5.0,
        ge=0.01,
        le=600,
        alias="pollSeconds",
        description="First wait between polls of a queued request (then 1.2 times longer "
        "each time, at most 120 s).",
    )
    max_wait_minutes: float = Field(
        default=60.0,
        gt=0,
        le=24 * 60,
        alias="maxWaitMinutes",
        description="How long one request may stay queued or processing before it fails "
        "alone (the next run submits it again).",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        alias="maxAttempts",
        description="Reads of one result in a run (a download cut midway is resumed with a "
        "Range request where the result's host serves ranges, read again from its start where "
        "it does not).",
    )

    # The key is one for all Polytope sources (INGEST_POLYTOPE_KEY), sent to `url`'s host only.
    token_url: None = None

    @field_validator("requests")
    @classmethod
    def _requests(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for number, request in enumerate(value):
            try:
                check_mars_request(request)
            except ValueError as error:
                raise ValueError(f"requests[{number}]: {error}") from None
        return value


# The longest upstream read timeout taken (an hour): larger ones, 1e10 or inf, overflow the
# socket's timeout on every request.
MAX_HTTP_TIMEOUT_SECONDS = 3600
# The longest run deadline taken (a week): a Job's activeDeadlineSeconds is hours.
MAX_RUN_DEADLINE_SECONDS = 7 * 24 * 3600


class IngestSettings(BaseSettings):
    """The ingestion service's settings (environment variables INGEST_<NAME>)."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_", extra="ignore", frozen=True, populate_by_name=True
    )

    site: SiteName | None = Field(default=None, description="This site's name.")
    # --- object storage
    s3_endpoint_url: str = Field(
        default="", description="S3 endpoint URL; empty means AWS's regional endpoint."
    )
    s3_region: str = Field(default="", description="S3 region; empty means boto3's default.")
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto",
        description="'auto' is virtual-hosted on AWS and path-style for a custom endpoint.",
    )
    bucket: str = Field(default="", description="The site's bucket.")
    part_size_mib: int = Field(
        default=16, ge=5, le=5120, description="Multipart part size for Sentinel copies (MiB)."
    )
    max_asset_gib: float = Field(
        default=50.0,
        gt=0,
        le=5120,
        description="The largest Sentinel asset copied (GiB; S3 takes at most 5 TiB): one "
        "whose file:size or Content-Length says more fails before anything is read or "
        "allocated. 50 GiB holds every Sentinel-1/2/3 product, whole SAFE archives included.",
    )
    # --- catalog
    catalog_url: str = Field(default="", description="The site's STAC API root (transactions on).")
    # --- Sentinel sources
    sources: list[Source] = Field(
        default_factory=list, description="JSON list of upstream sources (see Source)."
    )
    ecmwf_sources: list[EcmwfSource] = Field(
        default_factory=list,
        description="JSON list of ECMWF open-data forecast sources (see EcmwfSource).",
    )
    eumetsat_sources: list[EumetsatSource] = Field(
        default_factory=list,
        description="JSON list of EUMETSAT Data Store sources (see EumetsatSource).",
    )
    eumetsat_consumer_key: SecretStr | None = Field(
        default=None, description="EUMETSAT API consumer key (from a Secret)."
    )
    eumetsat_consumer_secret: SecretStr | None = Field(
        default=None, description="EUMETSAT API consumer secret (from a Secret)."
    )
    eodag_sources: list[EodagSource] = Field(
        default_factory=list,
        description="JSON list of EODAG sources (see EodagSource); needs the `eodag` extra.",
    )
    eodag_username: SecretStr | None = Field(
        default=None, description="EODAG sources' download user (from a Secret)."
    )
    eodag_password: SecretStr | None = Field(
        default=None, description="EODAG sources' download password (from a Secret)."
    )
    polytope_sources: list[PolytopeSource] = Field(
        default_factory=list,
        description="JSON list of Polytope sources (see PolytopeSource): DestinE's digital twins.",
    )
    polytope_run_minutes: float = Field(
        default=300.0,
        gt=0,
        le=24 * 60,
        description="The Polytope run's budget: requests still queued at its end fail (the "
        "next run submits them again), and a result read stops there. Keep it below the "
        "CronJob's activeDeadlineSeconds (6 h) less the other sources' time.",
    )
    polytope_key: SecretStr | None = Field(
        default=None,
        description="The Polytope key (DestinE's or ECMWF's API key, from a Secret): sent as "
        "`Bearer <key>` to the Polytope host only.",
    )
    polytope_email: SecretStr | None = Field(
        default=None,
        description="The ECMWF account's e-mail, for an ECMWF key (`EmailKey <email>:<key>`); "
        "unset for DestinE's bearer key.",
    )
    source_username: SecretStr | None = Field(
        default=None, description="Download user (from a Secret)."
    )
    source_password: SecretStr | None = Field(
        default=None, description="Download password (from a Secret)."
    )
    http_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=MAX_HTTP_TIMEOUT_SECONDS,
        description="Timeout of one upstream HTTP read (seconds, at most an hour); a Sentinel "
        "asset's answer headers get twice it per hop and four times over all hops.",
    )
    run_deadline_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RUN_DEADLINE_SECONDS,
        description="The time one run of `fedeploy-ingest sentinel` may take (the chart passes "
        "the Job's activeDeadlineSeconds). Less a tenth (at most 10 minutes) to register, it "
        "is shared by the sources, Sentinel's then the agencies': each in turn gets an equal "
        "share of what is left, and its copies in flight fail when that share ends; unset: "
        "none.",
    )
    copy_min_rate_kib_s: float = Field(
        default=64.0,
        ge=0,
        description="The slowest a copied asset's or product's body (Sentinel's and the "
        "agencies') may come, in KiB/s over each 60 s "
        "spent waiting on the upstream (the wait for its headers included); slower, the asset "
        "fails. Each copy must also end within twice its bytes' time at this rate plus 10 "
        "minutes (0: no floor and no such deadline).",
    )
    search_max_pages: int = Field(
        default=2000,
        ge=1,
        description="Search pages one source's search may take in a run; past it the source "
        "fails (a paginator that never ends), the report printed.",
    )
    blocked_networks: list[str] = Field(
        default_factory=list,
        description="JSON list of CIDRs no download may connect to, besides the loopback, "
        "private and link-local ranges always refused: the cluster's pod and service ranges.",
    )
    # --- MQTT
    mqtt_host: str = Field(default="", description="Broker host name.")
    mqtt_port: int = Field(
        default=8883, ge=1, le=65535, description="Broker port (8883: MQTT over TLS)."
    )
    mqtt_topics: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated topic filters; default fedeploy/<site>/stations/+/observations.",
    )
    mqtt_username: str | None = Field(default=None, description="Broker user name.")
    mqtt_password: SecretStr | None = Field(default=None, description="Broker password.")
    mqtt_tls: bool = Field(
        default=True,
        description="Connect with TLS (the default). Turning it off with a user name or "
        "password set must be explicit (INGEST_MQTT_TLS=false) and is logged as a warning.",
    )
    mqtt_ca_file: str | None = Field(
        default=None, description="CA bundle for TLS; system CAs when empty."
    )
    mqtt_client_id: str | None = Field(
        default=None,
        description="Stable client id of the persistent session; default "
        "fedeploy-ingest-<site>-<shard index>.",
    )
    mqtt_session_expiry_seconds: int = Field(
        default=7 * 86_400,
        ge=60,
        description="How long the broker keeps the session (and queues) while disconnected.",
    )
    # --- WIS2 (INGEST_STREAM_FORMAT=wis2: the topics carry WIS2 notification messages)
    stream_format: Literal["fedeploy", "wis2"] = Field(
        default="fedeploy",
        description="What the subscribed topics carry: 'fedeploy' (fedeploy.observation/1 "
        "JSON) or 'wis2' (WIS2 notification messages linking to BUFR data).",
    )
    wis2_download_hosts: list[DownloadHost] = Field(
        default_factory=list,
        description="JSON list of hosts a WIS2 canonical link may be downloaded from "
        "('*.example.org' admits its sub-domains); any other host is refused.",
    )
    wis2_private_hosts: list[DownloadHost] = Field(
        default_factory=list,
        description="JSON list of WIS2 download hosts whose loopback or private addresses "
        "are expected (an on-premises cache); link-local and the cluster's ranges stay refused.",
    )
    wis2_allow_http: bool = Field(
        default=False, description="Allow http:// canonical links (https only when false)."
    )
    wis2_max_download_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest WIS2 data file downloaded; larger ones are dead-lettered.",
    )
    wis2_schema_file: str | None = Field(
        default=None,
        description="The official WIS2 notification message JSON Schema (bundled), where an "
        "image build synced it (`pywis-pubsub schema sync`): notifications are validated "
        "against it too; unset: our own model only.",
    )
    wis2_max_subsets: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description=(
            "Most BUFR subsets (station reports) one WIS2 data file may declare, over all its "
            "messages; counted from section 3 before decoding, a file above is dead-lettered "
            "`too-large`."
        ),
    )
    wis2_max_values: int = Field(
        default=4_000_000,
        ge=1000,
        le=100_000_000,
        description=(
            "Most values (subsets x expanded descriptors) one WIS2 data file may declare; "
            "a file above is dead-lettered `too-large` before it is decoded."
        ),
    )
    wis2_dedupe_capacity: int = Field(
        default=100_000,
        ge=100,
        description="Notification ids remembered for deduplication (oldest forgotten first).",
    )
    # --- windows
    window_seconds: int = Field(default=600, description="Window length; must divide a day.")
    window_grace_seconds: int = Field(
        default=60,
        ge=0,
        description="How long past a window's end (observation time) to wait for late ones.",
    )
    flush_idle_seconds: float = Field(
        default=10.0, gt=0, description="Write a window once no message came for it this long."
    )
    max_pending_messages: int = Field(
        default=10_000,
        ge=10,
        le=65_535,
        description="Unacknowledged messages held at most (MQTT 5 receive maximum); beyond "
        "90 % every open window is written.",
    )
    dead_letter_prefix: str = Field(
        default="dead-letter/observations/", description="Key prefix of rejected messages."
    )
    # --- what a message may be (checked before and while decoding; refusals are dead letters)
    max_payload_bytes: int = Field(
        default=64 * 1024,
        ge=256,
        le=16 * 1024 * 1024,
        description="Largest message accepted, in bytes; larger ones are dead-lettered "
        "(too-large) without being decoded.",
    )
    max_nesting_depth: int = Field(
        default=16,
        ge=3,
        le=512,
        description="Deepest nesting of JSON arrays and objects accepted (a valid message "
        "needs 3); deeper ones are dead-lettered (too-deep) without being decoded.",
    )
    earliest_observation_time: dt.datetime = Field(
        default=dt.datetime(1950, 1, 1, tzinfo=dt.UTC),
        description="RFC 3339; observations stamped before it are dead-lettered (too-old), "
        "e.g. a station whose clock was never set (1970).",
    )
    max_future_seconds: int = Field(
        default=600,
        ge=0,
        description="How far ahead of the consumer's clock an observation may be stamped; "
        "later ones are dead-lettered (future).",
    )
    station_expiry_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A station not heard from for this long is forgotten (its watermark), so "
        "the consumer's memory stays bounded however many stations come and go.",
    )
    retry_max_seconds: float = Field(
        default=30.0,
        gt=0,
        le=50,
        description="Longest wait between retries of a failed window or dead-letter write "
        "(exponential backoff from 0.5 s; below the 60 s liveness limit).",
    )
    # --- probes and metrics
    http_host: str = Field(default="0.0.0.0", description="Address of /healthz, /readyz, /metrics.")
    http_port: int = Field(
        default=8080, ge=1, le=65535, description="Port of /healthz, /readyz and /metrics."
    )
    pushgateway_url: str = Field(
        default="",
        pattern=r"^(https?://\S+)?$",
        description="Prometheus Pushgateway a Sentinel run and a harvest push their outcome to "
        "when they end (outcome.py); empty: none.",
    )
    # --- parallel workers
    shard_count: int = Field(default=1, ge=1, description="Number of parallel workers.")
    previous_shard_count: int | None = Field(
        default=None,
        ge=1,
        description="Stream only, while the replica count changes: the count before the "
        "change. A replica then keeps the stations it owns under either count, so every "
        "station has a writer throughout (docs/ingestion.md, 'Changing the replica count').",
    )
    shard_index: int = Field(
        default=0,
        ge=0,
        validation_alias=AliasChoices("INGEST_SHARD_INDEX", "JOB_COMPLETION_INDEX"),
        description="This worker's index; from JOB_COMPLETION_INDEX in an indexed Job.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level."
    )

    @field_validator("mqtt_topics", mode="before")
    @classmethod
    def _split_topics(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("window_seconds")
    @classmethod
    def _window(cls, value: int) -> int:
        return check_window_seconds(value)

    @field_validator("earliest_observation_time")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("must carry an offset, e.g. '1950-01-01T00:00:00Z'")
        return value.astimezone(dt.UTC)

    @field_validator("blocked_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as error:
                raise ValueError(f"{cidr!r} is not an address range: {error}") from None
        return value

    @field_validator("dead_letter_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("polytope_key", "polytope_email")
    @classmethod
    def _one_printable_line(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        # An HTTP header carries it: a pasted ~/.polytopeapirc (JSON on several lines) or a
        # control character would be refused by httpx with the whole header in its message.
        if value is not None and not _HEADER_WORD.match(value.get_secret_value()):
            raise ValueError(
                f"the file ingest_{info.field_name} (INGEST_{info.field_name.upper()}) must hold "
                "one line of printable ASCII without spaces: the bare key, not "
                "~/.polytopeapirc's JSON (its value is not shown)"
            )
        return value

    @field_validator("polytope_sources")
    @classmethod
    def _distinct_requests(cls, value: list[PolytopeSource]) -> list[PolytopeSource]:
        from fedeploy_ingestion.polytope_plan import duplicates

        found = duplicates(
            (f"{source.name}.requests[{number}]", source.collection, request)
            for source in value
            for number, request in enumerate(source.requests)
        )
        if found:
            raise ValueError("; ".join(found))
        return value

    @model_validator(mode="after")
    def _distinct_source_names(self) -> IngestSettings:
        """Every source's name once, across all kinds: the report, a source's share of the run's
        time (`<name>:budget`) and the ingest_copy_failures metric go by name."""
        where: dict[str, list[str]] = {}
        kinds = (
            "sources",
            "ecmwf_sources",
            "eumetsat_sources",
            "eodag_sources",
            "polytope_sources",
        )
        for field in kinds:
            for source in getattr(self, field):
                where.setdefault(source.name, []).append(f"INGEST_{field.upper()}")
        repeated = [
            f"{name!r} in {', '.join(variables)}"
            for name, variables in where.items()
            if len(variables) > 1
        ]
        if repeated:
            raise ValueError(
                "every source needs its own name, across INGEST_SOURCES and the agencies' "
                f"INGEST_*_SOURCES; repeated: {'; '.join(repeated)}"
            )
        return self

    @model_validator(mode="after")
    def _shard(self) -> IngestSettings:
        counts = self.shard_counts()
        if self.shard_index >= max(counts):
            raise ValueError(
                f"INGEST_SHARD_INDEX is {self.shard_index} but INGEST_SHARD_COUNT "
                f"is {self.shard_count}"
                + (
                    f" and INGEST_PREVIOUS_SHARD_COUNT {self.previous_shard_count}"
                    if self.previous_shard_count
                    else ""
                )
                + ": the index must be below the count"
            )
        return self

    def shard_counts(self) -> tuple[int, ...]:
        """The counts under which this worker owns keys: the current one, and the previous
        one while a change of the replica count is under way."""
        if self.previous_shard_count and self.previous_shard_count != self.shard_count:
            return (self.shard_count, self.previous_shard_count)
        return (self.shard_count,)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Settings may also be files in INGEST_SETTINGS_DIR, one per setting, named like its
        variable (`ingest_source_password`): the chart mounts the credentials' Secrets there, so
        they never appear in the environment. A variable that is set wins over a file."""
        directory = os.environ.get("INGEST_SETTINGS_DIR")
        if directory:
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=directory)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    def topics(self) -> list[str]:
        """The topic filters to subscribe to."""
        if self.mqtt_topics:
            return list(self.mqtt_topics)
        if self.stream_format == "wis2":
            raise ConfigError("INGEST_MQTT_TOPICS is empty: a WIS2 stream names its topics")
        return [f"fedeploy/{self.require('site')}/stations/+/observations"]

    def client_id(self) -> str:
        """The MQTT client id: stable per site and shard, so the session survives restarts."""
        if self.mqtt_client_id:
            return self.mqtt_client_id
        kind = "-wis2" if self.stream_format == "wis2" else ""
        return f"fedeploy-ingest-{self.require('site')}{kind}-{self.shard_index}"

    def mqtt_plaintext_login(self) -> bool:
        """Whether the broker login would cross in clear (credentials set, TLS off).

        Raises ConfigError when TLS is off without having been set (INGEST_MQTT_TLS absent):
        plain MQTT with credentials is only ever the operator's explicit choice. The message
        names the settings, never the password's value.
        """
        credentials = bool(self.mqtt_username) or self.mqtt_password is not None
        if self.mqtt_tls or not credentials:
            return False
        if "mqtt_tls" not in self.model_fields_set:
            raise ConfigError(
                "INGEST_MQTT_USERNAME/INGEST_MQTT_PASSWORD (or the ingest_mqtt_password file) "
                "are set but TLS is off: the broker password would be sent in clear. Set "
                "INGEST_MQTT_TLS=true (and INGEST_MQTT_CA_FILE for a private CA), or "
                "INGEST_MQTT_TLS=false explicitly for a broker on a trusted network"
            )
        return True

    def require(self, *names: str) -> str:
        """The value of the first name, after checking every name is set (ConfigError if not)."""
        missing = [n for n in names if getattr(self, n) in (None, "", [])]
        if missing:
            raise ConfigError(
                "missing settings for this command: "
                + ", ".join(f"INGEST_{n.upper()}" for n in missing)
            )
        return str(getattr(self, names[0]))


class HarvestSource(BaseModel):
    """A member site whose catalog the hub harvests (an entry of HARVEST_SOURCES)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SiteName
    url: str = Field(pattern=r"^https?://", description="The site's STAC API root.")


class HarvestSettings(BaseSettings):
    """The hub's harvest settings (environment variables HARVEST_<NAME>)."""

    model_config = SettingsConfigDict(env_prefix="HARVEST_", extra="ignore", frozen=True)

    sources: list[HarvestSource] = Field(
        default_factory=list, description="JSON list of {name, url} of member sites."
    )
    target_url: str = Field(default="", description="The hub's STAC API root (transactions on).")
    overlap_seconds: int = Field(
        default=300,
        ge=0,
        description="Re-read this much before the last harvested `updated`, for items whose "
        "write committed after a harvest read past them.",
    )
    page_size: int = Field(default=500, ge=1, le=10_000, description="Items per search page.")
    http_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=MAX_HTTP_TIMEOUT_SECONDS,
        description="Timeout of one HTTP request to a member or the hub (seconds, at most an hour).",
    )
    search_max_pages: int = Field(
        default=10_000,
        ge=1,
        description="Search pages one site's harvest may take in a run; past it the site's "
        "harvest fails (a paginator that never ends).",
    )

    @field_validator("sources")
    @classmethod
    def _unique(cls, value: list[HarvestSource]) -> list[HarvestSource]:
        names = [s.name for s in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"site names must be unique, repeated: {', '.join(duplicates)}")
        return value
