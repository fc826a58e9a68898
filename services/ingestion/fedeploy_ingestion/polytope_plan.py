"""What a Polytope product is, decided without touching the network (pure).

A product is one MARS-language request to one Polytope collection (DestinE's digital twins:
`destination-earth`). Its identity is a digest of the request made canonical (`canonical`):
the words of keys that are sets (param, step, time...) sorted, every other key's (area N/W/S/E,
grid) in their order, spellings of one value made one (dates, case, `1000.0`), and the
collection beside it. So the same request written in another key order, set order or spelling
is the same product, copied once; two requests of one identity are refused (`duplicates`). The
site collection is `<collection>-<dataset>` (the class where the request names no dataset), the
item id `<dataset>[-<activity>-<experiment>-<model>]-<first date>-<digest's first 16 hex>`, the
key `sentinel/<collection>/<item id>/data.grib2` (`data.covjson` for a feature's CoverageJSON).

Polytope publishes no digest of a result. A GRIB result, always read from its start, is checked
message by message as it streams (`GribFraming`: `GRIB`, edition 1 or 2, the length its header
declares, `7777`, nothing after the last message); the copy's SHA-256 is in the item.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.forecast_plan import GRIB2
from fedeploy_ingestion.multihash import sha256_multihash
from fedeploy_ingestion.sentinel_plan import CopiedAsset, object_key
from fedeploy_ingestion.settings import mars_words
from fedeploy_ingestion.stac_documents import (
    FILE_EXTENSION,
    collection,
    global_product_item,
    rfc3339,
)

COVERAGE_JSON = "application/prs.coverage+json"
# The request keys that name the dataset in the item id, in this order.
_ID_KEYS = ("activity", "experiment", "model")
_NOT_ID = re.compile(r"[^a-z0-9.]+")
_RANGE_WORDS = {"to", "by"}
# Keys whose words are a set (their order means nothing): sorted in the identity. Every other
# key keeps its words' order (area N/W/S/E, grid dx/dy, rotation...).
SET_KEYS = frozenset(
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
# Keys whose values MARS reads without regard to case: lower-cased in the identity.
CASELESS_KEYS = frozenset({"class", "stream", "type", "levtype", "param", "domain"})
_DECIMAL = re.compile(r"^-?[0-9]+\.[0-9]+$")
_DASHED_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")


def _canonical_word(key: str, word: str) -> str:
    if key in CASELESS_KEYS:
        word = word.lower()
    if _DECIMAL.match(word):
        word = word.rstrip("0").rstrip(".")  # 1000.0 -> 1000, 0.10 -> 0.1
    if key in ("date", "hdate"):
        word = _DASHED_DATE.sub(r"\1\2\3", word)  # 2030-01-01 -> 20300101
    return word


def canonical(collection_name: str, request: dict[str, Any]) -> dict[str, Any]:
    """The request in one form whatever its spelling: keys lower case; each value as its words
    (a list's items split on '/' too); dates yyyymmdd, whole numbers without '.0', the values
    of CASELESS_KEYS lower case; the words of SET_KEYS sorted unless a range (`to`, `by`),
    every other key's in their order (area, grid); a `feature` as sorted JSON. The Polytope
    URL is not part of it: the same request to two servers is one product (refused in one
    deployment, see `duplicates`)."""
    form: dict[str, Any] = {}
    for key, value in request.items():
        key = key.lower()
        if key == "feature":
            form[key] = json.loads(json.dumps(value, sort_keys=True))
            continue
        words = [_canonical_word(key, w) for item in mars_words(value) for w in mars_words(item)]
        if key in SET_KEYS and not _RANGE_WORDS & {w.lower() for w in words}:
            words = sorted(set(words))
        form[key] = words
    return {"collection": collection_name, "request": form}


def digest(collection_name: str, request: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical request: the product's identity and fingerprint."""
    text = json.dumps(canonical(collection_name, request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def duplicates(requests: Iterable[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """For (where, collection, request) triples: one line for each request whose identity an
    earlier one has already ('where' names both); [] when every identity is distinct."""
    seen: dict[str, str] = {}
    found = []
    for where, collection_name, request in requests:
        identity = digest(collection_name, request)
        if identity in seen:
            found.append(
                f"{where} is the same request as {seen[identity]} (one identity, "
                f"{identity[:16]}): it would never be copied; remove one, or make them differ"
            )
        else:
            seen[identity] = where
    return found


def mars_request(request: dict[str, Any]) -> dict[str, Any]:
    """The request as sent (polytope-client's YAML of it): lists as MARS's `a/b/c`."""
    return {
        key: value if key == "feature" or not isinstance(value, list) else "/".join(map(str, value))
        for key, value in request.items()
    }


def _word(value: Any) -> str:
    return _NOT_ID.sub("-", str(value).lower()).strip("-")


def _date(word: str) -> datetime:
    return datetime.strptime(word.replace("-", ""), "%Y%m%d").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Product:
    """One request to one Polytope collection."""

    collection_name: str
    request: dict[str, Any]

    @property
    def digest(self) -> str:
        """The identity of the request (see `digest`)."""
        return digest(self.collection_name, self.request)

    @property
    def dataset(self) -> str:
        """The request's dataset (climate-dt, extremes-dt), else its class."""
        return _word(self.request.get("dataset", self.request.get("class", "")))

    @property
    def collection_id(self) -> str:
        """The site collection: `<collection>-<dataset>`."""
        return f"{self.collection_name}-{self.dataset}"

    @property
    def dates(self) -> list[datetime]:
        """The request's dates (the ends of a `to` range), UTC midnight, in order."""
        return sorted(_date(w) for w in mars_words(self.request["date"]) if len(w) >= 8)

    @property
    def item_id(self) -> str:
        """The site item id, from the request's dataset ids, first date and digest."""
        named = [_word(mars_words(self.request[k])[0]) for k in _ID_KEYS if k in self.request]
        return "-".join([self.dataset, *named, f"{self.dates[0]:%Y%m%d}", self.digest[:16]])

    @property
    def media_type(self) -> str:
        """GRIB2, or CoverageJSON for a feature extraction."""
        return COVERAGE_JSON if "feature" in self.request else GRIB2

    @property
    def key(self) -> str:
        """Where the product is stored in the site's bucket."""
        name = "data.covjson" if "feature" in self.request else "data.grib2"
        return object_key(self.collection_id, self.item_id, "data", name, self.media_type)


class GribFraming:
    """Checks, as a result streams by from its first byte, that it is whole GRIB messages end
    to end: each starts `GRIB`, edition 1 or 2, ends `7777` at the length its header declares,
    and the result ends where its last message does. SourceError names the byte."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0  # of the buffer's first byte in the result
        self._end: int | None = None  # of the message being read

    def feed(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """`chunks` passed through, checked."""
        for chunk in chunks:
            self._buffer += chunk
            self._check()
            yield chunk
        if self._buffer or self._end is not None:
            raise SourceError(
                f"the result ends at byte {self._position + len(self._buffer)}, inside the "
                f"GRIB message that starts at byte {self._position}"
            )

    def _check(self) -> None:
        while True:
            if self._end is None:
                if len(self._buffer) < 16:
                    return
                head = bytes(self._buffer[:16])
                if head[:4] != b"GRIB" or head[7] not in (1, 2):
                    raise SourceError(
                        f"no GRIB message (edition 1 or 2) starts at byte {self._position} of "
                        "the result"
                    )
                length = (
                    int.from_bytes(head[8:16], "big")
                    if head[7] == 2
                    else int.from_bytes(head[4:7], "big")
                )
                if length < 20:
                    raise SourceError(
                        f"the GRIB message at byte {self._position} declares {length} bytes"
                    )
                self._end = self._position + length
            length = self._end - self._position
            if len(self._buffer) < length:
                # keep only what the trailer check needs of a long message
                if len(self._buffer) > 1024 * 1024:
                    drop = len(self._buffer) - 4
                    del self._buffer[:drop]
                    self._position += drop
                return
            if bytes(self._buffer[length - 4 : length]) != b"7777":
                raise SourceError(
                    f"the GRIB message ending at byte {self._end} does not end '7777'"
                )
            del self._buffer[:length]
            self._position, self._end = self._end, None


def site_collection(product: Product, url: str) -> dict[str, Any]:
    """The site collection of the product's Polytope collection and dataset."""
    return collection(
        product.collection_id,
        f"{product.dataset} from Polytope collection {product.collection_name} ({url}): "
        "Destination Earth's digital-twin data, one item per MARS request",
        license="other",
        providers=[
            {
                "name": "ECMWF (Destination Earth digital twins)",
                "roles": ["producer", "host"],
                "url": "https://destine.ecmwf.int",
            }
        ],
    )


def site_item(
    product: Product,
    copy: CopiedAsset,
    *,
    url: str,
    bucket: str,
    site: str,
    area: tuple[float, float, float, float] | None,
    now: datetime,
) -> dict[str, Any]:
    """The site's item: the request's MARS keys (`polytope:<key>`), its date(s), the copy, and
    links back to Polytope's collection."""
    dates = product.dates
    properties: dict[str, Any] = {
        "datetime": rfc3339(dates[0]),
        "polytope:collection": product.collection_name,
        "polytope:request_digest": product.digest,
        "updated": rfc3339(now),
        "fedeploy:site": site,
        "fedeploy:fingerprint": product.digest,
    }
    if len(dates) > 1:
        properties["start_datetime"] = rfc3339(dates[0])
        properties["end_datetime"] = rfc3339(dates[-1])
    for key, value in mars_request(product.request).items():
        properties[f"polytope:{key}"] = value
    if area:
        properties["fedeploy:area_of_interest"] = list(area)
    root = url.rstrip("/")
    data = {
        "href": f"s3://{bucket}/{copy.key}",
        "type": product.media_type,
        "roles": ["data"],
        "title": f"Polytope {product.collection_name} {product.dataset} result",
        "file:size": copy.size,
        "file:checksum": sha256_multihash(copy.sha256),
    }
    links = [
        {
            "rel": "via",
            "href": f"{root}/api/v1/requests/{product.collection_name}",
            "type": "application/json",
            "title": "Polytope's request endpoint: POST the request in polytope:* again",
        },
        {
            "rel": "about",
            "href": f"{root}/api/v1/collections",
            "type": "application/json",
            "title": "Polytope's collections",
        },
    ]
    return global_product_item(
        product.item_id, product.collection_id, properties, data, links, [FILE_EXTENSION]
    )
