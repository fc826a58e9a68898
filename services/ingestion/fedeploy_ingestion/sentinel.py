"""One run over the configured Sentinel sources: search, copy the chosen assets, register.

Idempotent: an item whose site copy carries the upstream fingerprint is skipped; an object
completed by a run that died before registering it is verified and reused; an unfinished
multipart upload is resumed. Work is partitioned over indexed Job workers by item.

Each item is handled inside a boundary that catches any exception: a failing item is named in
the report's `failed` with its message, and the run goes on with the next one. Search results
are streamed page by page (never gathered in a list); a search that fails midway fails its
source, after the items already read were handled. A source whose items carry none of the
requested assets fails too (`<source>:assets`, naming the assets the items do have): the run
would otherwise succeed having copied nothing.

Whether an item is registered with its fingerprint is asked of the site's catalog once per
search page (one search by ids, _PageLookup), not once per item; an item the answer does not
settle (the search failed, refused, unreadable or paged short) is asked for alone. Once the
catalog has refused the search (a 4xx other than 429, or an answer that is not a page of the
items asked for), the rest of the run asks each item alone without searching again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from fedeploy_ingestion import sentinel_plan, stac_ids
from fedeploy_ingestion.catalog import (
    MAX_IDS_PER_SEARCH,
    CatalogClient,
    ItemsRefused,
    SearchRefused,
)
from fedeploy_ingestion.download_safety import Deadline, bounded_body
from fedeploy_ingestion.errors import CatalogError, SourceError, failure_text
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import AssetTooLarge, MiB, ObjectStore
from fedeploy_ingestion.product_copy import (
    FINGERPRINT,
    copy_or_reuse,
    guarded_downloads,
    registered,
    run_share,
    share_spent,
)
from fedeploy_ingestion.settings import AgencySource, IngestSettings, Source
from fedeploy_ingestion.sharding import owns
from fedeploy_ingestion.stac_client import MAX_PAGE_BYTES, Paging
from fedeploy_ingestion.stac_documents import collection as minimal_collection
from fedeploy_ingestion.upstream import Credentials, HttpAsset, search

log = logging.getLogger(__name__)

GiB = 1024 * MiB
# Items reading at once: one item's reads, digests and catalog calls overlap another's part
# uploads (their parts share the store's ObjectStore.copy_budget). An item whose last asset is
# read gives its slot to the next item while its last parts upload and it is registered, so the
# next item's catalog and S3 round trips overlap them and the parts never drain between items.
ITEMS_IN_FLIGHT = 2
# Items copied are registered together, one bulk upsert per collection: once this many wait,
# once the oldest has waited REGISTER_WAIT_SECONDS (a bound: a registering thread of the source
# wakes when it is due, whatever the item threads and the search are doing), and when the
# source's items end. pgstac's cost is per request (its partition check and staging table:
# about 19 ms of PostgreSQL for one item, 20 ms for three), and so is the API's.
REGISTER_BATCH = 16
REGISTER_WAIT_SECONDS = 10.0


@dataclass
class SentinelReport:
    """What a run did, printed as JSON by the CLI."""

    found: int = 0
    other_shards: int = 0
    skipped: int = 0
    registered: int = 0
    assets_copied: int = 0
    assets_reused: int = 0
    assets_resumed: int = 0
    bytes_copied: int = 0
    missing_assets: dict[str, list[str]] = field(default_factory=dict)
    # source -> what its server matched (numberMatched) and never served
    incomplete: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class SentinelRun:
    """Copies from each source into the site's bucket and registers in the site's catalog."""

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
        sources' shares of INGEST_RUN_DEADLINE_SECONDS count; None: run()'s own start."""
        self.settings = settings
        self._started = started
        self.store = store
        self.catalog = catalog
        self.metrics = metrics
        # Every connection passes the guard (download_safety): no loopback, private, link-local
        # or cluster address, whatever a name resolves to; redirects are followed per download.
        self.guard, self.http = guarded_downloads(settings, self._guarded_sources(), http)
        self.report = SentinelReport()
        self._collections: set[str] = set()
        self._lock = threading.Lock()  # the report's counters, updated by the item threads
        self._catalog_lock = threading.Lock()  # catalog writes, one at a time
        # Site items copied and not registered yet (_register), oldest first, and those whose
        # bulk upsert is being sent (_flush): an item served again finds either.
        self._pending: list[_Registration] = []
        self._writing: list[_Registration] = []
        self._pending_lock = threading.Lock()
        self._pending_changed = threading.Condition(self._pending_lock)
        self._ending = False  # the source's items have ended: register each at once
        self._lookup_failed = False  # a page's lookup failed once (logged once a run)
        self._search_refused = False  # the catalog refused a search by ids: no more this run
        self._timer_stopped = True  # the registering thread of the source is to end
        # The source being copied's share of the run's time (None: no INGEST_RUN_DEADLINE_SECONDS).
        self._budget: Deadline | None = None

    def _guarded_sources(self) -> Sequence[Source | AgencySource]:
        """The sources whose `privateHosts` the address guard admits: INGEST_SOURCES."""
        return self.settings.sources

    def run(self, now: datetime | None = None) -> SentinelReport:
        """Process every source; per-item and per-source failures are reported, not raised."""
        now = now or datetime.now(UTC)
        started = time.monotonic() if self._started is None else self._started
        for index, source in enumerate(self.settings.sources):
            self._budget = run_share(self.settings, started, "sentinel", index, source.name)
            try:
                self._source(source, now)
            except Exception as error:  # noqa: BLE001 - one source fails alone
                self._failed(source, f"{source.name}:search", error, "source failed")
            finally:
                self._budget = None
        return self.report

    def _spent(self, source: Source, taken: int) -> bool:
        """Whether the source's share has passed after `taken` items: then `<source>:budget`
        is reported (its in-flight copies failed at it too) and the next source gets its turn."""
        error = share_spent(self._budget, taken, "items")
        if error is not None:
            self._failed(
                source,
                f"{source.name}:budget",
                error,
                "source stopped at its share of the run's time",
            )
        return error is not None

    def _failed(self, source: Source, name: str, error: BaseException, message: str) -> None:
        text = failure_text(error)
        with self._lock:
            self.report.failed[name] = text
        self.metrics.copy_failures.labels(source.name).inc()
        log.error(message, extra={"source": source.name, "item": name, "error": text})

    def _source(self, source: Source, now: datetime) -> None:
        s = self.settings
        credentials = Credentials(
            source,
            s.source_username.get_secret_value() if s.source_username else None,
            s.source_password.get_secret_value() if s.source_password else None,
            self.http,
            self.guard,
        )
        # Searches of a token-protected source (Copernicus) are public; Basic goes everywhere.
        headers = credentials.headers() if source.token_url is None else {}
        available: Counter[str] = Counter()
        found = with_assets = 0
        in_flight = _InFlight(ITEMS_IN_FLIGHT)
        paging = _PageLookup(
            f"source {source.name}",
            s.search_max_pages,
            look_up=functools.partial(self._look_up, in_flight),
        )
        items = search(
            source,
            source.search_datetime(now),
            headers,
            credentials.policy,
            timeout=s.http_timeout_seconds,
            paging=paging,
        )
        with self._registering():
            try:
                for item in items:  # streamed: one page in memory at a time
                    if self._spent(source, found):
                        break
                    self._count(found=1)
                    found += 1
                    name = _item_name(item)
                    try:
                        keys = sorted(str(k) for k in (item.get("assets") or {}))
                        available.update(keys)
                        if set(keys) & set(source.assets):
                            with_assets += 1
                        if not owns(name, s.shard_index, s.shard_count):
                            self._count(other_shards=1)
                            continue
                    except Exception as error:  # noqa: BLE001 - one item fails alone
                        self._failed(source, name, error, "item failed; the next run retries it")
                        continue
                    work = functools.partial(
                        self._guarded, source, item, name, credentials, now, paging.answers
                    )
                    in_flight.submit(name, work)
            except BaseException:
                # A stop (SIGTERM: the CLI's Stopped) or a failed search: the items copied so far
                # are registered now, before the wait for the copies in flight (which a stop's
                # grace period may not outlast); those are registered at the end of the wait,
                # or, where a second stop cuts it, each as it ends (_registering).
                self._flush()
                raise
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
                in_flight.close()  # the items read so far are handled, whatever happened
        shortfall = paging.shortfall()
        if shortfall is not None:
            self.report.incomplete[source.name] = shortfall
            log.warning(
                "search ended short of what it matched",
                extra={"source": source.name, "reason": shortfall},
            )
        if found and not with_assets:
            reason = (
                f"none of the {found} items found has any of the requested assets "
                f"{', '.join(source.assets)}; their assets are: "
                f"{', '.join(sorted(available)) or '(none)'}; check the source's `assets`"
            )
            self.report.failed[f"{source.name}:assets"] = reason
            log.error("no requested asset in any item", extra={"source": source.name})

    @contextlib.contextmanager
    def _registering(self) -> Iterator[None]:
        """While a source's items are copied: its items are registered in batches (_register),
        the oldest waiting at most REGISTER_WAIT_SECONDS (a thread wakes when it is due). On
        leaving, whatever happened (SIGTERM: the CLI's Stopped, cutting a wait), the items
        waiting are registered, and an item that ends after that registers at once, alone."""
        with self._pending_changed:
            self._ending = False
            self._timer_stopped = False
        timer = threading.Thread(
            target=self._register_when_due, name="sentinel-register", daemon=True
        )
        timer.start()
        try:
            yield
        finally:
            with self._pending_changed:
                self._ending = True
                self._timer_stopped = True
                self._pending_changed.notify_all()
            try:
                self._flush()
            finally:
                timer.join()

    def _register_when_due(self) -> None:
        """The source's registering thread: sleeps until the oldest item waiting has waited
        REGISTER_WAIT_SECONDS (or until one waits), then registers those waiting."""
        while True:
            with self._pending_changed:
                while True:
                    if self._timer_stopped:
                        return
                    left = None
                    if self._pending:
                        left = self._pending[0].copied + REGISTER_WAIT_SECONDS - time.monotonic()
                        if left <= 0:
                            break
                    self._pending_changed.wait(left)
            try:
                self._flush()
            except Exception as error:  # noqa: BLE001 - _flush reports items; never stop here
                log.error(
                    "registering the items waiting failed", extra={"error": failure_text(error)}
                )

    def _guarded(
        self,
        source: Source,
        item: dict[str, Any],
        name: str,
        credentials: Credentials,
        now: datetime,
        answers: _Answers | None,
        read: Callable[[], None],
    ) -> None:
        """One item on an item thread, inside the boundary: a failure is reported, not raised.
        `read` is called once the item's last asset is read (its slot goes to the next item);
        `answers`: what the catalog said of its search page's items (_look_up)."""
        try:
            self._item(source, item, credentials, now, read, answers)
        except Exception as error:  # noqa: BLE001 - one item fails alone
            self._failed(source, name, error, "item failed; the next run retries it")

    def _count(self, **added: int) -> None:
        with self._lock:
            for name, value in added.items():
                setattr(self.report, name, getattr(self.report, name) + value)

    def _item(
        self,
        source: Source,
        item: dict[str, Any],
        credentials: Credentials,
        now: datetime,
        read: Callable[[], None] | None = None,
        answers: _Answers | None = None,
    ) -> None:
        # Untrusted ids and hrefs are checked before any request is made for the item.
        collection_id = stac_ids.check_id("upstream collection id", item.get("collection"))
        item_id = stac_ids.check_id("upstream item id", item.get("id"))
        assets, missing = sentinel_plan.chosen_assets(item, source.assets)
        if missing:
            with self._lock:
                self.report.missing_assets[f"{collection_id}/{item_id}"] = missing
            log.warning(
                "requested assets missing from the item",
                extra={
                    "item": f"{collection_id}/{item_id}",
                    "missing": missing,
                    "item_assets": sorted(str(k) for k in item.get("assets") or {}),
                },
            )
        if not assets:
            return
        for asset in assets.values():
            credentials.policy.check(sentinel_plan.download_href(asset))
        fingerprint = sentinel_plan.fingerprint(item, assets)
        if self._awaits_registration(collection_id, item_id, fingerprint) or self._holds(
            answers, collection_id, item_id, fingerprint
        ):
            self._count(skipped=1)
            return
        self._ensure_collection(source, collection_id)
        last = list(assets)[-1]
        copies = {
            name: self._asset(
                collection_id,
                item_id,
                name,
                asset,
                credentials,
                fingerprint,
                read if name == last else None,
            )
            for name, asset in assets.items()
        }
        upstream_url = sentinel_plan.upstream_link(
            item, source.url.rstrip("/") + stac_ids.item_path(collection_id, item_id)
        )
        document = sentinel_plan.site_item(
            item,
            upstream_url,
            copies,
            bucket=self.store.bucket,
            site=self.settings.require("site"),
            item_fingerprint=fingerprint,
            now=now,
        )
        self._register(
            _Registration(
                source,
                collection_id,
                item_id,
                fingerprint,
                document,
                sorted(copies),
                time.monotonic(),
            )
        )

    def _holds(
        self, answers: _Answers | None, collection_id: str, item_id: str, fingerprint: str
    ) -> bool:
        """Whether the site's catalog holds the item with this `fingerprint`: as its search
        page's lookup answered, or where that did not settle it, as a GET of it answers."""
        held = answers.take(collection_id, item_id) if answers is not None else _UNSETTLED
        if held is _UNSETTLED:
            return registered(self.catalog, collection_id, item_id, fingerprint)
        return held == fingerprint

    def _look_up(self, in_flight: _InFlight, features: list[Any]) -> _Answers:
        """What the site's catalog holds of a search page's items, asked in one search by ids
        per collection (at most MAX_IDS_PER_SEARCH ids each), on the search's thread before
        the page's items are handed out. An item this run still holds (copying, waiting to be
        registered or being registered: a search that serves it again) is not asked: the
        catalog's answer would not show its registration to come, so a GET asks once it is
        decided. What a failed, short or unreadable answer leaves unsettled is asked by GET;
        once the catalog has refused a search (SearchRefused), every later page's items are."""
        answers = _Answers()
        if self._search_refused:
            return answers
        wanted: dict[str, list[str]] = {}
        for feature in features:
            if not isinstance(feature, dict):
                continue
            try:
                collection_id = stac_ids.check_id("collection id", feature.get("collection"))
                item_id = stac_ids.check_id("item id", feature.get("id"))
            except Exception:  # noqa: BLE001 - its item fails alone when it is handled
                continue
            name = f"{collection_id}/{item_id}"
            if (
                not owns(name, self.settings.shard_index, self.settings.shard_count)
                or in_flight.running(name)
                or self._holding(collection_id, item_id)
            ):
                continue  # another worker's, or settled when it is decided
            ids = wanted.setdefault(collection_id, [])
            if item_id not in ids:
                ids.append(item_id)
        for collection_id, ids in wanted.items():
            for start in range(0, len(ids), MAX_IDS_PER_SEARCH):
                if self._search_refused:
                    return answers
                chunk = ids[start : start + MAX_IDS_PER_SEARCH]
                try:
                    found = self.catalog.find(collection_id, chunk, [FINGERPRINT])
                except SearchRefused as error:
                    self._search_refused = True
                    log.warning(
                        "looking up a search page's items in the catalog was refused (%s); "
                        "for the rest of this run each item is looked up alone, without "
                        "searching",
                        failure_text(error),
                        extra={"collection": collection_id},
                    )
                    continue
                except Exception as error:  # noqa: BLE001 - each item is asked alone instead
                    self._lookup_unsettled(collection_id, f"failed: {failure_text(error)}")
                    continue
                if not found.complete:
                    self._lookup_unsettled(
                        collection_id,
                        "was answered short (or with a count that is not an integer): the items "
                        "it left out",
                    )
                for item_id in chunk:
                    held = found.properties.get(item_id)
                    if held is None:
                        if found.complete:
                            answers.add(collection_id, item_id, None)
                    elif isinstance(held.get(FINGERPRINT), str):
                        answers.add(collection_id, item_id, held[FINGERPRINT])
                    # else: held without a fingerprint the answer shows (fields): a GET asks
        return answers

    def _lookup_unsettled(self, collection_id: str, reason: str) -> None:
        """A page's lookup left items unsettled: logged once a run (each is asked by GET)."""
        with self._lock:
            first, self._lookup_failed = not self._lookup_failed, True
        (log.warning if first else log.debug)(
            "looking up a search page's items in the catalog "
            + reason
            + "; each such item is looked up alone",
            extra={"collection": collection_id},
        )

    def _holding(self, collection_id: str, item_id: str) -> bool:
        """Whether an item copied by this run waits to be registered or is being registered,
        whatever its fingerprint."""
        with self._pending_lock:
            return any(
                (p.collection_id, p.item_id) == (collection_id, item_id)
                for p in (*self._pending, *self._writing)
            )

    def _awaits_registration(self, collection_id: str, item_id: str, fingerprint: str) -> bool:
        """Whether this content of the item is copied and waits to be registered, or is being
        registered (a search that serves an item twice: the second finds it here, as it would
        in the catalog once its bulk upsert has returned)."""
        key = (collection_id, item_id, fingerprint)
        with self._pending_lock:
            return any(
                (p.collection_id, p.item_id, p.fingerprint) == key
                for p in (*self._pending, *self._writing)
            )

    def _register(self, registration: _Registration) -> None:
        """Register a copied item with the ones waiting (REGISTER_BATCH, REGISTER_WAIT_SECONDS);
        the source's end registers the rest. Until then a run that dies leaves the objects
        with their fingerprint, and the next run verifies, reuses and registers them."""
        with self._pending_changed:
            self._pending.append(registration)
            if len(self._pending) == 1:
                self._pending_changed.notify_all()  # the registering thread's wait starts
            due = (
                self._ending
                or len(self._pending) >= REGISTER_BATCH
                or time.monotonic() - self._pending[0].copied >= REGISTER_WAIT_SECONDS
            )
        if due:
            self._flush()

    def _flush(self) -> None:
        """Register every item waiting: one bulk upsert per collection. Items the catalog lists
        as refused in its answer (ItemsRefused) fail alone, named with its reason, the others
        of the request stored; where the whole request fails, each item is sent alone, so that
        one the catalog refuses fails alone (reported, not raised)."""
        # One catalog write at a time: the loopback pgstac answered 500 to two bulk_items at once.
        with self._catalog_lock:
            with self._pending_lock:
                waiting, self._pending = self._pending, []
                self._writing = waiting  # still found by an item served again until written
            try:
                collections: dict[str, list[_Registration]] = {}
                for registration in waiting:
                    collections.setdefault(registration.collection_id, []).append(registration)
                for collection_id, batch in collections.items():
                    self._upsert(collection_id, batch)
            finally:
                with self._pending_lock:
                    self._writing = []

    def _upsert(self, collection_id: str, batch: list[_Registration]) -> None:
        """One collection's batch (_flush), its failures reported."""
        try:
            self.catalog.upsert_items(collection_id, [r.document for r in batch])
        except ItemsRefused as refused:
            for registration in batch:
                if registration.item_id in refused.refused:
                    error = CatalogError(refused.reason(registration.item_id))
                    self._failed(registration.source, registration.name, error, _REGISTER_FAILED)
                else:
                    self._registered(registration)
            return
        except Exception as error:  # noqa: BLE001 - each item alone, below
            if len(batch) == 1:
                self._failed(batch[0].source, batch[0].name, error, _REGISTER_FAILED)
                return
            for registration in batch:
                self._upsert(collection_id, [registration])
            return
        for registration in batch:
            self._registered(registration)

    def _registered(self, registration: _Registration) -> None:
        self._count(registered=1)
        self.metrics.items_written.labels("sentinel").inc()
        log.info(
            "item registered",
            extra={
                "collection": registration.collection_id,
                "item": registration.item_id,
                "assets": registration.assets,
            },
        )

    def _asset(
        self,
        collection_id: str,
        item_id: str,
        name: str,
        asset: dict[str, Any],
        credentials: Credentials,
        fingerprint: str,
        read: Callable[[], None] | None = None,
    ) -> sentinel_plan.CopiedAsset:
        href = sentinel_plan.download_href(asset)
        key = sentinel_plan.object_key(collection_id, item_id, name, href, asset.get("type"))
        expected, expected_size, problems = sentinel_plan.expected_integrity(asset)
        for problem in problems:
            log.warning(
                "unusable integrity field; the copy is checked by what remains",
                extra={"item": item_id, "asset": name, "error": problem},
            )
        s = self.settings
        limit = int(s.max_asset_gib * GiB)
        where = f"asset {name} of {collection_id}/{item_id}"
        if expected_size is not None and expected_size > limit:
            # Before any request or buffer: the part size (and its memory) grows with the size.
            raise AssetTooLarge(
                f"{where} declares file:size {expected_size} bytes "
                f"({expected_size / GiB:.1f} GiB), above INGEST_MAX_ASSET_GIB "
                f"({s.max_asset_gib:g} GiB): not copied"
            )
        try:
            outcome = copy_or_reuse(
                self.store,
                key,
                lambda: HttpAsset(
                    href,
                    self.http,
                    credentials,
                    s.copy_min_rate_kib_s * 1024,
                    headers_timeout=2 * s.http_timeout_seconds,
                    budget=self._budget,
                ),
                part_size=s.part_size_mib * MiB,
                size=expected_size,
                expected=expected,
                content_type=asset.get("type"),
                fingerprint=fingerprint,
                read=read,
                max_size=limit,
            )
        except AssetTooLarge as error:  # a Content-Length above it, no file:size
            raise AssetTooLarge(f"{where}: {error} (INGEST_MAX_ASSET_GIB)") from None
        if outcome.copy is None:  # completed by a run that died before registering the item
            self._count(assets_reused=1)
            return outcome.asset
        self._count(
            assets_copied=1,
            bytes_copied=outcome.copy.bytes_sent,
            assets_resumed=1 if outcome.copy.resumed_from else 0,
        )
        self.metrics.bytes_written.labels("sentinel").inc(outcome.copy.bytes_sent)
        return outcome.asset

    def _ensure_collection(self, source: Source, collection_id: str) -> None:
        """Create the item's collection in the site's catalog the first time it is met, from
        the upstream's document (read outside the catalog lock: a slow upstream holds no
        registration) or, where that cannot be read, a minimal one."""
        with self._catalog_lock:
            if collection_id in self._collections:
                return
        document = self._upstream_collection(source, collection_id)
        with self._catalog_lock:  # once per collection, whichever item thread comes first
            if collection_id in self._collections:
                return
            self.catalog.ensure_collection(
                document
                or minimal_collection(collection_id, f"Copies of {collection_id} from {source.url}")
            )
            self._collections.add(collection_id)

    def _upstream_collection(self, source: Source, collection_id: str) -> dict[str, Any] | None:
        """The site's copy of the upstream collection document, or None (logged) where it
        cannot be read: read as a search page is, at most MAX_PAGE_BYTES once decoded, and
        within twice INGEST_HTTP_TIMEOUT_SECONDS in all (connect, headers and body)."""
        url = source.url.rstrip("/") + stac_ids.collection_path(collection_id)
        timeout = 2 * self.settings.http_timeout_seconds
        try:
            with Deadline(timeout, f"GET {url}").applied():
                request = self.http.build_request(
                    "GET", url, headers={"Accept-Encoding": "gzip, deflate"}
                )
                answer = self.http.send(request, stream=True)
                try:
                    if answer.status_code != 200:
                        return None
                    body = b"".join(bounded_body(answer, MAX_PAGE_BYTES, f"GET {url}"))
                finally:
                    answer.close()
            return sentinel_plan.site_collection(json.loads(body), collection_id)
        except (httpx.HTTPError, SourceError, ValueError) as error:  # ValueError: not JSON
            log.warning(
                "upstream collection unavailable; a minimal one is created",
                extra={"collection": collection_id, "error": failure_text(error)},
            )
            return None


