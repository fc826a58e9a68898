"""The multihash strings of STAC's `file:checksum`: parsing, and writing SHA-256 ones."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

# multicodec code -> (hashlib constructor name, digest length)
_CODES: dict[int, tuple[str, int]] = {
    0x11: ("sha1", 20),
    0x12: ("sha256", 32),
    0x13: ("sha512", 64),
    0xD5: ("md5", 16),
    0xB220: ("blake2b-256", 32),
    0xB240: ("blake2b-512", 64),
}


@dataclass(frozen=True)
class Digest:
    """A hash algorithm and the expected digest."""

    algorithm: str
    digest: bytes

    def new_hasher(self) -> Any:
        """A fresh hashlib object for this algorithm."""
        return new_hasher(self.algorithm)


def new_hasher(algorithm: str) -> Any:
    """A hashlib object for one of the algorithms that `parse` returns."""
    if algorithm.startswith("blake2b-"):
        return hashlib.blake2b(digest_size=int(algorithm.split("-")[1]) // 8)
    return hashlib.new(algorithm)


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return value, position
        shift += 7


def parse(text: str) -> Digest:
    """Parse a hex multihash such as `1220<64 hex digits>`; ValueError says what is wrong."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"file:checksum {text!r} is not hexadecimal") from None
    code, position = _varint(raw, 0)
    length, position = _varint(raw, position)
    if code not in _CODES:
        known = ", ".join(f"0x{c:x} ({n})" for c, (n, _) in _CODES.items())
        raise ValueError(f"file:checksum uses multihash code 0x{code:x}; supported: {known}")
    algorithm, expected_length = _CODES[code]
    digest = raw[position:]
    if length != expected_length or len(digest) != length:
        raise ValueError(
            f"file:checksum {text!r}: {algorithm} digests are {expected_length} "
            f"bytes, this one declares {length} and has {len(digest)}"
        )
    return Digest(algorithm, digest)


def sha256_multihash(digest: bytes) -> str:
    """The `file:checksum` form of a SHA-256 digest."""
    return "1220" + digest.hex()
