"""ECMWF open-data forecasts (IFS, AIFS; GRIB2) into the site's bucket and catalog.

For each source (INGEST_ECMWF_SOURCES), each run in its window and each step: ecmwf-opendata's
`Client(source=<url>)` names the GRIB2 file(s) of the run's step and, from the `.index` beside
each, the byte ranges of the messages of the source's parameters (`Client._get_urls` with the
index: the client's own URL pattern and selection rules). The index is fetched here, not by the
client's requests session: through the guarded HTTP client (download_safety: allowed hosts,
redirects only to them, no private or metadata address), bounded in size, each line checked.
The messages are then copied with Range requests into one object (resumable S3 multipart, as
Sentinel copies are), checked message by message (forecast_plan.GribCheck: ECMWF publishes no
digest), and registered as a STAC item with the forecast fields.

A run whose index answers 404 is not published yet (or no longer kept): it is listed in the
report's `unpublished`, not failed. Anything else that goes wrong fails that product alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx

from fedeploy_ingestion import download_safety, forecast_plan
from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.object_store import MiB, RangeSource
from fedeploy_ingestion.product_copy import AgencyRun, ProductReport
from fedeploy_ingestion.settings import AgencySource, EcmwfSource
from fedeploy_ingestion.sharding import owns
from fedeploy_ingestion.upstream import COPY_TIME_FACTOR, COPY_TIME_SLACK, Credentials, HttpAsset

log = logging.getLogger(__name__)

# An index of the 0.25-degree IFS has about 200 KiB; far more is not an index.
MAX_INDEX_BYTES = 16 * MiB


class Unpublished(SourceError):
    """The source has no such file (404): a run not published yet, or no longer kept."""


class _IndexAnswer:
    """What ecmwf-opendata's `get_parts` reads of an index answer: its lines."""

    status_code = 200

    def __init__(self, lines: list[bytes]) -> None:
        self._lines = lines

    def raise_for_status(self) -> None:
        """Errors were raised when the index was fetched."""

    def iter_lines(self) -> Iterator[bytes]:
        """The index's non-empty lines."""
        return iter(self._lines)


class IndexSession:
    """Stands in for the client's requests session: fetches `.index` files through the
    guarded HTTP client (the source's DownloadPolicy, redirects checked, bounded size) and
    keeps each file's entries by offset, for the item's description of its messages."""

    def __init__(
        self,
        http: httpx.Client,
        credentials: Credentials,
        budget: download_safety.Deadline | None = None,
    ) -> None:
        """`budget`: the source's share of the run's time, which ends every index request
        and read (None: none)."""
        self._http = http
        self._credentials = credentials
        self._budget = budget
        self.entries: dict[str, dict[int, dict[str, Any]]] = {}

    def get(self, url: str, **_: Any) -> _IndexAnswer:
        """GET an index; Unpublished for 404, SourceError for any other failure."""
        response = HttpAsset(url, self._http, self._credentials, budget=self._budget)._get(0)
        try:
            if response.status_code == 404:
                raise Unpublished(f"{url} is not published (404)")
            if response.status_code != 200:
                raise SourceError(f"GET {url} answered {response.status_code}")
            within = download_safety.RateFloor(0, f"GET {url}")
            within.deadline = self._budget
            body = b"".join(
                within.chunks(
                    download_safety.bounded_body(response, MAX_INDEX_BYTES, f"GET {url}", True, MiB)
                )
            )
        except httpx.HTTPError as error:
            raise SourceError(f"GET {url} failed: {error}") from error
        finally:
            response.close()
        lines = [line for line in body.splitlines() if line.strip()]
        by_offset = {}
        data_url = url.rsplit(".", 1)[0] + ".grib2"
        for number, line in enumerate(lines, 1):
            entry = forecast_plan.index_entry(line, url, number)
            if entry["_offset"] in by_offset:
                raise SourceError(
                    f"index {url} line {number}: a second entry at byte {entry['_offset']}"
                )
            by_offset[entry["_offset"]] = entry
        end = 0
        for offset in sorted(by_offset):  # every entry of the file, not only those selected
            if offset < end:
                raise SourceError(f"index {url}: the entry at byte {offset} overlaps another")
            end = offset + by_offset[offset]["_length"]
        self.entries[data_url] = by_offset
        return _IndexAnswer(lines)


