"""`fedeploy verify SITE`: the live site checked from the outside, as its stack file describes it.

After `pulumi up`, each check probes a public endpoint the stack file names:

- the catalog's public URL answers `/` and `/conformance` with the STAC API core class;
- the collections the site's ingestion writes exist (its Sentinel sources' collections, and
  `edge-observations` when it runs the stream consumer);
- the catalog refuses an anonymous write (where the site publishes its catalog behind the
  token-checking proxy, `services.catalog.exposure`; otherwise "not applicable", with why);
- on the hub, every member's harvest status collection `fedeploy-site-<member>` says `ok`
  and its `last_success` is younger than `max_harvest_age_s`;
- the bridge, where the runner can reach it, answers its ping path (a 401 asking for a token
  counts: the listener is up and speaks TLS);
- on a storage-only site (role: storage), which has no catalog, only its buckets: each exists
  and refuses an anonymous listing (403), asked without credentials at its store's endpoint.

Each check retries with exponential backoff until it passes or its deadline passes (tenacity);
the checks run side by side, so a run lasts at most about one deadline."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_result,
    stop_after_delay,
    wait_exponential,
)

from fedeploy.config.site_base import is_storage_only
from fedeploy.errors import FedeployError

OK, FAILED, NOT_APPLICABLE = "ok", "failed", "not applicable"
EXIT_PASSED, EXIT_FAILED, EXIT_UNVERIFIABLE = 0, 1, 2
STAC_CORE = "https://api.stacspec.org/v1.0.0/core"
# The stream consumer's collection (fedeploy_ingestion.windowing.OBSERVATIONS_COLLECTION).
OBSERVATIONS_COLLECTION = "edge-observations"
STATUS_PREFIX = "fedeploy-site-"  # the hub's harvest status collections


# getaddrinfo's answers for a name that does not exist (EAI_NODATA: no address of the name).
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class VerifyError(FedeployError):
    """The site cannot be verified: unknown stack, invalid stack file, no public URL."""


@dataclass(frozen=True)
class Outcome:
    """One attempt's answer: passed or not, and what was seen."""

    passed: bool
    evidence: str


@dataclass
class CheckResult:
    name: str
    status: str  # ok | failed | not applicable
    evidence: str
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status,
            "evidence": self.evidence,
            "attempts": self.attempts,
        }


Probe = Callable[[httpx.Client], Outcome]


@dataclass
class PlannedCheck:
    """A check to run (`probe`) or one that does not apply (`reason`)."""

    name: str
    probe: Probe | None = None
    reason: str = ""


@dataclass
class Settings:
    """How hard to try: per-request timeout, per-check deadline, harvest age, TLS trust."""

    timeout_s: float = 10.0
    deadline_s: float = 120.0
    max_harvest_age_s: float = 3600.0
    verify_tls: bool | ssl.SSLContext = True  # the system's CAs, or a context trusting others
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    progress: Callable[[str], None] | None = None  # told of each retry, one line each


@dataclass
class VerifyReport:
    site: str
    kind: str
    catalog_url: str
    checks: list[CheckResult]

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if any(c.status == FAILED for c in self.checks) else EXIT_PASSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "kind": self.kind,
            "catalog_url": self.catalog_url,
            "checks": [c.to_dict() for c in self.checks],
            "exit_code": self.exit_code,
        }


# ---- probes (one HTTP exchange each; tenacity repeats them) -------------------------------------


def _get_json(client: httpx.Client, url: str) -> tuple[httpx.Response | None, Any, str]:
    try:
        answer = client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as err:
        return None, None, f"GET {url}: {type(err).__name__}: {err}"
    try:
        body = answer.json()
    except ValueError:
        body = None
    return answer, body, f"GET {url} → {answer.status_code}"


