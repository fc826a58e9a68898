"""A STAC API with the transactions extension: the site's catalog, or the hub's.

Writes are idempotent: items go through the bulk transactions endpoint with method `upsert`
(one request per batch), falling back to POST then PUT per item where it is absent. Ids are
checked and percent-encoded (stac_ids) before any request: InvalidId names a refused one.

stac-fastapi-pgstac's bulk endpoint answers 200 also when it refused some of the items on
validation (a null geometry, a `collection` other than the path's, an id other than its key,
an extension's schema): its body lists them (`{"success": n, "errors": [{"id", "msg"}]}`)
and stores only the others. That answer is read: the refused items raise ItemsRefused, which
names each with the catalog's reason. A database refusal is a 500 for the whole batch.

Every answer is read streamed, bounded and against a deadline (review rere33 F6): at most
`max_bytes` (decoded) where the client is given one, and never more than MAX_ANSWER_BYTES; one
item (`get_item`) at most MAX_ITEM_ANSWER_BYTES, as large as any item the copy or the harvest
writes; a search by ids at most MAX_SEARCH_ANSWER_BYTES. Of the answer to a per-item POST or PUT
(where there is no bulk endpoint; stac-fastapi echoes the item) only the first
MAX_WRITE_ECHO_BYTES are read: its status says whether the item was stored. The whole answer (its
headers and body) must have come within `answer_seconds` of the request being sent (by default
twice the client's read timeout), however slowly or steadily its bytes trickle: else
AnswerOverdue (a CatalogError).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from fedeploy_ingestion.download_safety import IDENTITY, UnsafeBody, bounded_body
from fedeploy_ingestion.errors import CatalogError
from fedeploy_ingestion.stac_client import MAX_PAGE_BYTES
from fedeploy_ingestion.stac_ids import collection_path, item_path

# The most item ids one search by ids asks for (CatalogClient.find): its request and answer
# stay small whatever a search page holds.
MAX_IDS_PER_SEARCH = 100
# The largest answer to one search by ids that is read (decoded, streamed): 100 ids with only
# their fingerprints is about 30 KiB, and 100 whole site items (a catalog that ignores
# `fields`; the site documents sentinel_plan.site_item writes keep only the chosen assets)
# should stay well under it. A larger answer (a catalog that ignores `ids` or `limit`) is
# refused (SearchRefused) before it fills memory, and its items are asked by GET.
MAX_SEARCH_ANSWER_BYTES = 4 * 1024 * 1024
# The largest answer naming one item that is read (decoded): a site item with its chosen assets
# is a few KiB, a detailed footprint some hundreds, and the copy and the harvest write any item
# a search page of theirs holds (pages of up to MAX_PAGE_BYTES), so a GET reads back any item
# they wrote (review rw33 F4: at 1 MiB, a 1.25 MB item was stored, then its GET failed on every
# run). A larger answer is a CatalogError before it fills memory (a 100 MiB answer to a GET took
# the Sentinel copy to 350 MiB, review rere33 F6).
MAX_ITEM_ANSWER_BYTES = MAX_PAGE_BYTES
# The most of the answer to a per-item POST or PUT that is read: its status says whether the
# item was stored, the body (the item echoed, as large as the item) is read only for an error's
# message. Before, an echo over 1 MiB failed the write of an item the catalog had stored.
MAX_WRITE_ECHO_BYTES = 64 * 1024
# The largest answer of any other kind read (a bulk upsert's listing of refused items is at
# most 10,000 ids and reasons: about 10 MiB), for a client given no `max_bytes` (the site's or
# the hub's own catalog).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# The whole-answer deadline when the client's read timeout is None (no per-read timeout).
DEFAULT_ANSWER_SECONDS = 120.0


class SearchRefused(CatalogError):
    """The catalog refused a search by ids (a 4xx other than 429) or answered it with what is
    not a page of the items asked for: asking it again in the same run would fare no better."""


class AnswerOverdue(CatalogError):
    """An answer that had not come whole (headers and body) within the client's
    `answer_seconds` of its request being sent (a catalog that trickles its bytes)."""


class ItemsRefused(CatalogError):
    """The catalog answered a bulk upsert with success and listed items it refused: those are
    not stored, the others of the request are. `refused`: item id -> the catalog's reason."""

    def __init__(self, where: str, refused: dict[str, str]) -> None:
        self.where = where
        self.refused = refused
        super().__init__(
            f"{where} refused {len(refused)} item(s): "
            + "; ".join(f"{item_id}: {reason}" for item_id, reason in refused.items())
        )

    def reason(self, item_id: str) -> str:
        """What the catalog said of one refused item, as a report names it."""
        return f"{self.where} refused item {item_id}: {self.refused[item_id]}"


