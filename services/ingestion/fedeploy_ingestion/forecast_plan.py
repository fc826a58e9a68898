"""What an ECMWF open-data product is, decided without touching the network (pure).

A product is one run's step of one model, resolution, stream and type, restricted to a source's
parameters (and levels): the GRIB2 messages the file's `.index` lists for them, copied as one
object of those messages end to end. Its identity gives the collection `ecmwf-<model>-<stream>-<type>`, the
item id `<model>-<resol>-<stream>-<type>-<yyyymmddHH>-<step>h-<params>` and the object key
`sentinel/<collection>/<item id>/data.grib2` (the copied products' prefix and layout, which the
ingestion role may write and the asset endpoint may presign), so a second run finds what the
first one stored.

ECMWF publishes no digest of its files. What is checked instead: every index entry is a JSON
object with a non-negative integer `_offset` and a `_length` of at least 20 bytes (a GRIB2
message's indicator and end sections), the entries of each index (all, not only those
selected) do not overlap and lie inside the file (its size from the answer's Content-Range), and every message copied
starts with `GRIB`, edition 2, declares the length the index gives it, and ends with `7777`
(`GribCheck`). The copy's own SHA-256 is recorded in the item (`file:checksum`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.multihash import sha256_multihash
from fedeploy_ingestion.sentinel_plan import CopiedAsset, object_key
from fedeploy_ingestion.stac_documents import (
    FILE_EXTENSION,
    collection,
    global_product_item,
    rfc3339,
)

FORECAST_EXTENSION = "https://stac-extensions.github.io/forecast/v0.1.0/schema.json"
GRIB2 = "application/wmo-GRIB2"
# One GRIB2 message: "GRIB", 2 reserved bytes, discipline, edition (2), 8-byte total length.
_HEADER = 16
_TRAILER = b"7777"
# No GRIB2 message is shorter than its indicator section and its end section.
MIN_MESSAGE = _HEADER + len(_TRAILER)
# The index keys an item's description of its messages keeps (strings of at most this length).
INDEX_KEYS = (
    "domain", "date", "time", "expver", "class", "type", "stream", "step", "levtype",
    "levelist", "number", "param",
)  # fmt: skip
MAX_INDEX_VALUE = 64


@dataclass(frozen=True)
class Product:
    """One run's step of a source's parameters."""

    model: str
    resol: str
    stream: str
    type: str
    run: datetime
    step: int
    params: tuple[str, ...]
    levtype: str | None = None
    levelist: tuple[int, ...] = ()

    @property
    def param_set(self) -> str:
        """The parameters (and level selection) in one word: `2t_msl`, `t_pl500_850`."""
        words = sorted(self.params)
        if self.levtype:
            words.append(self.levtype + "_".join(str(level) for level in sorted(self.levelist)))
        elif self.levelist:
            words.append("l" + "_".join(str(level) for level in sorted(self.levelist)))
        return "_".join(words)

    @property
    def collection_id(self) -> str:
        """The site collection of this model, stream and type."""
        return f"ecmwf-{self.model}-{self.stream}-{self.type}"

    @property
    def item_id(self) -> str:
        """The site item id, from the product's identity."""
        return (
            f"{self.model}-{self.resol}-{self.stream}-{self.type}-{self.run:%Y%m%d%H}-"
            f"{self.step}h-{self.param_set}"
        )

    @property
    def key(self) -> str:
        """Where the product is stored in the site's bucket."""
        return object_key(self.collection_id, self.item_id, "data", "data.grib2", GRIB2)

    def request(self) -> dict[str, Any]:
        """The product as an ecmwf-opendata request (`Client.retrieve`'s keywords)."""
        request: dict[str, Any] = {
            "date": self.run.strftime("%Y-%m-%d"),
            "time": self.run.hour,
            "model": self.model,
            "resol": self.resol,
            "stream": self.stream,
            "type": self.type,
            "step": self.step,
            "param": list(self.params),
        }
        if self.levtype:
            request["levtype"] = self.levtype
        if self.levelist:
            request["levelist"] = list(self.levelist)
        return request


@dataclass(frozen=True)
class Message:
    """One GRIB message of a file: its index entry's identifiers and its bytes' place."""

    url: str
    offset: int
    length: int
    entry: dict[str, Any]

    def summary(self, copy_offset: int) -> dict[str, Any]:
        """Where the message lies in the site's copy, with ECMWF's identifiers of it."""
        named = {
            k: v
            for k in INDEX_KEYS
            if isinstance(v := self.entry.get(k), str) and len(v) <= MAX_INDEX_VALUE
        }
        return {**named, "offset": copy_offset, "length": self.length}


def index_entry(line: bytes, url: str, number: int) -> dict[str, Any]:
    """One line of a `.index` file, checked (SourceError naming the file and line)."""
    try:
        entry = json.loads(line)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        raise SourceError(f"index {url} line {number} is not a JSON object")
    offset, length = entry.get("_offset"), entry.get("_length")
    if not (
        isinstance(offset, int)
        and not isinstance(offset, bool)
        and offset >= 0
        and isinstance(length, int)
        and not isinstance(length, bool)
        and length >= MIN_MESSAGE
    ):
        raise SourceError(
            f"index {url} line {number}: _offset must be an integer >= 0 and _length one >= "
            f"{MIN_MESSAGE} (no GRIB2 message is shorter) "
            f"(found {str(offset)[:20]!r}, {str(length)[:20]!r})"
        )
    return entry


