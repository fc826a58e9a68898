"""What a pgstac catalog holds, read without writing, and how two catalogs differ.

The drill compares a restored database with the live one by what a user of the catalog sees:
the collections, the number of items in each, and a sample of items with their asset hrefs.
The sample is the same rows in both (the smallest md5 of the id per collection), so two
catalogs with the same items give the same sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLE_PER_COLLECTION = 20

_COLLECTIONS = "SELECT id FROM pgstac.collections ORDER BY id"
_COUNTS = "SELECT collection, count(*) FROM pgstac.items GROUP BY collection ORDER BY collection"
_SAMPLE = """
SELECT collection, id, coalesce(
    (SELECT jsonb_agg(h ORDER BY h) FROM jsonb_path_query(content, '$.assets.*.href') AS h),
    '[]'::jsonb)
FROM (
    SELECT collection, id, content,
           row_number() OVER (PARTITION BY collection ORDER BY md5(id), id) AS n
    FROM pgstac.items
) ranked
WHERE n <= %s
ORDER BY collection, id
"""


@dataclass(frozen=True)
class CatalogState:
    """Collections, item counts per collection and sampled items (id and asset hrefs)."""

    collections: tuple[str, ...]
    item_counts: dict[str, int] = field(hash=False)
    sample: dict[tuple[str, str], tuple[str, ...]] = field(hash=False)


def read_state(dsn: str, sample_per_collection: int = SAMPLE_PER_COLLECTION) -> CatalogState:
    """Read a catalog's state in one read-only, repeatable-read transaction (the live site is
    never written, and the three reads see one snapshot)."""
    import psycopg

    with psycopg.connect(dsn, options="-c default_transaction_read_only=on") as conn:
        # One snapshot for all three reads: a catalog written meanwhile is read as it was.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        collections = tuple(row[0] for row in conn.execute(_COLLECTIONS))
        counts = {row[0]: int(row[1]) for row in conn.execute(_COUNTS)}
        rows: list[Any] = list(conn.execute(_SAMPLE, (sample_per_collection,)))  # type: ignore[arg-type]
    sample = {(row[0], row[1]): tuple(str(h) for h in row[2]) for row in rows}
    return CatalogState(collections, counts, sample)


def differences(restored: CatalogState, live: CatalogState, limit: int = 20) -> list[str]:
    """Each way the restored catalog differs from the live one, in words; empty if identical."""
    found: list[str] = []
    for name in sorted(set(live.collections) - set(restored.collections)):
        found.append(f"collection {name!r} is live but not in the restored catalog")
    for name in sorted(set(restored.collections) - set(live.collections)):
        found.append(f"collection {name!r} is in the restored catalog but not live")
    for name in sorted(set(restored.item_counts) | set(live.item_counts)):
        have, want = restored.item_counts.get(name, 0), live.item_counts.get(name, 0)
        if have != want:
            found.append(f"collection {name!r}: {have} items restored, {want} live")
    for key in sorted(set(restored.sample) | set(live.sample)):
        have_hrefs, want_hrefs = restored.sample.get(key), live.sample.get(key)
        if have_hrefs is None or want_hrefs is None:
            where = "restored only" if want_hrefs is None else "live only"
            found.append(f"item {key[1]!r} in {key[0]!r}: sampled {where}")
        elif have_hrefs != want_hrefs:
            found.append(f"item {key[1]!r} in {key[0]!r}: asset hrefs differ")
    if len(found) > limit:
        found = [*found[:limit], f"... and {len(found) - limit} more"]
    return found
