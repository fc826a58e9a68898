"""Bytes of one edge message to a JSON object, refusing what a lenient decoder would guess at.

Pure. Every check that bounds the decoder's work (size, nesting depth) runs on the raw bytes
**before** decoding, so no payload can make `json.loads` recurse, allocate or run without
limit. What is refused, and the reason code each refusal carries (docs/observation-schema.md):

| code | refused |
|---|---|
| `empty` | a payload of zero bytes |
| `too-large` | more bytes than the limit (`INGEST_MAX_PAYLOAD_BYTES`) |
| `too-deep` | arrays and objects nested deeper than the limit (`INGEST_MAX_NESTING_DEPTH`) |
| `encoding` | not UTF-8, or starting with a byte order mark (RFC 8259 section 8.1) |
| `non-finite` | `NaN`, `Infinity` or `-Infinity`, which are not JSON |
| `duplicate-key` | one object naming a key twice (RFC 8259 leaves the meaning open) |
| `not-json` | anything else the decoder refuses |
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NoReturn

BOM = b"\xef\xbb\xbf"
# One token at a time: a whole JSON string (so brackets inside strings do not count), or a
# bracket. Strings cannot hold raw newlines in JSON, but a payload may: `.` must not stop there.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


class InvalidObservation(ValueError):
    """A message that does not follow the schema; `code` is a short label for metrics."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class DecodeLimits:
    """How much one message may ask of the decoder: bytes, and depth of nested arrays/objects."""

    max_bytes: int = 64 * 1024
    max_depth: int = 16


def too_deep(payload: bytes, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` deep (brackets in strings ignored).

    Linear in the payload, without recursion, whatever the payload holds; stops at the first
    bracket past the limit.
    """
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return False  # not enough brackets to be deeper
    depth = 0
    for match in _TOKENS.finditer(payload):
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token[0] in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _refuse_constant(name: str) -> NoReturn:
    raise InvalidObservation("non-finite", f"payload holds {name}, which is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        repeated = sorted({k for k, _ in pairs if k in seen or seen.add(k)})  # type: ignore[func-returns-value]
        raise InvalidObservation(
            "duplicate-key", f"an object names {', '.join(map(repr, repeated))} more than once"
        )
    return document


def decode_message(payload: bytes, limits: DecodeLimits) -> dict[str, Any]:
    """The JSON object of a message; InvalidObservation (with a code above) for anything else.

    Never raises another exception type: whatever the decoder raises becomes `not-json`.
    """
    if not payload:
        raise InvalidObservation("empty", "payload is empty")
    if len(payload) > limits.max_bytes:
        raise InvalidObservation(
            "too-large", f"payload has {len(payload)} bytes; at most {limits.max_bytes} allowed"
        )
    if payload.startswith(BOM):
        raise InvalidObservation(
            "encoding", "payload starts with a UTF-8 byte order mark; JSON text must not"
        )
    if too_deep(payload, limits.max_depth):
        raise InvalidObservation(
            "too-deep",
            f"arrays and objects nested more than {limits.max_depth} deep; "
            f"at most {limits.max_depth} allowed",
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidObservation(
            "encoding", f"payload is not UTF-8: byte {error.start} cannot be decoded"
        ) from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)
    except InvalidObservation:
        raise
    except json.JSONDecodeError as error:
        raise InvalidObservation("not-json", f"payload is not JSON: {error}") from None
    except Exception as error:  # noqa: BLE001 - any decoder failure is this message's alone
        raise InvalidObservation(
            "not-json", f"payload is not JSON: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(document, dict):
        raise InvalidObservation(
            "schema", f"payload is a JSON {type(document).__name__}, not an object"
        )
    return document
