"""The `site.services` section: which of our charts run on the site, and how."""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError

from fedeploy.config.addresses import Cidr, url_port_problem
from fedeploy.config.base import (
    HOST_PATTERN,
    HostName,
    Secret,
    StrictModel,
    no_userinfo,
)
from fedeploy.config.base import Url as _AnyPortUrl
from fedeploy.config.mqtt_topics import TopicFilter, check_topic_filter, check_unique_topics
from fedeploy.config.pem import PemBundle
from fedeploy.config.storage import BucketName

COPERNICUS_STAC = "https://stac.dataspace.copernicus.eu/v1"


def _port_in_range(value: Any) -> Any:
    """A URL's port, where it names one, is 1 to 65535 (pydantic's HttpUrl takes 0): the
    charts make NetworkPolicy ports of the URLs' ports, which Kubernetes refuses outside that
    range, and nothing answers on port 0."""
    value = no_userinfo(value)  # first, so that no message echoes a password
    if isinstance(value, str) and (problem := url_port_problem(value.strip())):
        raise ValueError(
            f"given {value!r}: {problem}; allowed: an http(s) URL whose port, where it names "
            "one, is 1 to 65535"
        )
    return value


Url = Annotated[_AnyPortUrl, BeforeValidator(_port_in_range)]
"""An http(s) URL without credentials in it and with a port, if any, from 1 to 65535."""


def _ipv4_host(reason: str) -> BeforeValidator:
    """A host key that takes a DNS name or an IPv4 address: an IPv6 address is refused saying
    why (`reason`), not by the host-name pattern."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and ":" in value:
            try:
                ipaddress.IPv6Address(value.strip().removeprefix("[").removesuffix("]"))
            except ValueError:
                return value
            raise ValueError(
                f"given {value!r}: IPv6 addresses are not supported here: {reason}; give a DNS "
                "name or an IPv4 address"
            )
        return value

    return BeforeValidator(check)


_DATABASE_HOST = _ipv4_host(
    "the catalog chart's NetworkPolicies admit the external database over IPv4 only "
    "(0.0.0.0/0), and its database.host takes a DNS name or an IPv4 address"
)
_BROKER_HOST = _ipv4_host(
    "the ingestion chart's NetworkPolicy admits the broker over IPv4 only (0.0.0.0/0), and its "
    "stream.mqtt.host takes a DNS name or an IPv4 address"
)
# Field of a five-field cron schedule as Kubernetes reads a CronJob's (robfig/cron v3's standard
# parser, which the API server validates it with): name, range, names. Day of week is 0 to 6
# there: 7 is refused ("end of range (7) above maximum (6)").
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    ),
    ("day of week", 0, 6, ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]),
)
# The most days each month has: February's 29th comes in leap years, and a schedule fires then.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _cron_field(
    text: str, name: str, low: int, high: int, names: Any
) -> tuple[set[int], bool] | str:
    """The values one field names and whether it is a star (robfig/cron's star bit: a part `*`
    or `?` without a step above 1), or why it is no field."""
    values: set[int] = set()
    star = False
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            return f"the {name} step {step_text!r} is not a whole number above 0"
        step = int(step_text) if slash else 1
        if base == "*" or (base == "?" and name.startswith("day")):
            start, end = low, high
            star = star or step == 1
        else:
            ends = base.split("-")
            if len(ends) > 2 or not all(ends):
                return f"the {name} field {text!r} is not a value, range or list"
            numbers = []
            for word in ends:
                if word.upper() in names:
                    numbers.append(names.index(word.upper()) + low)
                elif word.isdigit():
                    numbers.append(int(word))
                else:
                    return f"{word!r} is not a {name} ({low} to {high})"
            if not all(low <= n <= high for n in numbers):
                return f"the {name} field {text!r} is outside {low} to {high}"
            if numbers != sorted(numbers):
                return f"the {name} range {base!r} runs backwards"
            # N/S stands for N-<last>/S, as in robfig/cron.
            start, end = numbers[0], numbers[-1] if len(numbers) == 2 or not slash else high
        values.update(range(start, end + 1, step))
    return values, star


# The descriptors a CronJob takes (robfig/cron's, which Kubernetes validates a schedule with;
# @every and @reboot it refuses) and their meaning; the charts' `cron` pattern
# (charts/*/values.schema.json) takes all but @midnight, which is @daily's other name: the stack
# file takes it and hands the charts @daily.
CRON_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# The schedule the charts take (their values.schema.json `cron`), @midnight besides.
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^\s]+( +[^\s]+){4})$"
CRON_WORDS = (
    "five fields (minute hour day-of-month month day-of-week) separated by spaces, e.g. "
    "'15 * * * *', or one of @hourly, @daily (@midnight), @weekly, @monthly, @yearly "
    "(@annually)"
)


def cron_problem(value: str) -> str | None:
    """Why `value` is not a cron schedule a CronJob accepts and runs on, and the charts take:
    a descriptor (CRON_DESCRIPTORS) or five fields separated by spaces (each field `*`, `?` in
    the day fields, N, N-M, lists, steps `/S`, month and weekday names); None when it is one.

    A tab or a line break between the fields is refused: Kubernetes would take it, the charts'
    schedule pattern does not (the plan would stop at the chart's values).

    A schedule that never fires is refused too. Kubernetes reads it as robfig/cron does: when
    the day of month and the day of week are both restricted, a day matching either fires; when
    either is a star (`*`, `?`), a day must match both, so with the day of week a star only
    the days of month count, and a day no listed month has (30 February, 31 April) never comes.
    29 February comes in leap years."""
    if value.startswith("@"):
        if value in CRON_DESCRIPTORS:
            return None
        return (
            f"{value!r} is not a descriptor a CronJob takes: @hourly, @daily (@midnight), "
            "@weekly, @monthly, @yearly (@annually), written alone in lower case (Kubernetes "
            "refuses @every and @reboot); or give five fields, e.g. '15 * * * *'"
        )
    if value != value.strip():
        return f"{value!r} starts or ends with whitespace: write the schedule without it"
    if re.search(r"[^\S ]", value):
        return (
            f"{value!r} separates its fields with a tab or a line break: separate the five "
            "fields with spaces (the charts' schedule pattern takes spaces only)"
        )
    fields = value.split()
    if len(fields) != 5:
        return f"{value!r} is not a cron schedule: {CRON_WORDS}"
    parsed = []
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        field = _cron_field(text, name, low, high, names)
        if isinstance(field, str):
            return f"{value!r}: {field}"
        parsed.append(field)
    (days, days_star), (months, _), (_, weekdays_star) = parsed[2:]
    if (
        weekdays_star
        and not days_star
        and not any(day <= _MONTH_DAYS[month - 1] for month in months for day in days)
    ):
        named = ", ".join(_MONTH_NAMES[m - 1] for m in sorted(months))
        listed = ", ".join(str(d) for d in sorted(days))
        where = (
            f"{named} has no day {listed}"
            if len(months) == 1 and len(days) == 1
            else f"none of its months ({named}) has a day {listed}"
            if len(days) == 1
            else f"none of its months ({named}) has any of the days {listed}"
        )
        return (
            f"{value!r} never fires: {where}, so the CronJob would never run; give a day "
            "of month its months have (29 February counts: it fires in leap years)"
        )
    return None


def _cron(value: str) -> str:
    if problem := cron_problem(value):
        raise ValueError(problem)
    # @midnight is @daily's other name, which the charts' pattern does not list.
    return "@daily" if value == "@midnight" else value


Cron = Annotated[
    str,
    Field(description=f"A cron schedule: {CRON_WORDS}."),
    AfterValidator(_cron),
    # The pattern for editors only: cron_problem says what is wrong (a bare regex would not).
    WithJsonSchema({"type": "string", "pattern": CRON_PATTERN}),
]


# A database name as every client of the catalog's database takes it: libpq (PGDATABASE, for
# pypgstac and psql), and stac-fastapi-pgstac's connection URL, which carries the name
# unescaped in its path (so no '/', '?', '#', '%', '@' or space). PostgreSQL itself takes any
# name of up to 63 bytes, quoted where it is not a plain identifier (stac-db). The catalog chart's
# database.name takes the same (charts/catalog/values.schema.json).
DATABASE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$"


class ExternalDatabase(StrictModel):
    """A PostgreSQL server that exists already (PostGIS available)."""

    host: Annotated[HostName, _DATABASE_HOST] = Field(
        description="Host name or IPv4 address of the server (IPv6 addresses are not supported: "
        "the NetworkPolicies admit IPv4)."
    )
    port: int = Field(5432, ge=1, le=65535, description="Port.")
    name: str = Field(
        "postgis",
        pattern=DATABASE_NAME_PATTERN,
        description="Database name: letters, digits, '_', '-' and '.', 1 to 63 characters, "
        "starting with a letter, digit or '_' (stac-db is fine: the catalog quotes it where "
        "SQL needs it).",
    )
    username: str = Field(min_length=1, description="User the catalog connects as.")
    password: Secret = Field(description="That user's password (secret).")
    ssl_mode: Literal["require", "verify-ca", "verify-full"] = Field(
        "verify-full", description="libpq sslmode; plaintext connections are not offered."
    )
    ca_certificate: PemBundle | None = Field(
        None,
        description="PEM of the CA certificate(s) that signed the server's certificate, "
        "mounted into the catalog's pods (PGSSLROOTCERT); required with ssl_mode verify-ca or "
        "verify-full, which check the server against it.",
    )

    @model_validator(mode="after")
    def _root_certificate(self) -> ExternalDatabase:
        if self.ssl_mode != "require" and self.ca_certificate is None:
            raise ValueError(
                f"ssl_mode is {self.ssl_mode!r} but ca_certificate is missing: the catalog's "
                "pods would have no root certificate to check the server's against and fail "
                "to connect; give the PEM of the CA that signed the server's certificate "
                "(ssl_mode: require encrypts without checking the server)"
            )
        return self


class RdsDatabase(StrictModel):
    """An RDS PostgreSQL created by the site (aws sites only): encrypted, private."""

    instance_class: str = Field(
        "db.t4g.medium", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$", description="RDS instance class."
    )
    allocated_storage_gib: int = Field(50, ge=20, le=65536, description="Storage at creation.")
    max_allocated_storage_gib: int = Field(200, ge=20, le=65536, description="Autoscaling ceiling.")
    multi_az: bool = Field(True, description="A standby in a second availability zone.")
    backup_retention_days: int = Field(7, ge=1, le=35, description="Days of automated backups.")
    engine_version: str = Field(
        "17", pattern=r"^[0-9]{2}(\.[0-9]{1,2})?$", description="PostgreSQL major version."
    )

    @model_validator(mode="after")
    def _storage_ordered(self) -> RdsDatabase:
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            raise ValueError(
                f"max_allocated_storage_gib ({self.max_allocated_storage_gib}) is below "
                f"allocated_storage_gib ({self.allocated_storage_gib})"
            )
        return self


# ---- backups of the internal catalog database (see docs/operations.md) ----
# Below this many days a production site's catalog could not be restored to last week's state.
MIN_PRODUCTION_RETENTION_DAYS = 7


def backup_lock_days(retention_days: int, base_backup_interval_hours: int) -> int:
    """Days each backup object is locked so every object the recovery window needs stays: the
    window keeps the newest base backup older than its start (up to the base-backup interval
    older) and the WAL after it, plus a day of margin."""
    return retention_days + math.ceil(base_backup_interval_hours / 24) + 1


class CatalogRestoreDrill(StrictModel):
    """The scheduled restore drill: the latest backup restored into a scratch PostgreSQL in a
    Job's pod and compared with the live catalog (read as a read-only role)."""

    enabled: bool = Field(
        True, description="Run the drill on its schedule (only where backups are on)."
    )
    schedule: Cron = Field("17 3 * * 0", description="When the drill runs (weekly by default).")


class CatalogBackup(StrictModel):
    """Backups of the internal catalog database to the site's own bucket (barman-cloud)."""

    enabled: bool = Field(
        True,
        description="Archive the internal database's WAL continuously and take base backups to "
        "`bucket` (database internal only; a production site must keep it on).",
    )
    bucket: BucketName = Field(
        "raw",
        description="Logical bucket of this site the backups go to, encrypted and versioned as "
        "that bucket is.",
    )
    prefix: str = Field(
        "backups/catalog-db",
        max_length=200,
        pattern=r"^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)*$",
        description="Key prefix of the backups in that bucket: lowercase letters, digits and "
        "'-' in '/'-separated parts, no '/' at either end.",
    )
    retention_days: int = Field(
        14,
        ge=1,
        le=3650,
        description="Days back to which any point can be restored; older base backups and WAL "
        f"are deleted (production sites: at least {MIN_PRODUCTION_RETENTION_DAYS}).",
    )
    base_backup_interval_hours: int = Field(
        24, ge=1, le=168, description="Hours between base backups; WAL is archived in between."
    )
    drill: CatalogRestoreDrill = Field(
        default_factory=CatalogRestoreDrill,
        description="The restore drill that proves the backups restore (docs/operations.md).",
    )
    object_lock: Literal["governance", "compliance", "off"] | None = Field(
        None,
        description="Object lock on the backups' bucket: a default retention of retention_days "
        "+ ceil(base_backup_interval_hours / 24) + 1 days in this mode keeps every version "
        "the recovery window needs from deletion, the backup identity's own deletes included (governance: an identity with s3:BypassGovernanceRetention may lift "
        "it; compliance: nobody). Unset: governance on aws (set on the existing bucket), off "
        "on openstack and ovh, whose stores lock only a bucket created with it (docs/"
        "operations.md). Refused on kubernetes and hpc: the store is the site's own, and its "
        "owner locks the bucket there.",
    )

    store_cidrs: list[Cidr] | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="The object store's addresses (CIDRs) the backup sidecar and the restore "
        "drill may reach on the store's port. Unset: any address on that port (0.0.0.0/0) "
        "until narrowed (on aws: S3's ranges in the region, or a VPC endpoint's subnets).",
    )

    def lock_for(self, kind: str) -> str:
        """The object lock mode on a site of this kind: governance, compliance or off."""
        if self.object_lock is not None:
            return self.object_lock
        return "governance" if kind == "aws" else "off"

    def locked_bucket(self, kind: str) -> dict[str, tuple[str, int]]:
        """{logical bucket: (mode, days)} of the backups' bucket when locked, else {}."""
        mode = self.lock_for(kind)
        if not self.enabled or mode == "off":
            return {}
        days = backup_lock_days(self.retention_days, self.base_backup_interval_hours)
        return {self.bucket: (mode.upper(), days)}