def root_probe(url: str) -> Probe:
    def probe(client: httpx.Client) -> Outcome:
        answer, body, seen = _get_json(client, f"{url}/")
        if answer is None or answer.status_code != 200 or not isinstance(body, dict):
            return Outcome(False, seen + ("" if answer is None else ", not a JSON catalog"))
        if body.get("type") != "Catalog" or "links" not in body:
            return Outcome(
                False, f"{seen}, but the JSON is not a STAC catalog (type {body.get('type')!r})"
            )
        return Outcome(
            True, f"{seen}, STAC catalog {body.get('id')!r} (STAC {body.get('stac_version')})"
        )

    return probe


def conformance_probe(url: str) -> Probe:
    def probe(client: httpx.Client) -> Outcome:
        answer, body, seen = _get_json(client, f"{url}/conformance")
        if answer is None or answer.status_code != 200 or not isinstance(body, dict):
            return Outcome(False, seen)
        classes = body.get("conformsTo") or []
        if STAC_CORE not in classes:
            return Outcome(False, f"{seen}, conformsTo lacks {STAC_CORE} ({len(classes)} classes)")
        return Outcome(True, f"{seen}, conforms to STAC API core among {len(classes)} classes")

    return probe


def collection_probe(url: str, collection: str) -> Probe:
    def probe(client: httpx.Client) -> Outcome:
        answer, body, seen = _get_json(client, f"{url}/collections/{collection}")
        if answer is None:
            return Outcome(False, seen)
        if answer.status_code == 200 and isinstance(body, dict) and body.get("id") == collection:
            return Outcome(True, f"{seen}, collection {collection!r} exists")
        return Outcome(False, f"{seen}: collection {collection!r} is missing")

    return probe


def anonymous_write_probe(url: str) -> Probe:
    """POST an empty (invalid) collection without a token: a gated catalog refuses it before
    reading the body (401/403), one without transactions has no such route (404/405); an
    answer from the API itself (2xx, 400, 422) means anonymous writes reach it. The empty body
    is invalid, so nothing is ever created."""

    def probe(client: httpx.Client) -> Outcome:
        target = f"{url}/collections"
        try:
            answer = client.post(target, json={})
        except httpx.HTTPError as err:
            return Outcome(False, f"POST {target}: {type(err).__name__}: {err}")
        seen = f"POST {target} without a token → {answer.status_code}"
        if answer.status_code in (401, 403):
            return Outcome(True, f"{seen}: refused")
        if answer.status_code in (404, 405):
            return Outcome(True, f"{seen}: no write route")
        if answer.status_code >= 500:
            return Outcome(False, f"{seen}: the catalog failed")
        return Outcome(False, f"{seen}: the API itself answered, so anonymous writes reach it")

    return probe


def _status_probe(target: str, verdicts: dict[int, tuple[bool, str]], said: str = "") -> Probe:
    """GET `target`; the answer's status is judged by `verdicts` (status -> passed, why), any
    other status or no answer fails. `said` follows the URL in the evidence."""

    def probe(client: httpx.Client) -> Outcome:
        try:
            answer = client.get(target)
        except httpx.HTTPError as err:
            return Outcome(False, f"GET {target}: {type(err).__name__}: {err}")
        seen = f"GET {target}{said} → {answer.status_code}"
        if answer.status_code not in verdicts:
            return Outcome(False, seen)
        passed, why = verdicts[answer.status_code]
        return Outcome(passed, f"{seen}: {why}")

    return probe


def private_bucket_probe(url: str) -> Probe:
    """List the bucket at `url` without credentials: 403 is a bucket that exists and is private;
    200 one anyone may list (public), 404 one that is not there, a redirect one in another
    region."""
    elsewhere = (False, "the bucket answers from another region or endpoint")
    return _status_probe(
        f"{url}?list-type=2&max-keys=1",
        {
            403: (True, "exists, refuses anonymous listing"),
            200: (False, "anyone may list it, the bucket is public"),
            404: (False, "no such bucket (not deployed yet?)"),
            301: elsewhere,
            307: elsewhere,
        },
        said=" without credentials",
    )


def _age(moment: str, now: datetime) -> float | None:
    try:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (now - parsed).total_seconds()


