"""The upstream side of Sentinel copies: searching a STAC API and downloading its assets.

Credentials come from INGEST_SOURCE_USERNAME / INGEST_SOURCE_PASSWORD (a Kubernetes Secret).
They are exchanged for a bearer token at the source's `tokenUrl` (Copernicus Data Space uses
OpenID Connect), or sent as HTTP Basic; they are never logged. Every href, redirect and search
page passes the source's `DownloadPolicy` (download_safety): credentials reach the source's own
hosts only, and no request reaches a forbidden address.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from fedeploy_ingestion.download_safety import (
    IDENTITY,
    MAX_REDIRECTS,
    AddressGuard,
    Deadline,
    DirectBody,
    DownloadPolicy,
    RateFloor,
    UnsafeDownload,
    bounded_body,
    shown,
)
from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.object_store import RangeSource
from fedeploy_ingestion.settings import Source
from fedeploy_ingestion.stac_client import Paging

# A token endpoint's answer larger than this once decoded fails the source (a token is ~2 KB).
TOKEN_MAX_BYTES = 1024 * 1024


class Credentials:
    """Authentication for one source: none, HTTP Basic, or an OpenID Connect password grant."""

    def __init__(
        self,
        source: Source,
        username: str | None,
        password: str | None,
        http: httpx.Client,
        guard: AddressGuard | None = None,
    ) -> None:
        self.source = source
        self.policy = DownloadPolicy.for_source(source, guard)
        self._username = username
        self._password = password
        self._http = http
        self._token: str | None = None
        self._expires = 0.0
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the secret parts
        return f"Credentials(source={self.source.name!r}, user={'set' if self._username else None})"

    def headers_for(self, url: httpx.URL) -> dict[str, str]:
        """Headers for a request to `url`: the credentials when its host is the source's own."""
        return self.headers() if self.policy.trusted(url) else {}

    def headers(self) -> dict[str, str]:
        """Headers for a download request to one of the source's hosts."""
        if not self._username or not self._password:
            return {}
        if self.source.token_url is None:
            import base64

            pair = f"{self._username}:{self._password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        with self._token_lock:  # the copies of several items share one token
            if self._token is None or time.monotonic() > self._expires:
                self._refresh()
            return {"Authorization": f"Bearer {self._token}"}

    def _refresh(self) -> None:
        """A new token from the source's `tokenUrl`; its answer is read bounded as a search
        page is (TOKEN_MAX_BYTES once decoded, within twice the client's read timeout)."""
        assert self.source.token_url is not None
        url = self.source.token_url
        request = self._http.build_request(
            "POST",
            url,
            data={
                "grant_type": "password",
                "client_id": self.source.client_id,
                "username": self._username,
                "password": self._password,
            },
            headers={"Accept-Encoding": "gzip, deflate"},
        )
        try:
            with Deadline(
                2 * (self._http.timeout.read or 60.0), f"token request to {url}"
            ).applied():
                answer = self._http.send(request, stream=True)
                try:
                    if answer.status_code != 200:
                        # The body may echo the request: report only the status.
                        raise SourceError(
                            f"source {self.source.name}: token endpoint {url} answered "
                            f"{answer.status_code}; check INGEST_SOURCE_USERNAME / "
                            "INGEST_SOURCE_PASSWORD"
                        )
                    body = b"".join(bounded_body(answer, TOKEN_MAX_BYTES, f"token endpoint {url}"))
                finally:
                    answer.close()
        except httpx.HTTPError as error:
            raise SourceError(
                f"source {self.source.name}: token request to {url} failed: {error}"
            ) from error
        document = json.loads(body)
        self._token = str(document["access_token"])
        # Refresh a minute early: a download that starts must not meet an expired token.
        self._expires = time.monotonic() + max(30.0, float(document.get("expires_in", 300)) - 60)


# A copy must end within COPY_TIME_FACTOR times what its bytes take at the rate floor, plus
# COPY_TIME_SLACK seconds (the headers, the store's completion): with the asset size limit
# (INGEST_MAX_ASSET_GIB) no upstream can hold a copy for longer, however it paces its bytes.
COPY_TIME_FACTOR = 2
COPY_TIME_SLACK = 600.0


