"""`file:checksum` multihashes."""

from __future__ import annotations

import hashlib

import pytest
from fedeploy_ingestion.multihash import parse, sha256_multihash


def test_sha256_round_trip() -> None:
    digest = hashlib.sha256(b"data").digest()
    parsed = parse(sha256_multihash(digest))
    assert (parsed.algorithm, parsed.digest) == ("sha256", digest)
    hasher = parsed.new_hasher()
    hasher.update(b"data")
    assert hasher.digest() == digest


def test_md5_and_blake2b_are_understood() -> None:
    assert parse("d50110" + hashlib.md5(b"x").hexdigest()).algorithm == "md5"
    blake = hashlib.blake2b(b"x", digest_size=32).hexdigest()
    parsed = parse("a0e40220" + blake)  # code 0xb220 as a varint is a0 e4 02
    assert parsed.algorithm == "blake2b-256"
    hasher = parsed.new_hasher()
    hasher.update(b"x")
    assert hasher.hexdigest() == blake


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("zz", ["not hexadecimal"]),
        ("1f20" + "00" * 32, ["0x1f", "supported"]),
        ("1220" + "00" * 31, ["32 bytes"]),
        ("12", ["truncated"]),
    ],
)
def test_bad_checksums_are_explained(text: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as raised:
        parse(text)
    for word in words:
        assert word in str(raised.value)