# ---- exposure: the public catalog, its TLS and who may write (see docs/charts.md) ----
_K8S_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_K8S_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# One scope token as RFC 6749 section 3.3 allows it (no spaces, quotes or backslashes).
_SCOPE = r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$"

# The longest issuer the catalog chart takes (authProxy.oidc.issuer's maxLength).
ISSUER_MAX_LENGTH = 2048
# What the stack file's schema says of an issuer; issuer_problem() says why one is refused.
_ISSUER_PATTERN = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s?#]*)?$"
# One audience: stac-auth-proxy splits ALLOWED_JWT_AUDIENCES at commas (and reads a value that
# starts with `[` as a JSON list), the asset endpoint takes the value whole.
_AUDIENCE = r"^[^\s,\[][^\s,]*$"


def issuer_problem(value: str) -> str | None:
    """Why `value` is not an OpenID Connect issuer URL the site's endpoints can be configured
    with, verbatim; None when it is one.

    OpenID Connect compares the issuer exactly (Core 1.0 section 3.1.3.7: the token's `iss` MUST
    exactly match the issuer; Discovery 1.0 section 4.3: the discovery document's `issuer` MUST
    be identical to the URL it was fetched under), so the value is never rewritten: it must
    already be what the provider names in `iss`. Core 1.0 section 2: a case-sensitive https URL
    of scheme, host, optional port and path, no query or fragment. The host is a DNS name or an
    IPv4 address in ASCII (the catalog chart's pattern), the port 1 to 65535.
    """
    if any(c.isspace() for c in value):
        return "holds whitespace"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "holds a control character"
    if not value.startswith("https://"):
        if value[:8].lower() == "https://":
            return "writes the scheme in capitals (https:// is lower case)"
        return "is not an https URL"
    if len(value) > ISSUER_MAX_LENGTH:
        return f"is {len(value)} characters long"
    if "?" in value or "#" in value:
        return "has a query or fragment (? or #), which OpenID Connect Core 1.0 section 2 forbids"
    authority = value[len("https://") :].partition("/")[0]
    if "@" in authority:
        return "carries a user name (user@host)"
    if authority.startswith("["):
        return "has an IPv6 address as its host"
    host, colon, port = authority.partition(":")
    if not host.isascii():
        return f"has the non-ASCII host {host!r} (write it in its xn-- form, as `iss` does)"
    if not re.fullmatch(HOST_PATTERN, host):
        return f"has the host {host!r}, neither a DNS name nor an IPv4 address"
    if host.rsplit(".", 1)[-1].isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"has the host {host!r}, neither a DNS name nor an IPv4 address"
    if colon and not (
        port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535
    ):
        return f"has the port {port!r} (1 to 65535)"
    return None


