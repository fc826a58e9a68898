"""Copying one agency product (an ECMWF forecast, a EUMETSAT product) into the site's bucket
and catalog exactly once: what the agency runs share, and with the Sentinel run the address
guard (`guarded_downloads`), the check for a registered item (`registered`) and the copy or
reuse of one object (`copy_or_reuse`).

A product has a key and an item id made from its identity, and a fingerprint of the upstream
content. A product whose site item carries the same fingerprint is skipped; an object completed
by a run that died before registering its item (metadata `fedeploy-fingerprint`) is verified and
reused; an unfinished multipart upload is resumed (ObjectStore.copy_from). Each product is
handled inside a boundary: one that fails is named in the report, the run goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from fedeploy_ingestion import download_safety
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.download_safety import Deadline
from fedeploy_ingestion.errors import SourceError, failure_text
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.multihash import Digest
from fedeploy_ingestion.object_store import CopyResult, MiB, ObjectStore, RangeSource
from fedeploy_ingestion.sentinel_plan import CopiedAsset
from fedeploy_ingestion.settings import AgencySource, IngestSettings, Source

log = logging.getLogger(__name__)

# Of INGEST_RUN_DEADLINE_SECONDS (the Job's activeDeadlineSeconds), what the copies leave for
# the pod's start and the registration of the items copied last: a tenth, at most 10 min.
RUN_MARGIN_SHARE = 0.1
RUN_MARGIN_SECONDS = 600.0
# The kinds of source in the order a run takes them (cli.sentinel), each with its settings
# field: Sentinel's INGEST_SOURCES first, then the agencies'.
SOURCE_KINDS = (
    ("sentinel", "sources"),
    ("ecmwf", "ecmwf_sources"),
    ("eumetsat", "eumetsat_sources"),
    ("eodag", "eodag_sources"),
    ("polytope", "polytope_sources"),
)


def _margin(deadline: float) -> float:
    return min(RUN_MARGIN_SECONDS, RUN_MARGIN_SHARE * deadline)


def run_end(settings: IngestSettings, started: float) -> float | None:
    """When (time.monotonic()) the run's copies must be done: INGEST_RUN_DEADLINE_SECONDS from
    `started`, less the margin for registering; None without a run deadline."""
    deadline = settings.run_deadline_seconds
    return None if deadline is None else started + deadline - _margin(deadline)


def run_share(
    settings: IngestSettings,
    started: float,
    kind: str,
    index: int,
    name: str,
    sharing: int | None = None,
) -> Deadline | None:
    """The time source `index` of `kind` (a SOURCE_KINDS name) may take, from now: an equal
    share of what is left of INGEST_RUN_DEADLINE_SECONDS (from `started`, a time.monotonic(),
    less the margin) among it and every source the run takes after it (or among `sharing`
    sources, where the caller knows which still have work); None without a run deadline. A
    source that ends early leaves its time to the next. `name` names the source in the
    deadline's message."""
    deadline, end = settings.run_deadline_seconds, run_end(settings, started)
    if deadline is None or end is None:
        return None
    if sharing is None:
        fields = [field for _, field in SOURCE_KINDS]
        position = [k for k, _ in SOURCE_KINDS].index(kind)
        sharing = sum(len(getattr(settings, field)) for field in fields[position:]) - index
    sharing = max(1, sharing)
    return Deadline(
        max(0.0, end - time.monotonic()) / sharing,
        f"source {name}: its share of the run's time (1/{sharing} of what was left of "
        f"INGEST_RUN_DEADLINE_SECONDS={deadline:g} s less {_margin(deadline):g} s to register)",
    )


def share_spent(budget: Deadline | None, taken: int, what: str) -> SourceError | None:
    """The failure a source's `<source>:budget` reports once its share `budget` has passed
    after `taken` of its `what` (items, products); None before that, or without a share."""
    if budget is None or budget.at > time.monotonic():
        return None
    return SourceError(
        f"{budget.what}: spent after {taken} {what}; the others are left for the next run"
    )


@dataclass
class ProductReport:
    """What a run over one kind of source did, printed as JSON by the CLI."""

    found: int = 0
    other_shards: int = 0
    skipped: int = 0
    registered: int = 0
    copied: int = 0
    reused: int = 0
    resumed: int = 0
    bytes_copied: int = 0
    # products the source does not serve (yet): a run not published, a step not computed
    unpublished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


# The site item's property naming the upstream content it copied (its fingerprint).
FINGERPRINT = "fedeploy:fingerprint"


def registered(catalog: CatalogClient, collection_id: str, item_id: str, fingerprint: str) -> bool:
    """Whether the site's catalog holds the item with this upstream `fingerprint`
    (`fedeploy:fingerprint`): its content is copied and registered, nothing to do."""
    existing = catalog.get_item(collection_id, item_id)
    return bool(existing and existing["properties"].get(FINGERPRINT) == fingerprint)


@dataclass(frozen=True)
class CopyOutcome:
    """What `copy_or_reuse` did: the object in the site's bucket, and the copy made (None
    where an object a run that died before registering it completed was verified and reused)."""

    asset: CopiedAsset
    copy: CopyResult | None