class HttpAsset(RangeSource):
    """An asset served over HTTP(S), read with Range requests so a copy can resume.

    The href and every redirect are checked against the source's `DownloadPolicy` before a
    request is sent (UnsafeDownload names the refusal); redirects are followed here, at most
    MAX_REDIRECTS, with the credentials re-applied between the source's own hosts (httpx drops
    them on a cross-host redirect) and never sent anywhere else."""

    def __init__(
        self,
        href: str,
        http: httpx.Client,
        credentials: Credentials,
        min_rate: float = 0.0,
        rate_window: float = 60.0,
        headers_timeout: float | None = None,
        budget: Deadline | None = None,
    ) -> None:
        """`min_rate`: the slowest (bytes/s, over each `rate_window` seconds spent waiting, the
        wait for the headers included) a body may come before its read fails
        (download_safety.RateFloor), and with it a deadline for the whole copy; 0: neither.
        `headers_timeout`: seconds each hop's answer headers may take, the hops together
        twice that (a Deadline over the guarded connection); None: only the read timeout.
        `budget`: a moment (its source's share of the run's time) that ends every request
        and read of the copy whichever deadline above is later; None: none."""
        self.href = shown(href)
        self._url = credentials.policy.check(href)
        self._http = http
        self._credentials = credentials
        self._response: httpx.Response | None = None
        self._min_rate, self._rate_window = min_rate, rate_window
        self._headers_timeout = headers_timeout
        self._budget = budget
        self._if_range: str | None = None
        self.validator: str | None = None

    def resume_if(self, validator: str | None) -> bool:
        """A resumed read serves the rest only of the content `validator` names (If-Range: a
        changed one answers whole, from byte 0); without one, no resume is safe (False)."""
        self._if_range = validator
        return validator is not None

    def _get(self, offset: int, last: int | None = None) -> httpx.Response:
        """The answer to a GET from byte `offset` (to byte `last` included, when given)."""
        url = self._url
        every: Deadline | None = self._budget
        if self._headers_timeout is not None:
            every = Deadline(
                2 * self._headers_timeout, f"GET {self.href}: the answers' headers"
            ).earliest(self._budget)
        for _ in range(MAX_REDIRECTS + 1):
            # The product's bytes as they are: sizes, ranges and checksums are of those.
            headers = {**self._credentials.headers_for(url), **IDENTITY}
            if offset or last is not None:
                headers["Range"] = f"bytes={offset}-{'' if last is None else last}"
                if self._if_range is not None:
                    headers["If-Range"] = self._if_range
            request = self._http.build_request("GET", url, headers=headers)
            hop = every
            if self._headers_timeout is not None:
                hop = Deadline(
                    self._headers_timeout, f"GET {shown(url)}: the answer's headers"
                ).earliest(every)
            try:
                if hop is not None:
                    hop.left()  # passed already: not even a pooled connection's request
                with hop.applied() if hop else contextlib.nullcontext():
                    response = self._http.send(request, stream=True, follow_redirects=False)
            except UnsafeDownload:
                raise
            except httpx.HTTPError as error:
                # A PoolTimeout (every pooled connection taken) has no text of its own.
                text = str(error) or f"{type(error).__name__} (no answer in time)"
                raise SourceError(f"GET {shown(url)} failed: {text}") from error
            location = response.headers.get("location")
            if not (response.is_redirect and location):
                return response
            response.close()
            url = self._credentials.policy.redirect(url, location)
        raise SourceError(f"GET {self.href}: more than {MAX_REDIRECTS} redirects")

    def open(self, offset: int) -> tuple[Iterable[bytes], int, int]:
        """Start a GET from `offset`; (chunks, offset served, total size). Over a guarded
        connection the chunks are a DirectBody, which a copy reads into its part buffers;
        either kind has `close()`, which closes the answer whether read or not. `validator`
        is then the answer's strong ETag (else its Last-Modified), or None."""
        # The floor's clock runs from the request: the headers' wait counts as waiting.
        floor = RateFloor(self._min_rate, f"reading {self.href}", self._rate_window)
        began = time.monotonic()
        response = self._get(offset)
        self._response = response
        try:
            if (
                response.status_code in (206, 416)
                and self._if_range is not None
                and _validator(response) != self._if_range
            ):
                # A server that ignores If-Range: the rest of another content (206), or the
                # end of another content (416: "all uploaded" of the old one). Read it whole.
                response.close()
                response = self._response = self._get(0)
            self.validator = _validator(response)
            if response.status_code == 416 and offset:
                # Everything was uploaded already; Content-Range says "bytes */<total>".
                total = _unsatisfied_range(response.headers.get("content-range", ""), self.href)
                response.close()
                return iter(()), offset, total
            if response.status_code == 206:
                start, total = _content_range(response.headers.get("content-range", ""), self.href)
            elif response.status_code == 200:
                start, total = 0, int(response.headers.get("content-length", -1))
            else:
                raise SourceError(f"GET {self.href} answered {response.status_code}")
            if total < 0:
                raise SourceError(f"GET {self.href} gave no Content-Length: cannot verify the copy")
            floor.count(0, time.monotonic() - began)
        except BaseException:
            response.close()
            raise
        floor.deadline = self._budget
        if self._min_rate:
            seconds = COPY_TIME_FACTOR * (total - start) / self._min_rate + COPY_TIME_SLACK
            # From the request, as the floor's clock.
            floor.deadline = Deadline(seconds, f"reading {self.href}", since=began).earliest(
                self._budget
            )
        body = DirectBody.of(response, total - start, f"reading {self.href}", floor)
        return (body or _StreamedBody(response, total - start, self.href, floor)), start, total