def _issuer(value: str) -> str:
    if problem := issuer_problem(value):
        raise PydanticCustomError(
            "oidc_issuer",
            "an https URL (a DNS name or IPv4 address, an optional port and path; no "
            "whitespace, user name, query or fragment; up to {limit} characters), written "
            "exactly as the provider's tokens name it in `iss`; this one {problem}",
            {"limit": ISSUER_MAX_LENGTH, "problem": problem},
        )
    return value


OidcIssuer = Annotated[
    str,
    BeforeValidator(no_userinfo),
    AfterValidator(_issuer),
    WithJsonSchema(
        {
            "type": "string",
            "format": "uri",
            "maxLength": ISSUER_MAX_LENGTH,
            "pattern": _ISSUER_PATTERN,
        }
    ),
]
"""An OpenID Connect issuer URL, kept byte for byte (see issuer_problem)."""


class CatalogTls(StrictModel):
    """Where the public catalog's certificate comes from: exactly one of the two."""

    cert_manager_issuer: str | None = Field(
        None,
        pattern=_K8S_NAME,
        description="A cert-manager issuer that issues the certificate for the URL's host.",
    )
    secret: str | None = Field(
        None,
        pattern=_K8S_NAME,
        description="An existing Secret of type kubernetes.io/tls in the services' namespace.",
    )
    # After `secret`, so that its check sees it (a field's validator sees the fields before it).
    cert_manager_issuer_kind: Literal["ClusterIssuer", "Issuer"] = Field(
        "ClusterIssuer",
        description="Kind of that issuer (with cert_manager_issuer; beside secret only the "
        "default, ClusterIssuer, is taken: Issuer would be ignored).",
    )

    @field_validator("cert_manager_issuer_kind")
    @classmethod
    def _kind_of_an_issuer(cls, kind: str, info: ValidationInfo) -> str:
        # Runs only when the stack file sets the kind (a default is not validated). The default
        # written out beside `secret` changes nothing (a leftover of a switch to a Secret):
        # taken; only a kind that would be ignored and differs from it is refused.
        if info.data.get("secret") is not None and kind != "ClusterIssuer":
            raise ValueError(
                f"cert_manager_issuer_kind is set ({kind}) but the certificate is the existing "
                f"Secret {info.data['secret']!r} (`secret`): no cert-manager issuer is used, so "
                "the kind would be ignored; remove cert_manager_issuer_kind, or give "
                "cert_manager_issuer instead of secret"
            )
        return kind

    @model_validator(mode="after")
    def _one_source(self) -> CatalogTls:
        if (self.cert_manager_issuer is None) == (self.secret is None):
            raise ValueError(
                "give exactly one of `cert_manager_issuer` (cert-manager issues the "
                "certificate) or `secret` (an existing TLS Secret)"
            )
        return self


class OidcAccess(StrictModel):
    """The OpenID Connect issuer whose access tokens the site's public endpoints accept."""

    issuer: OidcIssuer = Field(
        description="Issuer URL (https, no query or fragment, up to 2048 characters), written "
        "exactly as the provider's tokens name it in `iss` and its discovery document in "
        "`issuer`, a trailing slash included or not (Auth0's and Azure AD v1's end in /, "
        "Keycloak's do not): tokens are compared with it byte for byte. Its discovery "
        "document is <issuer without one trailing slash>/.well-known/openid-configuration."
    )
    audience: str = Field(
        pattern=_AUDIENCE,
        max_length=253,
        description="The `aud` every accepted token must carry: one audience of 1 to 253 "
        "characters, without whitespace or commas, not starting with [ (stac-auth-proxy "
        "reads commas as a list of audiences and [ as a JSON list).",
    )
    write_scope: str = Field(
        "stac:write", pattern=_SCOPE, description="Scope a token needs to write (Transactions)."
    )
    read_scope: str = Field(
        "stac:read", pattern=_SCOPE, description="Scope a token needs to fetch assets."
    )


class GatewayRef(StrictModel):
    """The existing Gateway (Gateway API) whose listener serves the catalog's host; its owner
    configures the listener's TLS (see CatalogExposure.tls)."""

    name: str = Field(pattern=_K8S_NAME, description="Name of the Gateway.")
    namespace: str = Field(pattern=_K8S_LABEL, description="Namespace of the Gateway.")
    section_name: str | None = Field(
        None,
        pattern=_K8S_LABEL,
        description="The Gateway's listener (its `name`) the route attaches to: the https "
        "listener of the URL's host. Unset: every listener that admits the route.",
    )


class CatalogExposure(StrictModel):
    """The catalog published at `url`: an Ingress or a Gateway API HTTPRoute (`mode`) with TLS,
    reads public, writes and assets behind tokens of the site's OIDC issuer."""

    mode: Literal["ingress", "gateway"] = Field(
        "ingress",
        description="ingress: an Ingress of class `ingress_class`; gateway: an HTTPRoute "
        "attached to `gateway` (Gateway API), TLS at the Gateway's listener.",
    )
    ingress_class: str = Field(
        "nginx", pattern=_K8S_NAME, description="ingressClassName of the Ingress (mode ingress)."
    )
    gateway: GatewayRef | None = Field(
        None, description="The Gateway the HTTPRoute attaches to; required in mode gateway."
    )
    controller_namespace: str = Field(
        pattern=_K8S_LABEL,
        description="Namespace of the pods that forward public requests (the ingress "
        "controller's, or the Gateway's data plane's): the only one, besides "
        "networkPolicy.allowedNamespaces, whose pods reach the auth proxy and asset endpoint.",
    )
    tls: CatalogTls = Field(
        description="Where the certificate comes from. Mode ingress: cert-manager issues it "
        "from the Ingress's annotation, or the Ingress names the Secret. Mode gateway: the "
        "Gateway's listener holds it (its certificateRefs name `secret`, or cert-manager's "
        "Gateway support issues it from `cert_manager_issuer`); the chart renders no TLS."
    )
    oidc: OidcAccess = Field(description="Whose tokens are accepted, and the scopes they need.")
    asset_url_lifetime_seconds: int = Field(
        900,
        ge=60,
        le=43200,
        description="Lifetime of the presigned URLs the asset endpoint hands out, in seconds.",
    )

    @model_validator(mode="after")
    def _mode_keys(self) -> CatalogExposure:
        if self.mode == "gateway" and self.gateway is None:
            raise ValueError(
                "mode is gateway but `gateway` (name, namespace, section_name) is missing: "
                "the HTTPRoute attaches to that Gateway"
            )
        if self.mode == "ingress" and self.gateway is not None:
            raise ValueError(
                "`gateway` is set but mode is ingress: set `mode: gateway` to publish through "
                "the Gateway, or remove `gateway`"
            )
        if self.mode == "gateway" and "ingress_class" in self.model_fields_set:
            raise ValueError("`ingress_class` is set but mode is gateway: remove it")
        return self


class CatalogBrowser(StrictModel):
    """STAC Browser 4.x for the published catalog, on a host of its own (docs/charts.md,
    "STAC Browser"): the upstream image fixes the path it is served under when it is built (/)."""

    url: Url = Field(
        description="https URL of the browser, path / (e.g. https://browse.gra.example.eu/); "
        "on the hub, the federation's front page."
    )
    title: str | None = Field(
        None, min_length=1, max_length=128, description="Title it shows; default: the site's name."
    )
    oidc_client_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._~:-]{1,128}$",
        description="Public client registered at exposure.oidc.issuer for the browser "
        "(authorization code with PKCE, redirect URI <url>/auth); unset: no login button.",
    )
    map_tile_origins: list[Url] = Field(
        default_factory=list,
        max_length=8,
        description="Origins the map's basemap tiles come from (https://tile.openstreetmap.org for "
        "STAC Browser's default); the page's Content-Security-Policy blocks any other image origin.",
    )
    tls_secret: str | None = Field(
        None,
        pattern=_K8S_NAME,
        description="An existing TLS Secret for the browser's host (mode ingress only: in mode "
        "gateway the Gateway's listener holds the certificate); default: <release>-browser-tls "
        "from exposure.tls.cert_manager_issuer.",
    )

    @model_validator(mode="after")
    def _root_https(self) -> CatalogBrowser:
        if self.url.scheme != "https":
            raise ValueError(f"browser url {self.url} must be https")
        if (self.url.path or "/") != "/" or self.url.query or self.url.fragment:
            raise ValueError(
                f"browser url {self.url} must be a host's root (path /): STAC Browser 4.x fixes "
                "its path when built, and the upstream image is built for /"
            )
        for origin in self.map_tile_origins:
            if origin.scheme != "https" or (origin.path or "/") != "/":
                raise ValueError(f"map_tile_origins: {origin} must be an https origin (no path)")
        return self