def harvest_probe(url: str, member: str, settings: Settings) -> Probe:
    collection = f"{STATUS_PREFIX}{member}"

    def probe(client: httpx.Client) -> Outcome:
        answer, body, seen = _get_json(client, f"{url}/collections/{collection}")
        if answer is None:
            return Outcome(False, seen)
        if answer.status_code != 200 or not isinstance(body, dict):
            return Outcome(False, f"{seen}: no harvest status for {member} (never harvested?)")
        status = body.get("fedeploy:harvest") or {}
        if status.get("status") != "ok":
            error = f": {status['error']}" if status.get("error") else ""
            return Outcome(
                False,
                f"{seen}: last harvest of {member} {status.get('status', 'unknown')}{error} "
                f"(attempted {status.get('last_attempt', '?')})",
            )
        age = _age(str(status.get("last_success")), settings.now())
        if age is None:
            return Outcome(
                False, f"{seen}: last_success {status.get('last_success')!r} is not a time"
            )
        if age > settings.max_harvest_age_s:
            return Outcome(
                False,
                f"{seen}: last success {status['last_success']} is {age:.0f} s old, "
                f"over the {settings.max_harvest_age_s:.0f} s allowed",
            )
        return Outcome(True, f"{seen}: ok, last success {status['last_success']} ({age:.0f} s ago)")

    return probe


def bridge_probe(base: str, api_version: str | None) -> Probe:
    # No version pinned: slurmrestd's own description, which every version serves.
    target = f"{base}/slurm/{api_version}/ping" if api_version else f"{base}/openapi/v3"
    asks = (True, "the listener is up and asks for a token")
    return _status_probe(target, {200: (True, "the controller answers"), 401: asks, 403: asks})


# ---- what to check on a site (a pure decision) --------------------------------------------------


def ingestion_collections(site: Any) -> list[str]:
    """The collections the site's ingestion writes, from its stack file."""
    services = getattr(site, "services", None)
    ingestion = getattr(services, "ingestion", None)
    if ingestion is None or not ingestion.enabled:
        return []
    collections: set[str] = set()
    if ingestion.sentinel is not None and ingestion.sentinel.enabled:
        for source in ingestion.sentinel.sources:
            collections.update(source.collections)
    if ingestion.stream is not None and ingestion.stream.enabled:
        collections.add(OBSERVATIONS_COLLECTION)
    return sorted(collections)


def catalog_url_of(site: Any) -> str | None:
    catalog = getattr(getattr(site, "services", None), "catalog", None)
    url = getattr(catalog, "url", None)
    return str(url).rstrip("/") if url else None


def _in_cluster(host: str) -> bool:
    """Whether a host is a cluster-internal name or a private address (loopback excepted)."""
    import ipaddress

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.endswith((".svc", ".cluster.local")) or "." not in host
    return address.is_private and not address.is_loopback


def bridge_base(site: Any, override: str | None) -> tuple[str | None, str]:
    """The bridge's URL as the runner reaches it, or None and why it cannot."""
    bridge = getattr(site, "bridge", None)
    if bridge is None:
        return None, "the site has no bridge"
    if override:
        return override.rstrip("/"), ""
    scheme = "https" if bridge.tls.enabled else "http"
    if bridge.mode == "existing" and bridge.endpoint:
        base = bridge.endpoint.rstrip("/")
    elif bridge.mode == "gateway" and bridge.host:
        base = f"{scheme}://{bridge.host}:{bridge.rest_port}"
    else:
        return None, (
            f"a {bridge.mode} bridge listens in the site's private network, which only the "
            "cluster reaches (give --bridge-url where the runner can reach it)"
        )
    host = urlsplit(base).hostname or ""
    if _in_cluster(host):
        return None, f"{base} is a private or in-cluster address the runner cannot reach"
    return base, ""


def bucket_urls(name: str, site: Any) -> dict[str, str]:
    """Logical bucket name -> the URL its store answers for it at (AWS: virtual-hosted in the
    site's region; an S3-compatible endpoint: by path, or virtual-hosted if path_style is off)."""
    from fedeploy.config.loader import physical_buckets

    storage = site.storage
    endpoint = getattr(storage, "endpoint", None)
    urls = {}
    for logical, physical in sorted(physical_buckets(site, name).items()):
        if endpoint is None:
            urls[logical] = f"https://{physical}.s3.{site.region}.amazonaws.com/"
        elif storage.path_style:
            urls[logical] = f"{str(endpoint).rstrip('/')}/{physical}"
        else:
            parts = urlsplit(str(endpoint))
            urls[logical] = f"{parts.scheme}://{physical}.{parts.netloc}/"
    return urls


