"""What a pgstac catalog holds, read without writing, and how two catalogs differ.

The drill compares a restored database with the live one by every row: per collection, the
number of items and a digest of each item's id, content, geometry and datetimes, and a digest
of each collection's document, each read in one scan. A sample of items per collection, chosen
with a salt drawn for each run (so nobody knows beforehand which items it will be), names the
differing items in words: their asset hrefs, or that their content differs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

SAMPLE_PER_COLLECTION = 20

# The session settings the digests' text depends on, the same on both sides.
_SESSION = "-c default_transaction_read_only=on -c TimeZone=UTC -c DateStyle=ISO,YMD"
# The first statement of the transaction: its snapshot and this WAL position are (nearly) one
# moment; a commit between the two is caught by a retry (fedeploy.restore_drill.command).
_LSN = "SELECT pg_current_wal_lsn()::text"
_ROW_DIGEST = (
    "md5(concat_ws('|', content::text, geometry::text, datetime::text, end_datetime::text))"
)
_COLLECTIONS = "SELECT id, md5(content::text) FROM pgstac.collections ORDER BY id"
_ITEMS = f"""
SELECT collection, count(*), md5(string_agg(id || ':' || {_ROW_DIGEST}, ',' ORDER BY id))
FROM pgstac.items GROUP BY collection ORDER BY collection
"""
_SAMPLE = f"""
SELECT collection, id, coalesce(
    (SELECT jsonb_agg(h ORDER BY h) FROM jsonb_path_query(content, '$.assets.*.href') AS h),
    '[]'::jsonb), digest
FROM (
    SELECT collection, id, content, {_ROW_DIGEST} AS digest,
           row_number() OVER (PARTITION BY collection ORDER BY md5(%s || id), id) AS n
    FROM pgstac.items
) ranked
WHERE n <= %s
ORDER BY collection, id
"""


@dataclass(frozen=True)
class CatalogState:
    """Collections, item counts per collection and sampled items (id and asset hrefs), with the
    digests of every collection's document and of every collection's items (empty: not read),
    the sampled items' digests, and the WAL position of the read (None: not read)."""

    collections: tuple[str, ...]
    item_counts: dict[str, int] = field(hash=False)
    sample: dict[tuple[str, str], tuple[str, ...]] = field(hash=False)
    collection_digests: dict[str, str] = field(default_factory=dict, hash=False)
    item_digests: dict[str, str] = field(default_factory=dict, hash=False)
    sample_digests: dict[tuple[str, str], str] = field(default_factory=dict, hash=False)
    lsn: str | None = None


def new_salt() -> str:
    """A random salt choosing one run's sample (the same for both sides of that run)."""
    return secrets.token_hex(8)


def read_state(
    dsn: str,
    sample_per_collection: int = SAMPLE_PER_COLLECTION,
    salt: str = "",
    *,
    with_lsn: bool = False,
    options: str = "",
) -> CatalogState:
    """Read a catalog's state in one read-only, repeatable-read transaction (the live site is
    never written, and the reads see one snapshot); `with_lsn`: first read the server's current
    WAL position (a primary's), in the same transaction; `options`: more `-c` settings of the
    connection (the scratch server's)."""
    import psycopg

    with psycopg.connect(dsn, options=f"{_SESSION} {options}".strip()) as conn:
        # One snapshot for every read: a catalog written meanwhile is read as it was.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        lsn = None
        if with_lsn:
            row = conn.execute(_LSN).fetchone()
            lsn = str(row[0]) if row else None
        collections = {str(r[0]): str(r[1]) for r in conn.execute(_COLLECTIONS)}
        items = list(conn.execute(_ITEMS))
        rows: list[Any] = list(conn.execute(_SAMPLE, (salt, sample_per_collection)))  # type: ignore[arg-type]
    return CatalogState(
        tuple(collections),
        {row[0]: int(row[1]) for row in items},
        {(row[0], row[1]): tuple(str(h) for h in row[2]) for row in rows},
        collections,
        {row[0]: str(row[2]) for row in items},
        {(row[0], row[1]): str(row[3]) for row in rows},
        lsn,
    )


def differences(restored: CatalogState, live: CatalogState, limit: int = 20) -> list[str]:
    """Each way the restored catalog differs from the live one, in words; empty if identical."""
    found: list[str] = []
    for name in sorted(set(live.collections) - set(restored.collections)):
        found.append(f"collection {name!r} is live but not in the restored catalog")
    for name in sorted(set(restored.collections) - set(live.collections)):
        found.append(f"collection {name!r} is in the restored catalog but not live")
    for name in sorted(set(restored.collections) & set(live.collections)):
        have, want = restored.collection_digests.get(name), live.collection_digests.get(name)
        if have != want:
            found.append(f"collection {name!r}: its document differs")
    for name in sorted(set(restored.item_counts) | set(live.item_counts)):
        have_n, want_n = restored.item_counts.get(name, 0), live.item_counts.get(name, 0)
        if have_n != want_n:
            found.append(f"collection {name!r}: {have_n} items restored, {want_n} live")
        elif restored.item_digests.get(name) != live.item_digests.get(name):
            found.append(f"collection {name!r}: items differ (ids or content; same count)")
    for key in sorted(set(restored.sample) | set(live.sample)):
        have_hrefs, want_hrefs = restored.sample.get(key), live.sample.get(key)
        if have_hrefs is None or want_hrefs is None:
            where = "restored only" if want_hrefs is None else "live only"
            found.append(f"item {key[1]!r} in {key[0]!r}: sampled {where}")
        elif have_hrefs != want_hrefs:
            found.append(f"item {key[1]!r} in {key[0]!r}: asset hrefs differ")
        elif restored.sample_digests.get(key) != live.sample_digests.get(key):
            found.append(f"item {key[1]!r} in {key[0]!r}: content differs")
    if len(found) > limit:
        found = [*found[:limit], f"... and {len(found) - limit} more"]
    return found
