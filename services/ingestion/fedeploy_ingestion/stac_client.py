"""pystac-client's HTTP layer with a timeout and bounded retries, for every STAC API we read.

pystac-client waits forever by default (`timeout=None`) and retries only failed connections:
a stalled upstream would hold a CronJob for hours. Every `Client.open` of the service goes
through `api_io()`: each request times out after `timeout` seconds (connect and each read),
and a failed connection, a read error or an answer 429, 500, 502, 503 or 504 is retried at
most `retries` times, waiting 0.5 s, 1 s, 2 s... (at most 10 s, or what `Retry-After` says).
So one request takes at most about `(retries + 1) * timeout` plus the waits.

`Paging` checks a search's pages as they come: a loop or a run past the page budget ends the
search with BrokenPaging; items the server matched but never served are named. It keeps a
digest of each page's items and `next` link, not the ids and links themselves: what it keeps
grows by a few dozen bytes a page, whatever the ids and links hold (review rere33 F1).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from urllib3 import Retry

from fedeploy_ingestion.errors import IngestError

if TYPE_CHECKING:
    import requests
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO
    from requests import PreparedRequest, Response

DEFAULT_RETRIES = 3
# A search page (or any answer read through `api_io`) larger than this once decoded ends the
# search with UnsafeBody instead of filling the memory (the harvest bounds its pages alike).
MAX_PAGE_BYTES = 32 * 1024 * 1024
RETRY_STATUSES = (429, 500, 502, 503, 504)


def retry_policy(retries: int = DEFAULT_RETRIES) -> Retry:
    """At most `retries` retries of any method (STAC searches by POST are reads)."""
    return Retry(
        total=retries,
        backoff_factor=0.5,
        backoff_max=10,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,  # every method: a POST /search changes nothing
        raise_on_status=False,  # the last answer goes back, and pystac-client reports it
        respect_retry_after_header=True,
    )


def api_io(
    headers: dict[str, str] | None,
    timeout: float,
    retries: int = DEFAULT_RETRIES,
    request_modifier: Callable[[requests.Request], requests.Request | None] | None = None,
    max_bytes: int | None = None,
    bounded: bool = True,
) -> StacApiIO:
    """A pystac-client `StacApiIO` whose requests time out and are retried a bounded number of
    times, and whose answers are refused past `max_bytes` (MAX_PAGE_BYTES) once decoded
    (`bounded` false: the caller bounds them itself, as the harvest's MemberOrigin does); pass it as
    `Client.open(url, stac_io=...)`."""
    from pystac_client.stac_api_io import StacApiIO

    io = StacApiIO(
        headers=headers,
        request_modifier=request_modifier,
        timeout=timeout,
        max_retries=retry_policy(retries),
    )
    if bounded:
        adapter = bounded_adapter(retry_policy(retries), max_bytes or MAX_PAGE_BYTES)
        io.session.mount("http://", adapter)
        io.session.mount("https://", adapter)
    return io


def bounded_adapter(retries: Retry, max_bytes: int) -> Any:
    """A requests adapter that reads each answer's body itself, decoded step by step and
    counted after decoding (download_safety.decoded_body): past `max_bytes`, UnsafeBody
    (pystac-client reports it as the request's error) before the body is held in memory."""
    from requests.adapters import HTTPAdapter

    from fedeploy_ingestion.download_safety import decoded_body

    class BoundedAdapter(HTTPAdapter):
        def send(
            self,
            request: PreparedRequest,
            stream: bool = False,
            timeout: float | tuple[float | None, float | None] | None = None,
            verify: bool | str = True,
            cert: str | tuple[str, str] | None = None,
            proxies: dict[str, str] | None = None,
        ) -> Response:
            request.headers["Accept-Encoding"] = "gzip, deflate"  # what is decoded (not br)
            # Always streamed (whatever `stream` asks): the body is read here, bounded.
            response = super().send(request, True, timeout, verify, cert, proxies)
            values = response.headers.get("content-encoding", "")
            codings = [c.strip().lower() for c in values.split(",")]
            codings = [c for c in codings if c and c != "identity"]
            try:
                chunks = response.raw.stream(64 * 1024, decode_content=False)
                body = b"".join(decoded_body(chunks, codings, max_bytes, f"{request.url}"))
            finally:
                response.close()
            response._content = body  # decoded: requests reads no more of the raw stream
            response._content_consumed = True
            response.headers.pop("content-encoding", None)
            return response

    return BoundedAdapter(max_retries=retries)


def open_client(url: str, stac_io: StacApiIO) -> Client:
    """`Client.open(url)` through `stac_io`, keeping its timeout and request modifier.

    `Client.open(url, stac_io=io)` alone resets both to None (it calls `io.update()` with its
    own defaults): no timeout, and a request modifier that checks every URL silently dropped.
    """
    from pystac_client import Client

    return Client.open(
        url,
        stac_io=stac_io,
        request_modifier=stac_io._req_modifier,
        timeout=stac_io.timeout,
    )


class BrokenPaging(IngestError):
    """A search's pages loop (a `next` link or a page of items repeats) or exceed the page
    budget: the paginator is broken."""


@dataclass
class Paging:
    """What the pages of one search said, checked page by page (pystac-client follows `next`
    links and notices none of this).

    `page()` raises BrokenPaging when a page repeats the `next` link of an earlier page, or
    the item ids of an earlier page, in any order (a known public-server bug serves page 1 again and again),
    or when more than `max_pages` pages come; `shortfall()` says when the last page (no `next`)
    left items out that the server counted in `numberMatched` (or `context.matched`)."""

    what: str
    max_pages: int
    pages: int = 0
    returned: int = 0
    matched: int | None = None
    ended: bool = False
    # digests of the `next` links and of the pages' sorted item ids -> the page that had them
    _links: dict[bytes, int] = field(default_factory=dict)
    _contents: dict[bytes, int] = field(default_factory=dict)

    def page(self, page: dict[str, Any]) -> list[Any]:
        """The page's features, once the page is checked."""
        features = page.get("features") or []
        if not isinstance(features, list):
            raise IngestError(
                f"{self.what}: a search page's features are a {type(features).__name__}, not a list"
            )
        self.pages += 1
        if self.pages > self.max_pages:
            raise BrokenPaging(
                f"{self.what}: more than {self.max_pages} search pages in one run; a run reads "
                "at most that many (INGEST_SEARCH_MAX_PAGES): narrow the search or raise it"
            )
        if self.matched is None:
            matched = page.get("numberMatched", (page.get("context") or {}).get("matched"))
            self.matched = matched if isinstance(matched, int) else None
        following = next(
            (
                link
                for link in page.get("links") or []
                if isinstance(link, dict) and link.get("rel") == "next"
            ),
            None,
        )
        # the same items in another order are the same page (a shuffled page 1 loops too)
        ids = sorted(str(f.get("id")) for f in features if isinstance(f, dict))
        if ids:
            digest = _digest(ids)
            if digest in self._contents:
                raise BrokenPaging(
                    f"{self.what}: search page {self.pages} repeats the items of page "
                    f"{self._contents[digest]}; the server's paginator loops, the search stops "
                    "here"
                )
            self._contents[digest] = self.pages
        if following is not None:
            key = _digest([following.get("href"), following.get("method"), following.get("body")])
            if key in self._links:
                raise BrokenPaging(
                    f"{self.what}: search repeats the next link {following.get('href')} of "
                    f"page {self._links[key]} on page {self.pages}; the server's paginator "
                    "loops, the search stops here"
                )
            self._links[key] = self.pages
        self.returned += len(features)
        self.ended = following is None
        return features

    def shortfall(self) -> str | None:
        """Why the search ended with fewer items than the server matched, or None."""
        if self.ended and self.matched is not None and self.returned < self.matched:
            return (
                f"{self.what}: the server matched {self.matched} items (numberMatched) but "
                f"served {self.returned} in {self.pages} pages and no next link; "
                f"{self.matched - self.returned} were not read"
            )
        return None


def _digest(value: Any) -> bytes:
    """A digest of a JSON value (keys sorted; what JSON cannot hold, as its str)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