def storage_checks(name: str, site: Any) -> list[PlannedCheck]:
    """A storage-only site's checks: each bucket exists and is private (no catalog, no bridge)."""
    return [
        PlannedCheck(f"bucket {logical} is private", private_bucket_probe(url))
        for logical, url in bucket_urls(name, site).items()
    ]


def plan_checks(
    name: str,
    site: Any,
    catalog_url: str,
    settings: Settings,
    bridge_url: str | None = None,
    storage_members: frozenset[str] = frozenset(),
) -> list[PlannedCheck]:
    """The checks of one site, in the order they are reported; on the hub, the harvest of a
    member in `storage_members` (storage-only: no catalog) does not apply."""
    checks = [
        PlannedCheck("catalog answers /", root_probe(catalog_url)),
        PlannedCheck("catalog conformance", conformance_probe(catalog_url)),
    ]
    for collection in ingestion_collections(site):
        checks.append(
            PlannedCheck(f"collection {collection}", collection_probe(catalog_url, collection))
        )
    catalog = getattr(getattr(site, "services", None), "catalog", None)
    if not hasattr(catalog, "exposure"):
        checks.append(
            PlannedCheck(
                "no anonymous writes",
                reason="this fedeploy has no catalog exposure settings (no token-checking "
                "proxy to verify)",
            )
        )
    elif getattr(catalog, "exposure", None) is None:
        checks.append(
            PlannedCheck(
                "no anonymous writes",
                reason="the stack file sets no services.catalog.exposure: the catalog is not "
                "published behind the token-checking proxy",
            )
        )
    else:
        checks.append(PlannedCheck("no anonymous writes", anonymous_write_probe(catalog_url)))
    for member in getattr(site, "members", None) or []:
        if member in storage_members:
            checks.append(
                PlannedCheck(
                    f"harvest of {member}",
                    reason="a storage-only member: it has no catalog to harvest",
                )
            )
            continue
        checks.append(
            PlannedCheck(f"harvest of {member}", harvest_probe(catalog_url, member, settings))
        )
    if site.kind != "hub":
        base, why = bridge_base(site, bridge_url)
        if base is None:
            checks.append(PlannedCheck("bridge answers", reason=why))
        else:
            checks.append(
                PlannedCheck("bridge answers", bridge_probe(base, site.bridge.api_version))
            )
    return checks


# ---- running ---------------------------------------------------------------------------------------


def run_check(check: PlannedCheck, client: httpx.Client, settings: Settings) -> CheckResult:
    """Run one check until it passes or its deadline passes; the last attempt is the evidence."""
    if check.probe is None:
        return CheckResult(check.name, NOT_APPLICABLE, check.reason)
    probe = check.probe
    attempts = 0
    last = Outcome(False, "not attempted")

    def attempt() -> Outcome:
        nonlocal attempts, last
        attempts += 1
        last = probe(client)
        return last

    started = time.monotonic()

    def retrying_next(state: RetryCallState) -> None:
        if settings.progress is not None and state.next_action is not None:
            left = max(0.0, settings.deadline_s - (time.monotonic() - started))
            settings.progress(
                f"{check.name}: attempt {attempts} did not pass ({last.evidence}); next in "
                f"{state.next_action.sleep:.0f} s, {left:.0f} s left"
            )

    retrying = Retrying(
        stop=stop_after_delay(settings.deadline_s),
        wait=wait_exponential(multiplier=0.5, max=15),
        retry=retry_if_result(lambda outcome: not outcome.passed),
        before_sleep=retrying_next,
    )
    with contextlib.suppress(RetryError):  # the last outcome is the answer
        retrying(attempt)
    status = OK if last.passed else FAILED
    evidence = last.evidence
    if not last.passed:
        evidence += f" (after {attempts} attempt{'s' if attempts != 1 else ''} in {settings.deadline_s:.0f} s)"
    return CheckResult(check.name, status, evidence, attempts)


