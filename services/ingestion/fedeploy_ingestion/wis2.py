"""WIS2 notification messages: our typed model of the fields the ingestion relies on, the
dedupe key, the integrity check and the guarded download of the canonical link.

Written from the WIS2 Notification Message specification (WMO-No. 1313 annex; a GeoJSON
Feature). The official JSON Schema is not copied here (its repository carries no licence);
an image that synced it with `pywis-pubsub schema sync` may validate against it too
(docs/ingestion.md). Only what this consumer uses is modelled; other members pass through.

| field | rule here |
|---|---|
| `id` | required, a UUID; the dedupe key (with `data_id` + `pubtime`) |
| `conformsTo` | required, lists `http://wis.wmo.int/spec/wnm/1/conf/core` |
| `type` | `Feature` |
| `geometry` | GeoJSON Point or Polygon, or null |
| `properties.data_id` | required, non-empty |
| `properties.pubtime` | required, RFC 3339 |
| `properties.datetime` or `start_datetime` + `end_datetime` | one of the two, RFC 3339 |
| `properties.integrity` | `{method, value}`: method sha256/sha384/sha512/sha3-256/sha3-384/sha3-512, value base64 of the digest; required by this consumer (every download is checked) |
| `links` | at least one; the one with `rel` `canonical` (else `update`) is downloaded; `type` is its media type |

Pure except `download`, which sends the request (through `download_safety`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fedeploy_ingestion.decoding import DecodeLimits, InvalidObservation, decode_message
from fedeploy_ingestion.download_safety import (
    IDENTITY,
    MAX_REDIRECTS,
    DownloadPolicy,
    UnsafeBody,
    UnsafeDownload,
    bounded_body,
    shown,
)
from fedeploy_ingestion.observation import RFC3339

CONFORMANCE = "http://wis.wmo.int/spec/wnm/1/conf/core"
DIGESTS = {
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
    "sha3-256": hashlib.sha3_256,
    "sha3-384": hashlib.sha3_384,
    "sha3-512": hashlib.sha3_512,
}
# What the consumer follows, in order of preference (a deletion is not data).
DATA_RELS = ("canonical", "update")
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\Z")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


def _rfc3339(value: object) -> object:
    if not isinstance(value, str) or not RFC3339.match(value):
        raise ValueError(f"must be an RFC 3339 date-time string, not {str(value)[:40]!r}")
    return value


class Integrity(_Open):
    """The digest of the data the links point at."""

    method: Literal["sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512"]
    value: str = Field(min_length=1, description="Base64 of the digest.")

    @field_validator("value")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64") from None
        return value

    @model_validator(mode="after")
    def _digest_size(self) -> Integrity:
        # A value of the wrong length can never match: refuse it before any download.
        size = len(base64.b64decode(self.value))
        expected = DIGESTS[self.method]().digest_size
        if size != expected:
            raise ValueError(
                f"value is {size} bytes once decoded; a {self.method} digest is {expected}"
            )
        return self


class Link(_Open):
    """A link to the data (`rel` canonical or update) or elsewhere."""

    href: str = Field(min_length=1)
    rel: str = Field(min_length=1)
    type: str | None = None
    length: int | None = Field(default=None, ge=0)


class Geometry(_Open):
    """A GeoJSON geometry (Point or Polygon)."""

    type: Literal["Point", "Polygon"]
    coordinates: list[Any]


class Properties(_Open):
    """The properties the consumer relies on."""

    data_id: str = Field(min_length=1)
    pubtime: datetime
    datetime_: datetime | None = Field(default=None, alias="datetime")
    start_datetime: datetime | None = None
    end_datetime: datetime | None = None
    integrity: Integrity

    _times = field_validator(
        "pubtime", "datetime_", "start_datetime", "end_datetime", mode="before"
    )(classmethod(lambda cls, v: v if v is None else _rfc3339(v)))

    @model_validator(mode="after")
    def _when(self) -> Properties:
        ranged = self.start_datetime is not None and self.end_datetime is not None
        if self.datetime_ is None and not ranged:
            raise ValueError("needs 'datetime', or both 'start_datetime' and 'end_datetime'")
        if ranged and self.end_datetime < self.start_datetime:  # type: ignore[operator]
            raise ValueError("'end_datetime' is before 'start_datetime'")
        return self


class Notification(_Open):
    """A WIS2 notification message (the fields this consumer relies on)."""

    id: str
    conforms_to: list[str] = Field(alias="conformsTo", min_length=1)
    type: Literal["Feature"]
    geometry: Geometry | None
    properties: Properties
    links: list[Link] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        # Only the canonical 8-4-4-4-12 form: uuid.UUID also reads 'urn:uuid:...', '{...}'
        # and bare hex, which would give one message several dedupe keys.
        if not UUID_PATTERN.match(value):
            raise ValueError("must be a UUID in its 8-4-4-4-12 hexadecimal form")
        return str(uuid.UUID(value))

    @field_validator("conforms_to")
    @classmethod
    def _core(cls, value: list[str]) -> list[str]:
        if CONFORMANCE not in value:
            raise ValueError(f"must list {CONFORMANCE!r}")
        return value

    @model_validator(mode="after")
    def _data_link(self) -> Notification:
        self.data_link()
        return self

    def data_link(self) -> Link:
        """The link to download: the first `canonical` one, else the first `update` one."""
        for rel in DATA_RELS:
            for link in self.links:
                if link.rel == rel:
                    return link
        raise ValueError(f"no link with rel {' or '.join(map(repr, DATA_RELS))}")

    def dedupe_keys(self) -> tuple[str, str]:
        """What makes two notifications the same (as a Global Broker dedupes): the message
        `id`, and `data_id` + `pubtime`."""
        return (
            f"id:{self.id}",
            f"data:{self.properties.data_id}@{self.properties.pubtime.isoformat()}",
        )


def parse_notification(payload: bytes, limits: DecodeLimits) -> Notification:
    """Validate one notification; InvalidObservation `notification` (or a decoding code)."""
    document = decode_message(payload, limits)
    try:
        return Notification.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(message)'}: {e['msg']}"
            for e in error.errors()
        )
        raise InvalidObservation("notification", f"not a WIS2 notification: {problems}") from None


def check_integrity(data: bytes, integrity: Integrity) -> None:
    """InvalidObservation `digest-mismatch` unless `data`'s digest is the one announced."""
    found = base64.b64encode(DIGESTS[integrity.method](data).digest()).decode()
    if found != integrity.value:
        raise InvalidObservation(
            "digest-mismatch",
            f"the data's {integrity.method} is {found}; the notification announced "
            f"{integrity.value}",
        )