# The catalog url as the catalog chart's schema admits it (exposure.url), so that it is refused
# at the stack file's key rather than as a chart-schema violation.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")


class CatalogService(StrictModel):
    """The STAC catalog (stac-fastapi-pgstac over pgstac)."""

    enabled: bool = Field(True, description="Deploy the catalog on this site.")
    database: Literal["internal", "external", "rds"] = Field(
        "internal",
        description="internal: a StatefulSet in the cluster; external: an existing server "
        "(`external`); rds: an RDS instance created by the site (aws only).",
    )
    external: ExternalDatabase | None = Field(
        None, description="Required when database is external."
    )
    rds: RdsDatabase = Field(default_factory=RdsDatabase, description="Used when database is rds.")
    volume_size_gib: int = Field(20, ge=1, le=16384, description="Volume of the internal database.")
    backup: CatalogBackup = Field(
        default_factory=CatalogBackup,
        description="Backups of the internal database (the hub's catalog is rebuilt by harvest).",
    )
    url: Url | None = Field(
        None,
        description="Where the rest of the federation reaches this catalog (the site's ingress); "
        "the in-cluster URL when unset.",
    )
    exposure: CatalogExposure | None = Field(
        None,
        description="Publishes the catalog at `url` (Ingress, TLS, token-checked writes and "
        "assets); required with `url`.",
    )
    browser: CatalogBrowser | None = Field(
        None,
        description="Serves STAC Browser for the published catalog on a host of its own "
        "(needs `exposure`).",
    )

    @field_validator("url")
    @classmethod
    def _plain_url(cls, url: HttpUrl | None) -> HttpUrl | None:
        """The url goes into the chart's Ingress or HTTPRoute and into STAC Browser's
        Content-Security-Policy, where `;` or a quote would end a directive."""
        if url is not None and not _PLAIN_URL.fullmatch(str(url)):
            odd = sorted(set(re.sub(r"[A-Za-z0-9._~/:-]", "", str(url))))
            raise ValueError(
                f"catalog url {url} holds {' '.join(repr(c) for c in odd) or 'a stray character'}"
                ": allowed are http(s)://, a host of letters, digits, '.' and '-', an optional "
                "port, and a path of letters, digits and . _ ~ / -"
            )
        return url

    @model_validator(mode="after")
    def _external_given(self) -> CatalogService:
        if self.database == "external" and self.external is None:
            raise ValueError(
                "database is external but `external` (host, username, password) is missing"
            )
        if self.database != "external" and self.external is not None:
            raise ValueError(f"`external` is set but database is {self.database!r}")
        if self.url is not None and self.exposure is None:
            raise ValueError(
                f"url {self.url} is public but `exposure` is missing: a public catalog needs "
                "`exposure.tls` (cert_manager_issuer or secret) and `exposure.oidc` (issuer, "
                "audience), so that only reads are anonymous"
            )
        if self.exposure is not None and (self.url is None or self.url.scheme != "https"):
            raise ValueError(
                f"`exposure` needs an https `url`, found {self.url}: the Ingress or Gateway "
                "terminates TLS"
            )
        if self.browser is not None:
            self._browser_fits()
        return self

    def _browser_fits(self) -> None:
        browser = self.browser
        assert browser is not None
        if self.exposure is None or self.url is None:
            raise ValueError("`browser` needs a published catalog (`url` and `exposure`)")
        if browser.url.host == self.url.host and (self.url.path or "/") == "/":
            raise ValueError(
                f"browser url {browser.url} is the catalog's own host and path: give the browser "
                "a host of its own (or publish the catalog under a path)"
            )
        if self.exposure.mode == "gateway" and browser.tls_secret is not None:
            raise ValueError(
                f"`browser.tls_secret` is set ({browser.tls_secret}) but exposure.mode is "
                "gateway: the browser's certificate is the Gateway listener's (its "
                "certificateRefs) and the chart renders no TLS; remove `browser.tls_secret` "
                "(it is allowed in mode ingress only)"
            )
        if (
            self.exposure.mode == "ingress"
            and self.exposure.tls.secret is not None
            and browser.tls_secret is None
        ):
            raise ValueError(
                "the catalog's certificate is an existing Secret: give the browser's "
                "(`browser.tls_secret`) for its host too"
            )


StacId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", description="A STAC id or key.")
]


DownloadHost = Annotated[
    str,
    Field(
        pattern=r"^(\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$",
        description="A lower-case host name; '*.example.org' admits its sub-domains.",
    ),
]


def time_window_problem(value: str) -> str | None:
    """Why `value` is not a duration back from now (P2D, PT6H) or an interval of RFC 3339
    dates or instants (start/end, '..' for an open end); None when it is one."""
    allowed = (
        f"{value!r} is not a time window: give a duration back from now such as P2D or PT6H, "
        "or an interval such as 2024-05-01T00:00:00Z/2024-05-08T00:00:00Z or 2024-05-01/.. "
        "('..' for an open end)"
    )
    if value.startswith("P"):
        try:
            span = _DURATION.validate_python(value)
        except ValidationError:
            return allowed
        return None if span > dt.timedelta(0) else f"{value!r}: the duration must be above zero"
    ends = value.split("/")
    if len(ends) != 2 or ends == ["..", ".."]:
        return allowed
    instants = []
    for end in ends:
        if end == "..":
            continue
        if not _RFC3339.match(end):
            return allowed
        try:
            instant = _INSTANT.validate_python(end if "T" in end else f"{end}T00:00:00Z")
        except ValidationError:
            return allowed
        instants.append(instant)
    if len(instants) == 2 and instants[0] > instants[1]:
        return f"{value!r}: the interval ends before it starts"
    return None


_DURATION: TypeAdapter[dt.timedelta] = TypeAdapter(dt.timedelta)
_INSTANT: TypeAdapter[dt.datetime] = TypeAdapter(dt.datetime)
# The ingestion chart's own pattern for one end of the interval.
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2}))?$"
)