def messages(
    parts: Iterable[tuple[str, Iterable[tuple[int, int]]]],
    entries: dict[str, dict[int, dict[str, Any]]],
) -> list[Message]:
    """The product's messages in copy order, from ecmwf-opendata's (url, ((offset, length),
    ...)) parts and each url's index entries by offset; SourceError for overlapping ranges."""
    chosen: list[Message] = []
    for url, ranges in parts:
        end = 0
        for offset, length in sorted(ranges):
            if offset < end:
                raise SourceError(f"index of {url}: the entry at byte {offset} overlaps another")
            chosen.append(Message(url, offset, length, entries.get(url, {}).get(offset, {})))
            end = offset + length
    return chosen


@dataclass(frozen=True)
class Span:
    """Contiguous bytes of one file: one Range request."""

    url: str
    offset: int
    length: int


def spans(chosen: list[Message]) -> list[Span]:
    """Adjacent messages of a file merged into one range each (fewer requests)."""
    merged: list[Span] = []
    for message in chosen:
        last = merged[-1] if merged else None
        if last and last.url == message.url and last.offset + last.length == message.offset:
            merged[-1] = Span(last.url, last.offset, last.length + message.length)
        else:
            merged.append(Span(message.url, message.offset, message.length))
    return merged


def fingerprint(product: Product, chosen: list[Message]) -> str:
    """What identifies the upstream content: the files (by name, not by host: a mirror's copy
    of the same forecast is the same content) and byte ranges of the messages."""
    basis = {
        "item": product.item_id,
        "messages": [(m.url.rsplit("/", 1)[-1], m.offset, m.length) for m in chosen],
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


class GribCheck:
    """Checks, as the bytes stream by, that each message is a whole GRIB2 message of the length
    the index gives it: `GRIB`, edition 2, that total length, `7777` at its end.

    Positions are in the copy's coordinates; a copy resumed at `start` checks the messages
    whose header it sees (a resumed copy is read back and its size checked by the store)."""

    def __init__(self, chosen: list[Message], start: int = 0) -> None:
        self._windows: list[tuple[int, int, int, str]] = []  # (from, to, length, kind)
        position = 0
        for message in chosen:
            if position >= start:
                self._windows.append((position, position + _HEADER, message.length, "header"))
            end = position + message.length
            if end - len(_TRAILER) >= start:
                self._windows.append((end - len(_TRAILER), end, message.length, "trailer"))
            position = end
        self._seen: dict[int, bytearray] = {}
        self._next = 0

    def feed(self, chunks: Iterable[bytes], position: int) -> Iterator[bytes]:
        """`chunks` (starting at `position`) passed through; SourceError at a bad message."""
        for chunk in chunks:
            end = position + len(chunk)
            while self._next < len(self._windows) and self._windows[self._next][0] < end:
                first, last, length, kind = self._windows[self._next]
                piece = self._seen.setdefault(first, bytearray())
                piece += chunk[max(first - position, 0) : max(min(last, end) - position, 0)]
                if len(piece) < last - first:
                    break  # the rest of this window comes with the next chunk
                self._check(bytes(piece), first, length, kind)
                del self._seen[first]
                self._next += 1
            position = end
            yield chunk
        if self._next < len(self._windows):
            raise SourceError(
                f"the product ended at byte {position}, before its GRIB message's "
                f"{self._windows[self._next][3]} at byte {self._windows[self._next][0]}"
            )

    @staticmethod
    def _check(piece: bytes, at: int, length: int, kind: str) -> None:
        if kind == "trailer":
            if piece != _TRAILER:
                raise SourceError(f"the GRIB message ending at byte {at + 4} does not end '7777'")
            return
        if piece[:4] != b"GRIB" or piece[7] != 2:
            raise SourceError(f"no GRIB edition 2 message starts at byte {at} of the product")
        declared = int.from_bytes(piece[8:16], "big")
        if declared != length:
            raise SourceError(
                f"the GRIB message at byte {at} declares {declared} bytes, its index {length}"
            )


# What the item's identifiers of the messages rest on (finding 4 of review 36).
IDENTIFIERS_NOTE = (
    "The messages' identifiers are those ECMWF's .index lists for their byte ranges; each "
    "message was checked to be a whole GRIB2 message of that length, and its param, step and "
    "level (ecCodes shortName, endStep, level) decoded from its header to equal the index's."
)


# Messages up to this size are decoded (their headers) to check the index's identifiers.
MAX_IDENTIFIED_MESSAGE = 64 * 1024 * 1024
# index key -> the ecCodes key whose value must equal it
_IDENTIFIERS = {"param": "shortName", "step": "endStep", "levelist": "level"}


class GribIdentity:
    """Checks, as the bytes stream by, that each message is what its index entry says: its
    ecCodes `shortName`, `endStep` and `level` equal the entry's `param`, `step` and
    `levelist` (those the entry gives). One message is held at a time, and only messages of at
    most MAX_IDENTIFIED_MESSAGE bytes (larger ones, and those a resumed copy starts inside, are
    checked for structure only, by GribCheck). Run after GribCheck: a message reaching here is
    a whole GRIB2 message."""

    def __init__(self, chosen: list[Message], start: int = 0) -> None:
        self._pending: list[tuple[int, Message]] = []
        position = 0
        for message in chosen:
            if position >= start and message.length <= MAX_IDENTIFIED_MESSAGE:
                self._pending.append((position, message))
            position += message.length
        self._buffer = bytearray()

    def feed(self, chunks: Iterable[bytes], position: int) -> Iterator[bytes]:
        """`chunks` (starting at `position`) passed through; SourceError at a message that is
        not the one its index entry names."""
        for chunk in chunks:
            end = position + len(chunk)
            while self._pending and self._pending[0][0] < end:
                first, message = self._pending[0]
                last = first + message.length
                self._buffer += chunk[max(first - position, 0) : max(min(last, end) - position, 0)]
                if len(self._buffer) < message.length:
                    break
                _identify(bytes(self._buffer), message, first)
                self._buffer = bytearray()
                self._pending.pop(0)
            position = end
            yield chunk


def _identify(data: bytes, message: Message, at: int) -> None:
    import eccodes

    handle = eccodes.codes_new_from_message(data)
    try:
        for index_key, codes_key in _IDENTIFIERS.items():
            claimed = message.entry.get(index_key)
            if claimed is None:
                continue
            try:
                found = eccodes.codes_get_string(handle, codes_key)
            except eccodes.GribInternalError:
                found = "(none)"
            if str(claimed) != found:
                raise SourceError(
                    f"the GRIB message at byte {at} of the product has {codes_key} "
                    f"{found[:40]!r}, its index entry {index_key} {str(claimed)[:40]!r}"
                )
    finally:
        eccodes.codes_release(handle)


def site_collection(product: Product, url: str) -> dict[str, Any]:
    """The site collection of a product's model, stream and type."""
    return collection(
        product.collection_id,
        f"ECMWF open-data {product.model.upper()} forecasts (stream {product.stream}, type "
        f"{product.type}, GRIB2), copied from {url}",
        license="CC-BY-4.0",
        providers=[
            {
                "name": "ECMWF",
                "roles": ["producer", "licensor"],
                "url": "https://www.ecmwf.int/en/forecasts/datasets/open-data",
            }
        ],
        stac_extensions=[FORECAST_EXTENSION],
    )


def site_item(
    product: Product,
    chosen: list[Message],
    copy: CopiedAsset,
    *,
    bucket: str,
    site: str,
    item_fingerprint: str,
    area: tuple[float, float, float, float] | None,
    now: datetime,
) -> dict[str, Any]:
    """The site's item: ECMWF's identifiers, the forecast fields, the copy, links back."""
    valid = product.run + timedelta(hours=product.step)
    layout, position = [], 0
    for message in chosen:
        layout.append(message.summary(position))
        position += message.length
    properties: dict[str, Any] = {
        "datetime": rfc3339(valid),
        "forecast:reference_datetime": rfc3339(product.run),
        "forecast:horizon": f"PT{product.step}H",
        "ecmwf:model": product.model,
        "ecmwf:resol": product.resol,
        "ecmwf:stream": product.stream,
        "ecmwf:type": product.type,
        "ecmwf:step": product.step,
        "ecmwf:params": sorted(product.params),
        "updated": rfc3339(now),
        "fedeploy:site": site,
        "fedeploy:fingerprint": item_fingerprint,
    }
    if product.levtype:
        properties["ecmwf:levtype"] = product.levtype
    if product.levelist:
        properties["ecmwf:levelist"] = sorted(product.levelist)
    if area:
        properties["fedeploy:area_of_interest"] = list(area)
    links = []
    for url in dict.fromkeys(m.url for m in chosen):
        links.append({"rel": "via", "href": url, "type": GRIB2, "title": "The ECMWF file"})
        index = url.rsplit(".", 1)[0] + ".index"
        links.append(
            {
                "rel": "describedby",
                "href": index,
                "type": "application/x-ndjson",
                "title": "Its index: one JSON object per GRIB message",
            }
        )
    data = {
        "href": f"s3://{bucket}/{copy.key}",
        "type": GRIB2,
        "roles": ["data"],
        "title": f"{', '.join(sorted(product.params))} at step {product.step} h",
        "file:size": copy.size,
        "file:checksum": sha256_multihash(copy.sha256),
        "description": IDENTIFIERS_NOTE,
        "ecmwf:messages": layout,
    }
    # The open-data fields are global; the area of interest is recorded, not cut out.
    return global_product_item(
        product.item_id,
        product.collection_id,
        properties,
        data,
        links,
        [FILE_EXTENSION, FORECAST_EXTENSION],
    )