@dataclass(frozen=True)
class Found:
    """What a search by ids answered (CatalogClient.find): item id -> its properties (those
    asked for, where the catalog has the fields extension) for the items it holds; `complete`:
    whether the answer was all of it (no `next` page, no more matched than returned), so that
    an id it left out is an item the catalog does not hold."""

    properties: dict[str, dict[str, Any]]
    complete: bool


class CatalogClient:
    """Reads and idempotent writes against one STAC API root.

    `max_bytes`: the largest answer body read (decoded), for a catalog that is not trusted (a
    member site read by the hub); a larger one is a CatalogError before it fills memory (any
    answer is bounded by MAX_ANSWER_BYTES, an item's by MAX_ITEM_ANSWER_BYTES, whatever it is).
    `answer_seconds`: the time a whole answer may take from its request being sent (by default
    twice the HTTP client's read timeout); AnswerOverdue past it."""

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
        max_bytes: int | None = None,
        answer_seconds: float | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = http or httpx.Client(timeout=timeout)
        self.max_bytes = max_bytes
        if answer_seconds is None:
            read = self._http.timeout.read
            answer_seconds = DEFAULT_ANSWER_SECONDS if read is None else 2 * read
        self.answer_seconds = answer_seconds

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def _limit(self, limit: int = MAX_ANSWER_BYTES) -> int:
        """The most bytes of an answer read: `limit`, or the client's `max_bytes` if smaller."""
        return limit if self.max_bytes is None else min(limit, self.max_bytes)

    def _request(
        self,
        method: str,
        path: str,
        limit: int = MAX_ANSWER_BYTES,
        cut: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        try:
            request = self._http.build_request(method, f"{self.url}{path}", **kwargs)
            return self._bounded(request, self._limit(limit), cut)
        except httpx.HTTPError as error:
            raise CatalogError(f"{method} {self.url}{path} failed: {error}") from error
        except UnsafeBody as error:
            raise CatalogError(str(error)) from None

    def _bounded(self, request: httpx.Request, limit: int, cut: bool = False) -> httpx.Response:
        """The answer to `request`, its body read and decoded up to `limit` bytes (counted
        after decoding; identity asked for, stacked or unknown encodings refused): UnsafeBody
        beyond it, or with `cut` the body read so far, the rest left unread; AnswerOverdue where it has not all come within `answer_seconds` (each
        read also times out by then: a byte at a time cannot hold it longer than twice that).
        The answer returned holds its body in memory, and nothing of it is left in a
        reference cycle (httpx's streamed answer is one, with its request: its body and the
        request's stayed until the collector's next full pass)."""
        request.headers.update(IDENTITY)
        allowed = self.answer_seconds
        timeouts = dict(request.extensions.get("timeout") or {})
        read = timeouts.get("read")
        timeouts["read"] = allowed if read is None else min(read, allowed)
        request.extensions["timeout"] = timeouts
        what = f"{request.method} {request.url}"
        began = time.monotonic()
        response = self._http.send(request, stream=True)
        try:
            pieces: list[bytes] = []
            try:
                for piece in bounded_body(response, limit, what):
                    pieces.append(piece)
                    if time.monotonic() - began > allowed:
                        raise AnswerOverdue(
                            f"{what}: the answer had not all come within {allowed:g} s "
                            f"({sum(map(len, pieces))} bytes read, still coming): too slow for "
                            "a catalog's answer (CatalogClient.answer_seconds)"
                        )
            except UnsafeBody:
                if not cut:
                    raise
            if time.monotonic() - began > allowed:
                raise AnswerOverdue(f"{what}: the answer took over {allowed:g} s")
            body = b"".join(pieces)
            del pieces
        finally:
            response.close()
            # httpx's streamed answer and its stream refer to each other: let it go now.
            response.stream = httpx.ByteStream(b"")
        # The body is decoded already: the new answer must not decode it again.
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    @staticmethod
    def _check(response: httpx.Response, *allowed: int) -> httpx.Response:
        if response.status_code not in allowed:
            raise CatalogError(
                f"{response.request.method} {response.request.url} answered "
                f"{response.status_code}: {response.text[:300]}"
            )
        return response

    def get_collection(self, collection_id: str) -> dict[str, Any] | None:
        """A collection, or None when the catalog has none by that id."""
        response = self._check(self._request("GET", collection_path(collection_id)), 200, 404)
        return None if response.status_code == 404 else dict(response.json())

    def ensure_collection(self, collection: dict[str, Any]) -> None:
        """Create a collection unless it exists (an existing one is left as it is)."""
        collection_path(collection.get("id"))  # checks the id before the request
        self._check(self._request("POST", "/collections", json=collection), 200, 201, 409)

    def put_collection(self, collection: dict[str, Any]) -> None:
        """Create or replace a collection."""
        path = collection_path(collection.get("id"))
        response = self._request("POST", "/collections", json=collection)
        if response.status_code == 409:
            response = self._request("PUT", path, json=collection)
        self._check(response, 200, 201)

    def get_item(self, collection_id: str, item_id: str) -> dict[str, Any] | None:
        """An item, or None when there is none."""
        response = self._request(
            "GET", item_path(collection_id, item_id), limit=MAX_ITEM_ANSWER_BYTES
        )
        self._check(response, 200, 404)
        return None if response.status_code == 404 else dict(response.json())

    def upsert_items(self, collection_id: str, items: list[dict[str, Any]]) -> None:
        """Create or replace items of one collection: the same items twice are stored once."""
        if not items:
            return
        paths = {item.get("id"): item_path(collection_id, item.get("id")) for item in items}
        response = self._request(
            "POST",
            collection_path(collection_id, "bulk_items"),
            json={"items": {i["id"]: i for i in items}, "method": "upsert"},
        )
        if response.status_code not in (404, 405):
            self._check(response, 200, 201)
            self._check_bulk_answer(response, [str(i.get("id")) for i in items])
            return
        # No bulk transactions on this API (or no such collection: the POST below says so).
        for item in items:
            # The status says whether it was stored: of the echo, only an error's message is read.
            response = self._request(
                "POST",
                collection_path(collection_id, "items"),
                limit=MAX_WRITE_ECHO_BYTES,
                cut=True,
                json=item,
            )
            if response.status_code == 409:
                response = self._request(
                    "PUT", paths[item.get("id")], limit=MAX_WRITE_ECHO_BYTES, cut=True, json=item
                )
            self._check(response, 200, 201)

    @staticmethod
    def _check_bulk_answer(response: httpx.Response, sent: list[str]) -> None:
        """Raise ItemsRefused for the items a successful bulk answer lists as refused
        (stac-fastapi-pgstac: `errors`, each `{"id", "msg"}`), and CatalogError where it
        stored fewer than were sent without saying which. An answer of another shape (another
        API's text) says nothing of the items and is taken as it is."""
        where = f"{response.request.method} {response.request.url}"
        try:
            answer = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return
        if not isinstance(answer, dict):
            return
        errors = answer.get("errors") or []
        if not isinstance(errors, list):
            raise CatalogError(
                f"{where} answered {response.status_code} with `errors` "
                f"{str(errors)[:200]!r}: a list of {{id, msg}} was expected"
            )
        refused: dict[str, str] = {}
        for error in errors:
            item_id = error.get("id") if isinstance(error, dict) else None
            if not isinstance(item_id, str) or item_id not in sent:
                raise CatalogError(
                    f"{where} answered {response.status_code} listing an error for no item it "
                    f"was sent: {str(error)[:300]}"
                )
            refused[item_id] = str(error.get("msg") or "(no reason given)")[:500]
        success = answer.get("success")
        if (
            isinstance(success, int)
            and not isinstance(success, bool)
            and success + len(refused) < len(sent)
        ):
            raise CatalogError(
                f"{where} answered {response.status_code}: stored {success} of the "
                f"{len(sent)} items sent and refused {len(refused)}; which were not stored "
                "is unknown"
            )
        if refused:
            raise ItemsRefused(where, refused)

    def find(
        self, collection_id: str, item_ids: Sequence[str], properties: Sequence[str] = ()
    ) -> Found:
        """The items of `collection_id` among `item_ids` (at most MAX_IDS_PER_SEARCH) the
        catalog holds, in one item search (POST /search: `collections`, `ids`, `limit`, and the
        fields extension's `include` for `properties`), its answer read up to
        MAX_SEARCH_ANSWER_BYTES. SearchRefused where the catalog refuses it (a 4xx other than
        429) or its answer is not a page of those items (too large, not JSON, an item not asked
        for or named twice, an item with no properties object); CatalogError where it fails
        otherwise (unreachable, 429, 5xx: it may answer the next one).

        The answer is complete unless it says it is not (a `next` link, or a `numberMatched`
        above the features it returned; a `numberMatched` that is not an integer says
        nothing sure: not complete). A catalog that cuts a page short without saying so is
        taken as complete: the items it left out are taken as not held (copied again and
        registered, never skipped wrongly)."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return Found({}, True)
        if len(ids) > MAX_IDS_PER_SEARCH:
            raise ValueError(f"at most {MAX_IDS_PER_SEARCH} ids a search, not {len(ids)}")
        for item_id in ids:
            item_path(collection_id, item_id)  # checks both ids before the request
        body: dict[str, Any] = {"collections": [collection_id], "ids": ids, "limit": len(ids)}
        if properties:
            body["fields"] = {
                "include": ["id", "collection", *(f"properties.{p}" for p in properties)]
            }
        where = f"POST {self.url}/search"
        limit = self._limit(MAX_SEARCH_ANSWER_BYTES)
        try:
            response = self._bounded(
                self._http.build_request("POST", f"{self.url}/search", json=body), limit
            )
        except httpx.HTTPError as error:
            raise CatalogError(f"{where} failed: {error}") from error
        except UnsafeBody as error:
            raise SearchRefused(
                f"{where} (a search by {len(ids)} ids of {collection_id}): answer refused, "
                f"{error}; at most {limit} bytes of a search's answer are read "
                "(MAX_SEARCH_ANSWER_BYTES)"
            ) from None
        except AnswerOverdue as error:
            raise SearchRefused(
                f"{where} (a search by {len(ids)} ids of {collection_id}): answer refused, {error}"
            ) from None
        status = response.status_code
        if status != 200:
            refused = 400 <= status < 500 and status != 429
            raise (SearchRefused if refused else CatalogError)(
                f"{where} answered {status}: {response.text[:300]}"
            )
        try:
            return self._page_of(where, collection_id, ids, response.content)
        except SearchRefused:
            raise
        except Exception as error:  # noqa: BLE001 - any other answer is not a page either
            # (review rere33 F5: an id that is a list, a 5000-digit count, deep nesting)
            raise SearchRefused(
                f"{where} answered a search by ids with what is not a page of the items asked "
                f"for: {type(error).__name__}: {str(error)[:200]}"
            ) from None

    @staticmethod
    def _page_of(where: str, collection_id: str, ids: list[str], content: bytes) -> Found:
        """What a 200 answer to a search by `ids` says (CatalogClient.find); SearchRefused
        where it is not a page of those items."""
        try:
            page = json.loads(content)
        except (ValueError, UnicodeDecodeError, RecursionError):
            # not JSON, not UTF-8, an integer of over 4300 digits, or nested too deep
            raise SearchRefused(f"{where} answered 200 with no JSON it can read") from None
        features = page.get("features") if isinstance(page, dict) else None
        if not isinstance(features, list):
            raise SearchRefused(f"{where} answered 200 with no list of features")
        asked, found = set(ids), {}
        for feature in features:
            answered = feature.get("id") if isinstance(feature, dict) else None
            if (
                not isinstance(answered, str)
                or answered not in asked
                or feature.get("collection") not in (None, collection_id)
            ):
                raise SearchRefused(
                    f"{where} answered a search by ids with an item not asked for: "
                    f"{str(feature)[:200]}"
                )
            if answered in found:
                raise SearchRefused(
                    f"{where} answered a search by ids naming item {answered!r} twice"
                )
            held = feature.get("properties")
            if not isinstance(held, dict):
                raise SearchRefused(
                    f"{where} answered a search by ids with an item with no properties "
                    f"object: {str(feature)[:200]}"
                )
            found[answered] = held
        context, links = page.get("context"), page.get("links")
        matched = page.get("numberMatched")
        if matched is None and isinstance(context, dict):
            matched = context.get("matched")
        following = isinstance(links, list) and any(
            isinstance(link, dict) and link.get("rel") == "next" for link in links
        )
        counted = isinstance(matched, int) and not isinstance(matched, bool)
        short = (
            following
            or (matched is not None and not counted)
            or (counted and matched > len(features))
        )
        return Found(found, not short)

    def queryables(self) -> set[str]:
        """Names the API can filter on (empty when it has no filter extension)."""
        response = self._request("GET", "/queryables")
        if response.status_code != 200:
            return set()
        return set((response.json().get("properties") or {}).keys())