def load_site(stacks_dir: Path, name: str) -> Any:
    """The validated config of stack `name`; VerifyError if it has no valid stack file."""
    from fedeploy.config.loader import load_stack_file

    path = stacks_dir / f"Pulumi.{name}.yaml"
    if not path.is_file():
        known = sorted(p.name.split(".")[1] for p in stacks_dir.glob("Pulumi.*.yaml"))
        raise VerifyError(
            f"no stack file {path} (stacks in {stacks_dir}: {', '.join(known) or 'none'})"
        )
    try:
        _, site = load_stack_file(path, check_federation=False)
    except FedeployError as err:
        raise VerifyError(f"{name} cannot be verified: its stack file is invalid:\n{err}") from None
    return site


def verify_site(
    name: str,
    stacks_dir: Path,
    settings: Settings,
    catalog_url: str | None = None,
    bridge_url: str | None = None,
) -> VerifyReport:
    """Check stack `name`'s live site; raises VerifyError when it cannot be verified."""
    site = load_site(stacks_dir, name)
    if is_storage_only(site):
        return _run(name, site, "", storage_checks(name, site), settings)
    url = (catalog_url or "").rstrip("/") or catalog_url_of(site)
    if not url:
        raise VerifyError(
            f"{name} has no public catalog URL (services.catalog.url is unset): nothing outside "
            "the cluster can reach it; give --catalog-url to check it through another address"
        )
    require_resolvable(name, url)
    checks = plan_checks(name, site, url, settings, bridge_url, storage_members(stacks_dir, site))
    return _run(name, site, url, checks, settings)


def storage_members(stacks_dir: Path, site: Any) -> frozenset[str]:
    """The members of a hub whose stack files make them storage-only sites (none elsewhere)."""
    members = getattr(site, "members", None) or []
    if not members:
        return frozenset()
    from fedeploy.config.loader import sibling_sites

    siblings = sibling_sites(stacks_dir)
    return frozenset(m for m in members if m in siblings and is_storage_only(siblings[m].site))


def _run(
    name: str, site: Any, url: str, checks: list[PlannedCheck], settings: Settings
) -> VerifyReport:
    with (
        httpx.Client(timeout=settings.timeout_s, verify=settings.verify_tls) as client,
        ThreadPoolExecutor(max_workers=min(8, len(checks))) as pool,
    ):
        results = list(pool.map(lambda c: run_check(c, client, settings), checks))
    return VerifyReport(name, site.kind, url, results)


def require_resolvable(name: str, url: str) -> None:
    """Raise VerifyError (cannot verify, exit 2) when the catalog URL's host name does not exist
    in DNS: retrying for minutes would only end in every check failing with the same
    "Name or service not known". A temporary failure of the resolver is left to the retries."""
    host = urlsplit(url).hostname or ""
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as err:
        if err.errno not in _NO_SUCH_NAME:
            return
        raise VerifyError(
            f"{name} cannot be verified: {host}, the host of its catalog URL {url}, does not "
            f"resolve ({err.strerror}); the site is not deployed yet or its DNS record is "
            "missing (give --catalog-url to check it through another address). Nothing was "
            "checked"
        ) from None


def as_text(report: VerifyReport) -> str:
    failed = sum(c.status == FAILED for c in report.checks)
    lines = [
        f"fedeploy verify {report.site} ({report.kind}, {report.catalog_url or 'storage only'}): "
        f"{len(report.checks)} checks, {failed} failed"
    ]
    width = max((len(c.name) for c in report.checks), default=0)
    for check in report.checks:
        mark = {OK: "ok", FAILED: "FAILED", NOT_APPLICABLE: "n/a"}[check.status]
        lines.append(f"  {mark:6}  {check.name:{width}}  {check.evidence}")
    return "\n".join(lines) + "\n"


def as_json(report: VerifyReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