_REGISTER_FAILED = "item copied, its registration failed; the next run reuses and registers it"
_UNSETTLED = object()  # _Answers.take: the lookup did not settle the item


class _Answers:
    """What the site's catalog held of one search page's items when it was asked (_look_up):
    (collection, item id) -> the fingerprint it holds, or None where it holds no such item.
    Each answer is taken once: an item served twice in a page asks by GET the second time,
    after its first copy is registered."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], str | None] = {}
        self._lock = threading.Lock()

    def add(self, collection_id: str, item_id: str, fingerprint: str | None) -> None:
        self._held[(collection_id, item_id)] = fingerprint

    def take(self, collection_id: str, item_id: str) -> object:
        """The item's fingerprint in the catalog, None, or _UNSETTLED."""
        with self._lock:
            return self._held.pop((collection_id, item_id), _UNSETTLED)


@dataclass
class _PageLookup(Paging):
    """The search's paging checks, and as each page comes (before its items are handed
    out), its items looked up in the site's catalog together (`look_up`): `answers`."""

    look_up: Callable[[list[Any]], _Answers] | None = None
    answers: _Answers | None = None

    def page(self, page: dict[str, Any]) -> list[Any]:
        features = super().page(page)
        self.answers = self.look_up(features) if self.look_up is not None else None
        return features