class SentinelSource(StrictModel):
    """A STAC API to copy Sentinel products from."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$",
        description="Name of the source, 3 to 24 characters.",
    )
    url: Url = Field(HttpUrl(COPERNICUS_STAC), description="The STAC API.")
    collections: list[StacId] = Field(
        min_length=1, description="Collections to search, e.g. sentinel-2-l2a."
    )
    bbox: tuple[float, float, float, float] = Field(
        description="Area: west, south, east, north in degrees (WGS 84)."
    )
    datetime: str = Field(
        "P2D",
        min_length=1,
        description="Time window: an ISO 8601 interval, or a duration back from now such as P2D.",
    )
    assets: list[StacId] = Field(
        min_length=1,
        description="Asset names to copy, as the source's items name them: "
        "B04_10m, B08_10m, SCL_20m on Copernicus Data Space (red, nir, scl on Earth Search).",
    )
    max_cloud_cover: float = Field(
        100, ge=0, le=100, description="Skip products cloudier than this (percent)."
    )
    download_hosts: list[DownloadHost] = Field(
        default_factory=list,
        description="Hosts besides the STAC API's own that assets may be downloaded from, and "
        "that receive the credentials, e.g. a mirror; '*.example.org' admits its sub-domains. "
        "Copernicus's download hosts are known already. An href or a redirect to any other host "
        "fails its item.",
    )

    @field_validator("datetime")
    @classmethod
    def _time_window(cls, value: str) -> str:
        """What the ingestion service turns into a STAC search `datetime`: checked here, not
        when the scheduled job first runs."""
        if problem := time_window_problem(value):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _bbox_ordered(self) -> SentinelSource:
        w, s, e, n = self.bbox
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise ValueError(
                f"bbox {list(self.bbox)} must be west < east within [-180, 180] and "
                "south < north within [-90, 90]"
            )
        return self


class Credentials(StrictModel):
    """A user name and password, both secret."""

    username: Secret = Field(description="User name (secret).")
    password: Secret = Field(description="Password (secret).")


class ApiKey(StrictModel):
    """An API key: a consumer key and its secret, both secret."""

    consumer_key: Secret = Field(description="Consumer key (secret).")
    consumer_secret: Secret = Field(description="Consumer secret (secret).")


ECMWF_OPEN_DATA = "https://data.ecmwf.int/forecasts"
EUMETSAT_API = "https://api.eumetsat.int"
_AREA = "Area: west, south, east, north in degrees (WGS 84)."


def _bbox_problem(bbox: tuple[float, float, float, float] | None) -> str | None:
    if bbox is None:
        return None
    w, s, e, n = bbox
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        return (
            f"bbox {list(bbox)} must be west < east within [-180, 180] and "
            "south < north within [-90, 90]"
        )
    return None


# What the ingestion service refuses as a parameter: a level word would make one selection's item
# id the same as another's (services/ingestion settings).
_ECMWF_LEVEL_WORD = re.compile(r"^(?:sfc|sol|pl|l)[0-9]*$")


class EcmwfForecasts(StrictModel):
    """ECMWF open-data forecasts (IFS, AIFS; GRIB2) to copy, one product per run and step."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$",
        description="Name of the source, 3 to 24 characters.",
    )
    url: Url = Field(
        HttpUrl(ECMWF_OPEN_DATA), description="The open-data root, ECMWF's or a mirror's."
    )
    model: Literal["ifs", "aifs-single", "aifs-ens"] = Field("ifs", description="The model.")
    resol: str = Field("0p25", pattern=r"^[0-9]p[0-9]+(-beta)?$", description="The grid.")
    stream: Literal["oper", "wave", "scda", "scwv", "enfo", "waef"] = Field(
        "oper", description="ECMWF stream: oper (deterministic), enfo (ensemble), ..."
    )
    type: Literal["fc", "cf", "pf", "em", "es", "ep"] = Field(
        "fc", description="ECMWF type: fc (forecast), cf/pf (control/perturbed members), ..."
    )
    steps: list[Annotated[int, Field(ge=0, le=1440)]] = Field(
        min_length=1, max_length=400, description="Forecast steps, hours after the run."
    )
    params: list[Annotated[str, Field(pattern=r"^[a-z0-9]{1,24}$")]] = Field(
        min_length=1,
        max_length=32,
        description="Parameters by ECMWF short name: 2t, msl, tp (letters and digits; levels "
        "are levtype and levelist).",
    )
    levtype: Literal["sfc", "pl", "sol"] | None = Field(None, description="Level type.")
    levelist: list[Annotated[int, Field(ge=1, le=1000)]] = Field(
        default_factory=list, description="Pressure levels (hPa) of upper-air parameters."
    )
    times: list[Literal[0, 6, 12, 18]] = Field(
        [0, 12], min_length=1, description="Run hours (UTC)."
    )
    datetime: str = Field(
        "P1D",
        description="Runs to copy: a duration back from now (P1D) or a closed interval of run "
        "times.",
    )
    bbox: tuple[float, float, float, float] | None = Field(
        None, description=_AREA + " Recorded in each item; the fields are global and copied whole."
    )
    max_product_mib: int = Field(
        2048,
        ge=1,
        le=1048576,
        description="Largest product (MiB), from the index, before download.",
    )
    download_hosts: list[DownloadHost] = Field(
        default_factory=list, description="Hosts besides the url's that files may come from."
    )

    @model_validator(mode="after")
    def _checked(self) -> EcmwfForecasts:
        problem = time_window_problem(self.datetime) or _bbox_problem(self.bbox)
        words = [p for p in self.params if _ECMWF_LEVEL_WORD.match(p)]
        if problem is None and words:
            problem = (
                f"params: {', '.join(words)} is a level word (sfc, sol, pl500, l850), not a "
                "parameter; levels are levtype and levelist"
            )
        if problem is None and ".." in self.datetime.split("/"):
            problem = f"{self.datetime!r}: runs are a duration or a closed interval, no '..'"
        if problem:
            raise ValueError(problem)
        return self


class EumetsatProducts(StrictModel):
    """EUMETSAT Data Store collections to copy (docs/ingestion.md)."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$",
        description="Name of the source, 3 to 24 characters.",
    )
    url: Url = Field(HttpUrl(EUMETSAT_API), description="The API root: token, search, download.")
    collections: list[Annotated[str, Field(pattern=r"^EO:[A-Z0-9][A-Z0-9:_-]{0,100}$")]] = Field(
        min_length=1, description="Data Store collection ids, e.g. EO:EUM:DAT:MSG:HRSEVIRI."
    )
    datetime: str = Field(
        "P1D", description="Sensing times: a duration back from now, or an interval."
    )
    bbox: tuple[float, float, float, float] | None = Field(None, description=_AREA)
    max_items: int | None = Field(
        None,
        ge=1,
        le=10000,
        description="At most this many products a collection per run (the service's 1000 unless "
        "set; the Data Store pages through 10000 at most).",
    )
    max_product_mib: int = Field(4096, ge=1, le=1048576, description="Largest product (MiB).")
    download_hosts: list[DownloadHost] = Field(
        default_factory=list, description="Hosts besides the url's that products may come from."
    )

    @model_validator(mode="after")
    def _checked(self) -> EumetsatProducts:
        problem = time_window_problem(self.datetime) or _bbox_problem(self.bbox)
        if problem:
            raise ValueError(problem)
        return self


POLYTOPE_DESTINE = "https://polytope.lumi.apps.dte.destination-earth.eu"
# What the ingestion service takes in a MARS request (services/ingestion settings.py).
_MARS_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MARS_TEXT = re.compile(r"^[A-Za-z0-9._:/+ -]{1,512}$")
_MARS_DATE = re.compile(r"^(?:[0-9]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2}|to|by|[1-9][0-9]{0,3})$")
MarsValue = str | int | float | list[str | int | float] | dict[str, Any]
# The request keys MARS and DestinE's Polytope know (ECMWF's MARS keyword list and DestinE's
# digital-twin keys): any other is refused with a did-you-mean (a typo would be ignored or
# refused by Polytope only at run time).
MARS_KEYS = frozenset(
    [
        "accuracy",
        "activity",
        "anoffset",
        "area",
        "bitmap",
        "channel",
        "class",
        "database",
        "dataset",
        "date",
        "diagnostic",
        "direction",
        "domain",
        "duplicates",
        "expect",
        "experiment",
        "expver",
        "fcmonth",
        "fcperiod",
        "feature",
        "format",
        "frame",
        "frequency",
        "gaussian",
        "generation",
        "georef",
        "grid",
        "hdate",
        "ident",
        "instrument",
        "interpolate",
        "intgrid",
        "iteration",
        "levelist",
        "levtype",
        "method",
        "model",
        "month",
        "number",
        "obsgroup",
        "obstype",
        "origin",
        "packing",
        "param",
        "product",
        "quantile",
        "range",
        "realization",
        "refdate",
        "reportype",
        "resol",
        "resolution",
        "rotation",
        "section",
        "step",
        "stream",
        "style",
        "system",
        "time",
        "timespan",
        "truncation",
        "type",
        "year",
    ]
)
# EODAG 4.10.1's providers (eodag/resources/providers/*.yml), read when the lock was written:
# a `provider` without `url` must be one of them.
EODAG_PROVIDERS = frozenset(
    [
        "aws_eos",
        "cop_ads",
        "cop_cds",
        "cop_dataspace",
        "cop_dataspace_s3",
        "cop_ewds",
        "cop_ghsl",
        "cop_marine",
        "creodias",
        "creodias_s3",
        "dedl",
        "dedt_leonardo",
        "dedt_lumi",
        "dedt_mn5",
        "dlr_eoc_geoservice",
        "earth_search",
        "earth_search_gcs",
        "ecmwf",
        "eumetsat_ds",
        "fedeo_ceda",
        "geodes",
        "geodes_s3",
        "hydroweb_next",
        "meteoblue",
        "planetary_computer",
        "sara",
        "theia",
        "usgs",
        "usgs_satapi_aws",
        "wekeo_cmems",
        "wekeo_ecmwf",
        "wekeo_main",
    ]
)
# Polytope source settings the service takes but the stack file leaves at their defaults.
_POLYTOPE_SERVICE_DEFAULTS = {
    "poll_seconds": "the first wait between polls (5 s, then 1.2 times longer each time)",
    "max_attempts": "the reads of one result in a run (3)",
}


def _did_you_mean(word: str, known: Any) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _yaml_date(value: Any) -> str | None:
    """The hint for a value YAML read as a date (an unquoted yyyy-mm-dd), or None."""
    if isinstance(value, dt.date) or (
        isinstance(value, list) and any(isinstance(v, dt.date) for v in value)
    ):
        return (
            "an unquoted yyyy-mm-dd is read as a date by YAML: quote it ('2030-01-01') or write "
            "yyyymmdd (20300101)"
        )
    return None


def mars_request_issues(request: dict[str, Any]) -> list[tuple[str | None, str]]:
    """What the ingestion service would refuse in a MARS request: (the request's key it is
    about, or None for the request as a whole; the problem), or [] for none."""
    issues: list[tuple[str | None, str]] = []
    for key in ("date", "param"):
        if key not in request:
            issues.append((None, f"the request names no {key!r} (a product is a date's params)"))
    if "dataset" not in request and "class" not in request:
        issues.append((None, "the request names neither 'dataset' nor 'class'"))
    for key, value in request.items():
        if problem := _yaml_date(value):
            issues.append((key, problem))
            continue
        if not _MARS_KEY.match(key):
            issues.append((key, f"{key!r} is not a MARS key (lower-case letters, digits, '_')"))
            continue
        if key not in MARS_KEYS:
            issues.append(
                (
                    key,
                    f"{key!r} is not a MARS or DestinE request key{_did_you_mean(key, MARS_KEYS)}",
                )
            )
            continue
        if key == "feature":
            if not isinstance(value, dict):
                issues.append((key, "feature must be a mapping (Polytope's feature extraction)"))
            continue
        items = value if isinstance(value, list) else [value]
        if isinstance(value, dict) or not items or len(items) > 1000:
            issues.append((key, "give a word, a number or a list of 1 to 1000 of them"))
            continue
        odd = [item for item in items if isinstance(item, str) and not _MARS_TEXT.match(item)]
        if odd:
            issues.append(
                (
                    key,
                    f"{odd[0][:40]!r} holds characters a MARS value does not (letters, digits, "
                    "'.', '_', ':', '/', '+', '-', spaces)",
                )
            )
            continue
        if key == "date":
            words = value if isinstance(value, list) else str(value).split("/")
            bad = [str(w).strip() for w in words if not _MARS_DATE.match(str(w).strip())]
            if bad:
                issues.append(
                    (
                        key,
                        f"{', '.join(bad)} is not an absolute date: allowed are dates "
                        "yyyymmdd or yyyy-mm-dd and ranges of them with 'to' and 'by' "
                        "(20240101/to/20240131/by/1); a relative date (-1, 0, quoted or not) "
                        "would copy changing data under one identity",
                    )
                )
    return issues


def _refused_at(
    title: str, issues: Sequence[tuple[Sequence[str | int], str, Any]]
) -> ValidationError:
    """An error for each (key path below the model validated, problem, value found): raised by
    a model's validator, it names the keys it is about (site.<...>.requests.0.param) where a
    ValueError would name the model's own."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{problem}", {"problem": problem}),
                loc=tuple(loc),
                input=found,
            )
            for loc, problem, found in issues
        ],
    )