def _validator(response: httpx.Response) -> str | None:
    """What identifies the content of an answer for an If-Range: its strong ETag, else its
    Last-Modified; None when it has neither (a weak ETag never matches an If-Range)."""
    etag = response.headers.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("last-modified")


class _StreamedBody:
    """An answer's body read through httpx (one DirectBody cannot read): its chunks, as the
    connection reads them, never more than `size` bytes nor decoded; `close` closes the answer
    whether the chunks were read or not (a generator never started would not)."""

    def __init__(self, response: httpx.Response, size: int, href: str, floor: RateFloor) -> None:
        self._response, self._size, self._href, self._floor = response, size, href, floor

    def __iter__(self) -> Iterator[bytes]:
        try:
            # No Content-Encoding at all (identity was asked for), and never more than the
            # answer announced: a copy is not decoded, so no answer can expand in memory.
            # Chunks as the connection reads them (64 KiB): re-chunking them to a MiB in httpx
            # doubled the read's processor time, and the copy joins them into parts anyway.
            body = bounded_body(self._response, self._size, f"GET {self._href}", False)
            yield from self._floor.chunks(body)
        except httpx.HTTPError as error:
            raise SourceError(f"reading {self._href} failed midway: {error}") from error
        finally:
            self._response.close()

    def close(self) -> None:
        """Close the answer (and so its connection); nothing more is read."""
        self._response.close()


def _content_range(value: str, href: str) -> tuple[int, int]:
    # "bytes 100-199/1000"
    try:
        unit, rest = value.split(" ", 1)
        span, total = rest.split("/", 1)
        return int(span.split("-", 1)[0]), int(total)
    except ValueError:
        raise SourceError(f"GET {href} answered 206 with Content-Range {value!r}") from None


def _unsatisfied_range(value: str, href: str) -> int:
    """The total size a 416's Content-Range ("bytes */1000") gives; SourceError if malformed."""
    unit, _, total = value.partition(" */")
    if unit != "bytes" or not total.isdigit():
        raise SourceError(f"GET {href} answered 416 with Content-Range {value!r}")
    return int(total)


def search(
    source: Source,
    interval: str | None,
    headers: dict[str, str],
    policy: DownloadPolicy | None = None,
    timeout: float = 60.0,
    paging: Paging | None = None,
) -> Iterator[dict[str, Any]]:
    """Items of the source's collections, area, time window and cloud-cover limit.

    Every request (next pages included) must go to one of the source's hosts at an allowed
    address (`policy`; the source's own by default); redirects are refused. Each request
    times out after `timeout` seconds and is retried a bounded number of times (stac_client).
    Each page passes `paging` (BrokenPaging on a loop or past its page budget); after the last
    item, `paging.shortfall()` says what the server matched and did not serve."""
    import requests
    from pystac_client.exceptions import APIError

    from fedeploy_ingestion import stac_client

    policy = policy or DownloadPolicy.for_source(source)

    def checked(request: requests.Request) -> requests.Request:
        policy.check(str(request.url), what="search request to")
        return request

    if headers:
        # pystac-client logs each request's headers at DEBUG: the credentials would be in them.
        logging.getLogger("pystac_client.stac_api_io").setLevel(logging.INFO)

    parameters: dict[str, Any] = {"collections": source.collections, "max_items": source.max_items}
    if source.bbox:
        parameters["bbox"] = list(source.bbox)
    if interval:
        parameters["datetime"] = interval
    if source.max_cloud_cover is not None:
        parameters["filter"] = {
            "op": "<=",
            "args": [{"property": "eo:cloud_cover"}, source.max_cloud_cover],
        }
        parameters["filter_lang"] = "cql2-json"
    try:
        stac_io = stac_client.api_io(headers, timeout, request_modifier=checked)
        stac_io.session.max_redirects = 0
        stac_io.session.trust_env = False
        client = stac_client.open_client(source.url, stac_io)
        paging = paging or Paging(f"source {source.name}", 2000)
        left = source.max_items
        for page in client.search(**parameters).pages_as_dicts():
            for item in paging.page(page):
                yield item
                if left is not None:
                    left -= 1
                    if left <= 0:
                        return  # maxItems: the next page is not asked for
    except APIError as error:  # pystac-client wraps every transport and HTTP error in it
        raise SourceError(
            f"search of source {source.name} ({source.url}) failed: "
            f"{str(error) or repr(error.__context__ or error)}"
        ) from error