@dataclass(frozen=True)
class _Registration:
    """A copied item's site document, waiting to be registered."""

    source: Source
    collection_id: str
    item_id: str
    fingerprint: str
    document: dict[str, Any]
    assets: list[str]
    copied: float  # time.monotonic() when it was copied

    @property
    def name(self) -> str:
        return f"{self.collection_id}/{self.item_id}"


class _InFlight:
    """Runs items on item threads, `size` reading at once; submit waits while `size` hold a
    slot, so the search is still read one page at a time. An item gives its slot back when
    it calls the `read` it is given (its last asset read: its last parts, completion and
    registration overlap the next item) or ends, whichever comes first; at most `size` more
    finish meanwhile. An item whose name is still running waits for that one first: a search
    that serves an item twice copies it once (the second finds it waiting to be registered,
    being registered, or registered).
    """

    def __init__(self, size: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2 * size, thread_name_prefix="sentinel-item")
        self._slots = threading.Semaphore(size)
        # Item name -> its copy's future; written by submit and the item threads' callbacks.
        self._running: dict[str, Future[None]] = {}
        self._running_lock = threading.Lock()

    def submit(self, name: str, work: Callable[[Callable[[], None]], None]) -> None:
        """Run `work(read)` (which raises nothing: it reports its own failures) on an item
        thread; `read()` gives its slot to the next item early."""
        with self._running_lock:
            earlier = self._running.get(name)
        if earlier is not None:
            wait_for([earlier])
        self._slots.acquire()
        given = threading.Lock()
        held = [True]

        def release() -> None:
            with given:
                if held[0]:
                    held[0] = False
                    self._slots.release()

        future = self._pool.submit(work, release)
        with self._running_lock:
            self._running[name] = future

        def done(finished: Future[None]) -> None:
            # One step under the lock: the next copy of the same name, stored between the
            # look and the removal, would otherwise be removed and a third run beside it.
            with self._running_lock:
                if self._running.get(name) is finished:
                    del self._running[name]
            release()

        future.add_done_callback(done)

    def running(self, name: str) -> bool:
        """Whether an item of this name was submitted and has not ended."""
        with self._running_lock:
            return name in self._running

    def close(self) -> None:
        """Wait for every item submitted."""
        self._pool.shutdown(wait=True)


def _item_name(item: object) -> str:
    """`<collection>/<id>` of an upstream item, whatever it holds (for reports and sharding)."""
    if not isinstance(item, dict):
        return f"(not an item: {type(item).__name__})"
    return f"{item.get('collection')}/{item.get('id')}"