class ProductRanges(RangeSource):
    """The product's messages, read with one Range request per contiguous span, in order;
    a resumed copy starts inside the span that holds its offset."""

    def __init__(
        self,
        chosen: list[forecast_plan.Message],
        http: httpx.Client,
        credentials: Credentials,
        min_rate: float = 0.0,
        budget: download_safety.Deadline | None = None,
        headers_timeout: float | None = None,
    ) -> None:
        """`min_rate` (bytes/s): the floor a read's bytes must keep, and with it a deadline for
        the copy (twice the bytes' time at it plus COPY_TIME_SLACK), as a Sentinel copy's
        (HttpAsset); 0: neither. `budget`: the source's share of the run's time, which ends
        every request and read of the copy; None: none. `headers_timeout`: seconds each Range
        request's answer headers may take (HttpAsset's); None: only the read timeout."""
        self._messages = chosen
        self._spans = forecast_plan.spans(chosen)
        self._http = http
        self._credentials = credentials
        self._min_rate = min_rate
        self._budget = budget
        self._headers_timeout = headers_timeout
        self.size = sum(span.length for span in self._spans)

    def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
        """(chunks from `offset`, `offset`, the product's size)."""
        check = forecast_plan.GribCheck(self._messages, offset)
        identity = forecast_plan.GribIdentity(self._messages, offset)
        what = f"reading {self._spans[0].url}" if self._spans else "reading the product"
        floor = download_safety.RateFloor(self._min_rate, what)
        floor.deadline = self._budget
        if self._min_rate:
            seconds = COPY_TIME_FACTOR * (self.size - offset) / self._min_rate + COPY_TIME_SLACK
            floor.deadline = download_safety.Deadline(seconds, what).earliest(self._budget)
        chunks = self._read(offset, floor)
        return identity.feed(check.feed(chunks, offset), offset), offset, self.size

    def _read(self, offset: int, floor: download_safety.RateFloor) -> Iterator[bytes]:
        position = 0
        for span in self._spans:
            if position + span.length <= offset:
                position += span.length
                continue
            skip = max(offset - position, 0)
            yield from self._span(span, skip, floor)
            position += span.length

    def _span(
        self, span: forecast_plan.Span, skip: int, floor: download_safety.RateFloor
    ) -> Iterator[bytes]:
        """The span's bytes from `skip` on, by one Range request, counted against `floor`
        and cut at its deadline (the request's headers too)."""
        first, last = span.offset + skip, span.offset + span.length - 1
        asset = HttpAsset(
            span.url,
            self._http,
            self._credentials,
            headers_timeout=self._headers_timeout,
            budget=floor.deadline,
        )
        response = asset._get(first, last)
        what = f"GET {span.url} bytes {first}-{last}"
        try:
            if response.status_code == 404:
                raise Unpublished(f"{span.url} is not published (404)")
            if response.status_code != 206:
                raise SourceError(
                    f"{what} answered {response.status_code}, not 206: the messages are read "
                    "by byte ranges from the index, which this host does not serve"
                )
            served = response.headers.get("content-range", "")
            try:
                start_end, total = served.removeprefix("bytes ").split("/", 1)
                start, end = (int(n) for n in start_end.split("-", 1))
            except ValueError:
                raise SourceError(f"{what} answered Content-Range {served!r}") from None
            if (start, end) != (first, last):
                raise SourceError(
                    f"{what} answered Content-Range {served!r}: the index lies outside the "
                    f"file ({total} bytes) or the host served other bytes"
                )
            yield from floor.chunks(
                download_safety.bounded_body(response, last - first + 1, what, False, MiB)
            )
        except httpx.HTTPError as error:
            raise SourceError(f"{what} failed midway: {error}") from error
        finally:
            response.close()