def copy_or_reuse(
    store: ObjectStore,
    key: str,
    source: Callable[[], RangeSource],
    *,
    part_size: int,
    size: int | None,
    expected: Digest | None,
    content_type: str | None,
    fingerprint: str,
    read: Callable[[], None] | None = None,
    max_size: int | None = None,
) -> CopyOutcome:
    """Copy `source()` to `key` (resuming an unfinished upload; the object's metadata
    `fedeploy-fingerprint` set), or, where `key` already carries `fingerprint`, read it back and
    reuse it; checked against `size` and `expected` either way (ChecksumMismatch, StorageError).
    `read` is called once the source is read to its end; a source of more than `max_size`
    bytes is refused (ObjectStore.copy_from)."""
    stored = store.head(key)
    if stored is not None and stored.metadata.get("fedeploy-fingerprint") == fingerprint:
        verified, digests = store.verify(key, expected, size)
        return CopyOutcome(CopiedAsset(key, verified, digests["sha256"]), None)
    result = store.copy_from(
        key,
        source(),
        part_size=part_size,
        expected=expected,
        expected_size=size,
        content_type=content_type,
        metadata={"fedeploy-fingerprint": fingerprint},
        read=read,
        max_size=max_size,
    )
    return CopyOutcome(CopiedAsset(key, result.size, result.sha256), result)


class ProductSink:
    """The site's side of a product copy: skip, copy (or reuse), register; and the report."""

    def __init__(
        self,
        store: ObjectStore,
        catalog: CatalogClient,
        metrics: Metrics,
        kind: str,
        part_size_mib: int,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.metrics = metrics
        self.kind = kind
        self.part_size = part_size_mib * MiB
        self.report = ProductReport()
        self._collections: set[str] = set()

    def failed(self, source: str, name: str, error: BaseException) -> None:
        """Name `name` in the report's `failed` with what `error` says (no traceback)."""
        text = failure_text(error)
        self.report.failed[name] = text
        self.metrics.copy_failures.labels(source).inc()
        log.error("product failed; the next run retries it", extra={"item": name, "error": text})

    def done(self, collection_id: str, item_id: str, fingerprint: str) -> bool:
        """Whether the site's item already holds this content (then counted as skipped)."""
        if registered(self.catalog, collection_id, item_id, fingerprint):
            self.report.skipped += 1
            return True
        return False

    def copy(
        self,
        key: str,
        source: Callable[[], RangeSource],
        *,
        size: int | None,
        expected: Digest | None,
        content_type: str,
        fingerprint: str,
    ) -> CopiedAsset:
        """Copy `source()` to `key` (resuming an unfinished upload), or verify and reuse an
        object a run that died before registering it completed; checked against `size` and
        the upstream's digest `expected` where it publishes one."""
        outcome = copy_or_reuse(
            self.store,
            key,
            source,
            part_size=self.part_size,
            size=size,
            expected=expected,
            content_type=content_type,
            fingerprint=fingerprint,
        )
        if outcome.copy is None:
            self.report.reused += 1
            return outcome.asset
        self.report.copied += 1
        self.report.bytes_copied += outcome.copy.bytes_sent
        if outcome.copy.resumed_from:
            self.report.resumed += 1
        self.metrics.bytes_written.labels(self.kind).inc(outcome.copy.bytes_sent)
        return outcome.asset

    def register(self, collection: dict[str, Any], item: dict[str, Any]) -> None:
        """Upsert `item` into the site's catalog, creating its `collection` the first time."""
        if collection["id"] not in self._collections:
            self.catalog.ensure_collection(collection)
            self._collections.add(collection["id"])
        self.catalog.upsert_items(collection["id"], [item])
        self.report.registered += 1
        self.metrics.items_written.labels(self.kind).inc()
        log.info("product registered", extra={"collection": collection["id"], "item": item["id"]})


def guarded_downloads(
    settings: IngestSettings,
    sources: Sequence[Source | AgencySource],
    http: httpx.Client | None = None,
) -> tuple[download_safety.AddressGuard, httpx.Client]:
    """The address guard of `sources` (their `privateHosts` admitted, the cluster's ranges
    refused) and `http`, or where none is given an HTTP client that connects only where the
    guard allows (redirects are followed per download, each hop through the guard)."""
    guard = download_safety.AddressGuard.build(
        settings.blocked_networks, [host for source in sources for host in source.private_hosts]
    )
    return guard, http or download_safety.guarded_client(
        guard, timeout=settings.http_timeout_seconds
    )


class AgencyRun:
    """What a run over one agency source kind starts with: the sink, the address guard (the
    sources' `privateHosts` admitted) and the guarded HTTP client."""

    kind = ""

    def __init__(
        self,
        settings: IngestSettings,
        store: ObjectStore,
        catalog: CatalogClient,
        metrics: Metrics,
        http: httpx.Client | None = None,
        started: float | None = None,
    ) -> None:
        """`started`: the run's start (time.monotonic(), cli.sentinel's), from which the
        sources' shares of INGEST_RUN_DEADLINE_SECONDS count; None: this run's own start."""
        self.settings = settings
        self.sink = ProductSink(store, catalog, metrics, self.kind, settings.part_size_mib)
        self.guard, self.http = guarded_downloads(settings, self.sources(), http)
        self._started = started

    def share(self, index: int, name: str, sharing: int | None = None) -> Deadline | None:
        """Source `index` of this kind's share of the run's time, from now (run_share)."""
        if self._started is None:
            self._started = time.monotonic()
        return run_share(self.settings, self._started, self.kind, index, name, sharing)

    def spent(self, source: str, budget: Deadline | None, taken: int) -> bool:
        """Whether `budget`, source `source`'s share, has passed after `taken` products: then
        `<source>:budget` is reported and the source takes no more."""
        error = share_spent(budget, taken, "products")
        if error is not None:
            self.sink.failed(source, f"{source}:budget", error)
        return error is not None

    def sources(self) -> list[AgencySource]:
        """This kind's sources in the settings."""
        raise NotImplementedError

    @property
    def report(self) -> ProductReport:
        """What the run did."""
        return self.sink.report