# The product identity of a request, as the ingestion service's polytope_plan.canonical
# writes it (tests/charts/test_polytope_eodag_sources.py checks the two agree): sets sorted,
# other keys in their order (area, grid), spellings of one value made one. Written twice on
# purpose: the ingestion image installs fedeploy_ingestion alone, and fedeploy does not depend on it.
_MARS_SETS = frozenset(
    {
        "param",
        "step",
        "levelist",
        "number",
        "time",
        "date",
        "hdate",
        "fcmonth",
        "frequency",
        "direction",
        "channel",
        "realization",
        "generation",
        "ident",
        "obstype",
        "fcperiod",
    }
)
_MARS_CASELESS = frozenset({"class", "stream", "type", "levtype", "param", "domain"})


def _mars_words(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [w.strip() for item in items for w in str(item).split("/") if w.strip()]


def mars_identity(collection: str, request: dict[str, Any]) -> str:
    """The SHA-256 (hex) the ingestion service gives the request (its product identity)."""
    form: dict[str, Any] = {}
    for key, value in request.items():
        key = key.lower()
        if key == "feature":
            form[key] = value
            continue
        words = []
        for word in _mars_words(value):
            word = word.lower() if key in _MARS_CASELESS else word
            if re.match(r"^-?[0-9]+\.[0-9]+$", word):
                word = word.rstrip("0").rstrip(".")
            if key in ("date", "hdate"):
                word = re.sub(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$", r"\1\2\3", word)
            words.append(word)
        if key in _MARS_SETS and not {"to", "by"} & {w.lower() for w in words}:
            words = sorted(set(words))
        form[key] = words
    text = json.dumps(
        {"collection": collection, "request": form}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


class PolytopeRequests(StrictModel):
    """Requests to ECMWF's Polytope to copy: DestinE's digital-twin data, one product a request
    (docs/ingestion.md)."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$",
        description="Name of the source, 3 to 24 characters.",
    )
    url: Url = Field(
        HttpUrl(POLYTOPE_DESTINE),
        description="Polytope's address (DestinE's by default); only its host gets the key.",
    )
    collection: str = Field(
        "destination-earth",
        pattern=r"^[a-z][a-z0-9-]{1,62}$",
        description="Polytope collection: destination-earth (DestinE's digital twins), ...",
    )
    requests: list[dict[str, MarsValue]] = Field(
        min_length=1,
        max_length=200,
        description="MARS-language requests, one product each: class, dataset (climate-dt, "
        "extremes-dt), activity, experiment, model, generation, realization, expver, stream, "
        "type, levtype, param, date (absolute), time, step, and an area or a feature.",
    )
    bbox: tuple[float, float, float, float] | None = Field(
        None, description=_AREA + " Recorded in each item (the request's area is what is cut)."
    )
    max_product_mib: int = Field(
        2048, ge=1, le=1048576, description="Largest result (MiB), from its Content-Length."
    )
    max_wait_minutes: float = Field(
        60,
        gt=0,
        le=300,
        description="How long one request may stay queued before it fails. The requests of all "
        "sources are polled together, within the run's budget of 300 minutes (below the "
        "CronJob's 6 h deadline): a longer wait could never be reached.",
    )
    download_hosts: list[DownloadHost] = Field(
        default_factory=list,
        description="Hosts besides Polytope's that results may come from (a staging store); "
        "they never get the key.",
    )

    @model_validator(mode="before")
    @classmethod
    def _before(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, meaning in _POLYTOPE_SERVICE_DEFAULTS.items():
            camel = name.split("_")[0] + name.split("_")[1].capitalize()
            if name in data or camel in data:
                raise ValueError(
                    f"`{name}` is not set in the stack file: the service's default applies, "
                    f"{meaning} (docs/ingestion.md)"
                )
        requests = data.get("requests")
        dates = [
            (("requests", number, key), problem, value)
            for number, request in enumerate(requests if isinstance(requests, list) else [])
            if isinstance(request, dict)
            for key, value in request.items()
            if (problem := _yaml_date(value))
        ]
        if dates:
            raise _refused_at(cls.__name__, dates)
        return data

    @model_validator(mode="after")
    def _checked(self) -> PolytopeRequests:
        if problem := _bbox_problem(self.bbox):
            raise ValueError(problem)
        issues: list[tuple[Sequence[str | int], str, Any]] = []
        for number, request in enumerate(self.requests):
            for key, found in mars_request_issues(request):
                if key is None:
                    issues.append((("requests", number), found, request))
                else:
                    # A date as text: quoting a relative date (-1) would not make it absolute,
                    # so no "quote it" hint is due (the loader hints for a number given).
                    given = request.get(key)
                    shown = str(given) if key == "date" and not isinstance(given, list) else given
                    issues.append((("requests", number, key), found, shown))
        if issues:
            raise _refused_at(type(self).__name__, issues)
        return self


class PolytopeKey(StrictModel):
    """The Polytope key: DestinE's (from its `desp-authentication` script) or an ECMWF key."""

    key: Secret = Field(
        description="The key (secret): the bare key on one line (DestinE's `user_key` that "
        "`desp-authentication` prints, not ~/.polytopeapirc's JSON), printable ASCII without "
        "spaces; sent as `Bearer <key>` to Polytope only."
    )
    email: str | None = Field(
        None,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="The ECMWF account's e-mail, for an ECMWF key (EmailKey); unset for DestinE.",
    )

    @field_validator("key")
    @classmethod
    def _one_line(cls, key: Any) -> Any:
        # Checked where the CLI hands the decrypted value over (`pulumi up`); the message never
        # holds it. An HTTP header carries it: a pasted ~/.polytopeapirc would leak in errors.
        if key.value is not None and not re.fullmatch(r"[\x21-\x7e]{1,4096}", key.value.strip()):
            raise ValueError(
                "the Polytope key must be the bare key on one line of printable ASCII without "
                "spaces (DestinE's user_key, not ~/.polytopeapirc's JSON); its value is not shown"
            )
        return key


# The ingestion image the charts run by default; it does not carry EODAG (the `eodag` extra).
DEFAULT_INGESTION_IMAGE = "ghcr.io/fedeploy/ingestion"


class EodagProducts(StrictModel):
    """Products of one EODAG provider to copy: ESA's and other catalogues (docs/ingestion.md)."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$",
        description="Name of the source, 3 to 24 characters.",
    )
    provider: str = Field(
        pattern=r"^[a-z][a-z0-9_]{1,40}$",
        description="EODAG provider: cop_dataspace, dedl, dedt_lumi, creodias, ...; with `url`, "
        "the name given to that STAC API.",
    )
    url: Url | None = Field(None, description="A STAC API EODAG does not know (its root).")
    collections: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,100}$")]] = (
        Field(
            min_length=1,
            description="Product types as EODAG names them for a named provider (S2_MSI_L2A); "
            "with `url`, the STAC API's own collection ids (sentinel-2-l2a).",
        )
    )
    bbox: tuple[float, float, float, float] | None = Field(None, description=_AREA)
    datetime: str = Field(
        "P1D", description="Time window: a duration back from now, or an interval."
    )
    assets: list[StacId] = Field(min_length=1, description="Asset names to copy.")
    max_items: int | None = Field(None, ge=1, description="At most this many products per run.")
    token_url: Url | None = Field(
        None,
        description="OpenID Connect token endpoint of the download credentials (password grant); "
        "Copernicus's for cop_dataspace; without it, HTTP Basic.",
    )
    download_hosts: list[DownloadHost] = Field(
        default_factory=list,
        description="Hosts besides the provider's search host that assets may come from.",
    )

    @model_validator(mode="after")
    def _checked(self) -> EodagProducts:
        if self.url is None and self.provider not in EODAG_PROVIDERS:
            raise ValueError(
                f"provider {self.provider!r} is not one of EODAG 4.10's providers"
                f"{_did_you_mean(self.provider, EODAG_PROVIDERS)}; for a STAC API EODAG does "
                "not know, give its root as `url`"
            )
        problem = time_window_problem(self.datetime) or _bbox_problem(self.bbox)
        if problem:
            raise ValueError(problem)
        return self


class Sentinel(StrictModel):
    """Scheduled copies of Sentinel products."""

    enabled: bool = Field(True, description="Run the scheduled copy.")
    schedule: Cron = "15 * * * *"
    parallelism: int = Field(2, ge=1, le=64, description="Parallel workers per run.")
    sources: list[SentinelSource] = Field(
        default_factory=list, description="STAC APIs to copy Sentinel products from."
    )
    credentials: Credentials | None = Field(
        None, description="Download credentials of the sources (Copernicus Data Space account)."
    )
    ecmwf: list[EcmwfForecasts] = Field(
        default_factory=list, description="ECMWF open-data forecasts to copy (anonymous)."
    )
    eumetsat: list[EumetsatProducts] = Field(
        default_factory=list, description="EUMETSAT Data Store collections to copy."
    )
    eumetsat_credentials: ApiKey | None = Field(
        None, description="EUMETSAT API key (consumer key and secret): needed with `eumetsat`."
    )
    polytope: list[PolytopeRequests] = Field(
        default_factory=list,
        description="Requests to ECMWF's Polytope (DestinE's digital twins) to copy.",
    )
    polytope_credentials: PolytopeKey | None = Field(
        None, description="The Polytope key: needed with `polytope`."
    )
    eodag: list[EodagProducts] = Field(
        default_factory=list, description="ESA's and other catalogues through EODAG to copy."
    )
    eodag_credentials: Credentials | None = Field(
        None, description="Download credentials of the `eodag` sources' provider, if it asks."
    )
    eodag_image: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9](:[A-Za-z0-9._-]{1,128})?(@sha256:[0-9a-f]{64})?$",
        description="The ingestion image with EODAG (`fedeploy-ingestion[eodag]`), "
        "repository:tag: needed with `eodag`, the default image does not carry it.",
    )
    copy_min_rate_kib_s: float | None = Field(
        None,
        ge=0,
        description="The slowest a copy's body may come, KiB/s over each 60 s waited (0: no "
        "floor and no copy deadline); unset: the service's 64.",
    )
    http_timeout_seconds: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="Timeout of one upstream read (seconds, at most an hour); each hop's answer "
        "headers get twice it, all hops four times; unset: the service's 60.",
    )
    part_size_mib: int | None = Field(
        None,
        ge=5,
        le=5120,
        description="Multipart part size of a copy (MiB); memory holds 64 MiB of parts in "
        "flight (one part where larger) plus one part per reading copy; unset: the service's 16.",
    )
    max_asset_gib: float | None = Field(
        None,
        gt=0,
        le=5120,
        description="The largest asset copied (GiB): a larger file:size or Content-Length "
        "fails its item before anything is read; unset: the service's 50.",
    )

    @model_validator(mode="after")
    def _has_sources(self) -> Sentinel:
        if not (self.sources or self.ecmwf or self.eumetsat or self.polytope or self.eodag):
            raise ValueError(
                "give at least one source: `sources`, `ecmwf`, `eumetsat`, `polytope` or `eodag`"
            )
        if self.eumetsat and self.eumetsat_credentials is None:
            raise ValueError(
                "`eumetsat` sources need `eumetsat_credentials` (consumer_key, consumer_secret): "
                "the Data Store's API key"
            )
        if self.polytope and self.polytope_credentials is None:
            raise ValueError(
                "`polytope` sources need `polytope_credentials` (key, and email for an ECMWF "
                "key): DestinE's Polytope answers no request without it"
            )
        named: dict[str, str] = {}
        for kind in ("sources", "ecmwf", "eumetsat", "polytope", "eodag"):
            for number, source in enumerate(getattr(self, kind)):
                where = f"{kind}[{number}]"
                first = named.setdefault(source.name, where)
                if first != where:
                    raise ValueError(
                        f"{where}.name {source.name!r} is also {first}.name: every source needs "
                        "its own name (the run's report, its share of the run's time and the "
                        "ingest_copy_failures metric go by name); rename one"
                    )
        seen: dict[str, tuple[int, int]] = {}
        for index, source in enumerate(self.polytope):
            for number, request in enumerate(source.requests):
                earlier = seen.setdefault(
                    mars_identity(source.collection, request), (index, number)
                )
                if earlier != (index, number):
                    other = self.polytope[earlier[0]].name
                    raise _refused_at(
                        type(self).__name__,
                        [
                            (
                                ("polytope", index, "requests", number),
                                f"is the same request as polytope.{earlier[0]}.requests."
                                f"{earlier[1]} (source {other}'s): one product identity, the "
                                "Polytope url aside, so it would never be copied; remove one, or "
                                "make them differ",
                                request,
                            )
                        ],
                    )
        if self.eodag and not self.eodag_image:
            raise ValueError(
                f"`eodag` sources need `eodag_image`: the default image "
                f"{DEFAULT_INGESTION_IMAGE} does not carry EODAG; give an image of the "
                "ingestion service built with the `eodag` extra (fedeploy-ingestion[eodag])"
            )
        if self.eodag_image and not re.search(
            r"(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", self.eodag_image.rsplit("/", 1)[-1]
        ):
            raise ValueError(
                f"`eodag_image` {self.eodag_image!r} names no tag or digest: give "
                "repository:tag or repository@sha256:<digest> (without one the chart would run "
                "its own default tag from your repository)"
            )
        if self.eodag_image and not self.eodag:
            raise ValueError("`eodag_image` is set but there is no `eodag` source")
        return self


class Mqtt(StrictModel):
    """The broker of the edge sensor streams."""

    host: Annotated[HostName, _BROKER_HOST] = Field(
        description="Broker host name or IPv4 address (IPv6 addresses are not supported: the "
        "NetworkPolicy admits IPv4)."
    )
    port: int = Field(8883, ge=1, le=65535, description="Broker port.")
    topics: Annotated[list[TopicFilter], AfterValidator(check_unique_topics)] = Field(
        ["fedeploy/+/stations/+/observations"],
        min_length=1,
        description="Topic filters to subscribe to, each listed once: '+' only as a whole "
        "level, '#' only as the whole last level, no whitespace or comma.",
    )
    credentials: Credentials | None = Field(None, description="Broker account, if it asks for one.")
    tls: bool = Field(
        True,
        description="Connect with TLS, verifying the broker's certificate. false sends messages "
        "and any credentials in clear text (the plan gives an advisory finding with credentials).",
    )
    ca_certificate: PemBundle | None = Field(
        None,
        description="PEM of the CA certificate(s) that signed the broker's certificate (comment "
        "lines outside the blocks are kept); unset: the system's CAs.",
    )

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> Mqtt:
        if self.ca_certificate is not None and not self.tls:
            raise ValueError("ca_certificate is set but tls is false: remove it or enable tls")
        return self


Wis2Topic = Annotated[
    str,
    Field(
        pattern=r"^(origin|cache)/a/wis2/[^\s#]*(#)?$",
        description="A WIS2 topic filter: 'origin/a/wis2/...' or 'cache/a/wis2/...' ('+' and a "
        "final '#' allowed).",
    ),
    AfterValidator(check_topic_filter),
]


class Wis2(StrictModel):
    """A WIS2 subscription: notification messages linking to BUFR observations (a second
    consumer beside the own-format one; docs/ingestion.md, 'WIS2 notifications and BUFR')."""

    broker: str = Field(
        pattern=r"^mqtts://[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        description="The broker, 'mqtts://host[:port]' (TLS on; port 8883 when omitted), e.g. "
        "a WIS2 Global Broker.",
    )
    credentials: Credentials | None = Field(
        None, description="Broker account, if it asks for one (secret)."
    )
    topics: Annotated[list[Wis2Topic], AfterValidator(check_unique_topics)] = Field(
        min_length=1,
        description="Topic filters, each listed once, e.g. "
        "'cache/a/wis2/+/data/core/weather/surface-based-observations/synop'.",
    )
    download_hosts: list[DownloadHost] = Field(
        min_length=1,
        description="Hosts canonical links may be downloaded from; any other is refused.",
    )

    @field_validator("broker")
    @classmethod
    def _port(cls, broker: str) -> str:
        if problem := url_port_problem(broker):
            raise ValueError(
                f"given {broker!r}: {problem}; allowed: mqtts://host[:port], the port 1 to 65535"
            )
        return broker

    @property
    def host(self) -> str:
        """The broker's host name."""
        return self.broker.removeprefix("mqtts://").split(":", 1)[0]

    @property
    def port(self) -> int:
        """The broker's port (8883 unless the URL names one)."""
        rest = self.broker.removeprefix("mqtts://")
        return int(rest.split(":", 1)[1]) if ":" in rest else 8883


class Stream(StrictModel):
    """The long-running consumer of edge sensor streams."""

    enabled: bool = Field(True, description="Run the consumer.")
    replicas: int = Field(
        1, ge=1, le=64, description="Consumers; each owns a share of the stations."
    )
    previous_replicas: int | None = Field(
        None,
        ge=1,
        le=64,
        description="While `replicas` changes: the count before the change (step 1 of "
        "docs/ingestion.md, 'Changing the replica count'); unset once every consumer runs the "
        "new count.",
    )
    mqtt: Mqtt = Field(description="The broker and its topics.")
    wis2: Wis2 | None = Field(
        None, description="A WIS2 subscription (notifications linking to BUFR), if any."
    )
    window_seconds: int = Field(
        3600, ge=60, le=86400, description="Span of one stored window, in seconds; divides a day."
    )

    @model_validator(mode="after")
    def _window_divides_a_day(self) -> Stream:
        # Windows align to midnight UTC, so every replica cuts the same windows.
        if 86400 % self.window_seconds:
            raise ValueError(f"window_seconds ({self.window_seconds}) must divide a day (86400)")
        return self


class IngestionService(StrictModel):
    """Sentinel products and edge sensor streams into the site's storage and catalog."""

    enabled: bool = Field(True, description="Deploy ingestion on this site.")
    bucket: BucketName = Field("raw", description="Logical bucket the data lands in.")
    sentinel: Sentinel | None = Field(None, description="Scheduled Sentinel copies.")
    stream: Stream | None = Field(None, description="Edge sensor stream consumer.")

    @model_validator(mode="after")
    def _has_work(self) -> IngestionService:
        if self.enabled and self.sentinel is None and self.stream is None:
            raise ValueError("ingestion is enabled but has neither `sentinel` nor `stream`")
        return self


class InferenceService(StrictModel):
    """The meteorological model server."""

    enabled: bool = Field(True, description="Deploy inference on this site.")
    bucket: BucketName = Field("models", description="Logical bucket the models are published in.")
    model: str = Field(
        "station-forecast", pattern=r"^[a-z][a-z0-9-]{0,40}$", description="Model name."
    )
    version: str = Field(
        "latest",
        pattern=r"^(latest|[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8})$",
        description="latest (the newest published), or a published version: "
        "YYYYMMDDTHHMMSSZ-<8 hex digits>, named by the UTC time it was published (a real "
        "date and time).",
    )
    gpu: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: on the GPU where the cluster has GPU nodes; on: require them."
    )
    min_replicas: int = Field(1, ge=1, le=100, description="Fewest server replicas.")
    max_replicas: int = Field(4, ge=1, le=100, description="Most server replicas (autoscaler).")

    @field_validator("version")
    @classmethod
    def _real_stamp(cls, value: str) -> str:
        """A published version is named by the UTC time it was published (the inference
        service's registry.new_version): a date or time that never was names none."""
        if value == "latest":
            return value
        stamp = value.split("-", 1)[0]
        try:
            dt.datetime(
                int(stamp[0:4]),
                int(stamp[4:6]),
                int(stamp[6:8]),
                int(stamp[9:11]),
                int(stamp[11:13]),
                int(stamp[13:15]),
                tzinfo=dt.UTC,
            )
        except ValueError as err:
            raise ValueError(
                f"version {value!r}: {stamp} is no UTC time ({err}); a published version is "
                "YYYYMMDDTHHMMSSZ-<8 hex digits>, named by the UTC time it was published "
                "(month 01-12, a day the month has, hour 00-23, minute and second 00-59), or "
                "latest"
            ) from None
        return value

    @model_validator(mode="after")
    def _replicas_ordered(self) -> InferenceService:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        return self


SERVICES_NAMESPACE_WORDS = (
    "a namespace of the services' own (fedeploy creates it, labels it with the restricted Pod "
    "Security level and deletes it with the stack), not default, a kube-* name or "
    "exposure.controller_namespace"
)


def system_namespace_problem(namespace: str) -> str | None:
    """Why the services cannot have `namespace` whatever else the site says, or None."""
    if namespace == "default" or namespace.startswith("kube-"):
        return (
            f"{namespace!r} is not a namespace for the services: Kubernetes reserves the "
            "kube- prefix for its own namespaces (kube-system, kube-public, kube-node-lease), "
            "and default is where objects without a namespace go; fedeploy creates the "
            "services' namespace, labels it with the restricted Pod Security level (which "
            "would refuse the system pods of kube-system) and deletes it with the stack; give "
            "the services a namespace of their own, e.g. fedeploy"
        )
    return None


def namespace_clash(namespace: str, catalog: CatalogService) -> str | None:
    """Why the services cannot share `namespace` with the catalog's controller (the ingress
    controller's or the Gateway data plane's namespace), or None."""
    exposure = catalog.exposure if catalog.enabled else None
    if exposure is not None and exposure.controller_namespace == namespace:
        return (
            f"{namespace!r} is also services.catalog.exposure.controller_namespace: the "
            "NetworkPolicies admit every pod of the controller's namespace to the auth proxy "
            "and the asset endpoint, so every pod of the services would pass for the "
            "controller, and fedeploy would take the controller's namespace over (label it "
            "restricted, delete it with the stack); give the services a namespace of their "
            "own, e.g. fedeploy"
        )
    return None


def check_services_namespace(namespace: str) -> str:
    """The services' namespace, unless Kubernetes keeps it for itself (ValueError)."""
    if problem := system_namespace_problem(namespace):
        raise ValueError(problem)
    return namespace


def refuse_namespace_clash(namespace: str, catalog: CatalogService, model: str) -> None:
    """Refuse, at `namespace` of the model validated, the controller's namespace."""
    if problem := namespace_clash(namespace, catalog):
        raise _refused_at(model, [(("namespace",), problem, namespace)])


class Services(StrictModel):
    """Our Helm charts on this site."""

    namespace: Annotated[str, AfterValidator(check_services_namespace)] = Field(
        "fedeploy",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Namespace of the services: " + SERVICES_NAMESPACE_WORDS + ".",
    )
    catalog: CatalogService = Field(default_factory=CatalogService, description="The STAC catalog.")
    ingestion: IngestionService | None = Field(None, description="Ingestion; off when unset.")
    inference: InferenceService | None = Field(None, description="Inference; off when unset.")

    @model_validator(mode="after")
    def _namespace_apart(self) -> Services:
        refuse_namespace_clash(self.namespace, self.catalog, type(self).__name__)
        return self