class EcmwfRun(AgencyRun):
    """One pass over INGEST_ECMWF_SOURCES: every run of each window, every step."""

    kind = "ecmwf"

    def sources(self) -> list[AgencySource]:
        """INGEST_ECMWF_SOURCES."""
        return list(self.settings.ecmwf_sources)

    def run(self, now: datetime | None = None) -> ProductReport:
        """Copy every product of every source; failures are reported, not raised."""
        now = now or datetime.now(UTC)
        for index, source in enumerate(self.settings.ecmwf_sources):
            credentials = Credentials(source, None, None, self.http, self.guard)  # type: ignore[arg-type]
            budget = self.share(index, source.name)
            taken = 0
            for run, step in ((r, s) for r in source.runs(now) for s in source.steps):
                if self.spent(source.name, budget, taken):
                    break
                taken += 1
                product = forecast_plan.Product(
                    source.model,
                    source.resol,
                    source.stream,
                    source.type,
                    run,
                    step,
                    tuple(sorted(set(source.params))),
                    source.levtype,
                    tuple(sorted(set(source.levelist))),
                )
                name = f"{product.collection_id}/{product.item_id}"
                self.report.found += 1
                if not owns(name, self.settings.shard_index, self.settings.shard_count):
                    self.report.other_shards += 1
                    continue
                try:
                    self._product(source, product, credentials, now, budget)
                except Unpublished as missing:
                    self.report.unpublished.append(name)
                    log.info("not published", extra={"item": name, "reason": str(missing)})
                except Exception as error:  # noqa: BLE001 - one product fails alone
                    self.sink.failed(source.name, name, error)
        return self.report

    def _product(
        self,
        source: EcmwfSource,
        product: forecast_plan.Product,
        credentials: Credentials,
        now: datetime,
        budget: download_safety.Deadline | None = None,
    ) -> None:
        session = IndexSession(self.http, credentials, budget)
        chosen = forecast_plan.messages(_parts(source, product, session), session.entries)
        size = sum(message.length for message in chosen)
        if size > source.max_product_mib * MiB:
            raise SourceError(
                f"the product's messages have {size} bytes together, above the source's "
                f"maxProductMiB {source.max_product_mib}"
            )
        fingerprint = forecast_plan.fingerprint(product, chosen)
        if self.sink.done(product.collection_id, product.item_id, fingerprint):
            return
        copy = self.sink.copy(
            product.key,
            lambda: ProductRanges(
                chosen,
                self.http,
                credentials,
                self.settings.copy_min_rate_kib_s * 1024,
                budget,
                2 * self.settings.http_timeout_seconds,
            ),
            size=size,
            expected=None,  # ECMWF publishes no digest: GribCheck checks each message
            content_type=forecast_plan.GRIB2,
            fingerprint=fingerprint,
        )
        item = forecast_plan.site_item(
            product,
            chosen,
            copy,
            bucket=self.sink.store.bucket,
            site=self.settings.require("site"),
            item_fingerprint=fingerprint,
            area=source.bbox,
            now=now,
        )
        self.sink.register(forecast_plan.site_collection(product, source.url), item)


def _parts(
    source: EcmwfSource, product: forecast_plan.Product, session: IndexSession
) -> list[tuple[str, tuple[tuple[int, int], ...]]]:
    """ecmwf-opendata's (url, ((offset, length), ...)) of the product, its index read through
    `session`; SourceError when the index lists none of the product's messages."""
    from ecmwf.opendata import Client

    # One try (the guarded client's errors are the product's); no requests session of its own.
    client = Client(
        source=source.url.rstrip("/"), model=product.model, resol=product.resol, maximum_retries=1
    )
    client.session = session
    try:
        result = client._get_urls(product.request(), use_index=True)
    except ValueError as error:  # "Cannot find index entries matching ..."
        raise SourceError(f"{product.item_id}: {error}") from None
    return [(url, tuple(ranges)) for url, ranges in result.urls]