class TransientDownload(RuntimeError):
    """A download that may succeed later (connection failure, timeout, 408, 429, 5xx)."""


PERMANENT_STATUSES = frozenset(range(400, 500)) - {408, 425, 429}


def download(url: str, policy: DownloadPolicy, http: httpx.Client, max_bytes: int) -> bytes:
    """The bytes at `url`, every hop checked by `policy` before any request is sent.

    InvalidObservation `forbidden-link` (refused by the policy), `download` (a permanent
    failure: a 4xx status, too many redirects, more than `max_bytes`); TransientDownload for
    what may pass when retried. Identity encoding is asked for; one gzip or deflate layer is
    decoded, bounded after decoding; stacked or unknown encodings are `download`."""
    try:
        target = policy.check(url, what="canonical link")
    except UnsafeDownload as error:
        raise InvalidObservation("forbidden-link", str(error)) from None
    for _ in range(MAX_REDIRECTS + 1):
        try:
            with http.stream("GET", target, headers=IDENTITY) as response:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    try:
                        target = policy.redirect(target, location)
                    except UnsafeDownload as error:
                        raise InvalidObservation("forbidden-link", str(error)) from None
                    continue
                if response.status_code in PERMANENT_STATUSES:
                    raise InvalidObservation(
                        "download", f"GET {shown(target)} answered {response.status_code}"
                    )
                if response.status_code != 200:
                    raise TransientDownload(f"GET {shown(target)} answered {response.status_code}")
                try:
                    # Counted once decoded: 1 KiB of stacked gzip may decode to 600 MiB.
                    return b"".join(bounded_body(response, max_bytes, f"GET {shown(target)}"))
                except UnsafeBody as error:
                    raise InvalidObservation(
                        "download", f"{error} (INGEST_WIS2_MAX_DOWNLOAD_BYTES {max_bytes})"
                    ) from None
        except UnsafeDownload as error:  # the guard refused the address at connection time
            raise InvalidObservation("forbidden-link", str(error)) from None
        except httpx.HTTPError as error:
            raise TransientDownload(f"GET {shown(target)} failed: {error}") from None
    raise InvalidObservation("download", f"GET {shown(url)}: more than {MAX_REDIRECTS} redirects")
