"""Stable partitioning of work over parallel workers (Job indexes, StatefulSet replicas)."""

from __future__ import annotations

import hashlib


def shard_of(key: str, count: int) -> int:
    """Which of `count` shards owns `key`; the same on every machine and Python version."""
    if count < 1:
        raise ValueError(f"shard count must be at least 1, got {count}")
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def owns(key: str, index: int, count: int) -> bool:
    """Whether shard `index` of `count` owns `key`."""
    return shard_of(key, count) == index


def owns_any(key: str, index: int, counts: tuple[int, ...]) -> bool:
    """Whether shard `index` owns `key` under any of `counts` (indexes past a count own
    nothing under it): the ownership of a replica while the replica count changes."""
    return any(index < count and shard_of(key, count) == index for count in counts)
