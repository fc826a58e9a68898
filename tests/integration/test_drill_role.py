"""The restore drill's role in a real pgstac database (charts/catalog/files/drill-role.py): it
reads what the drill compares and nothing else; writes, searches and extra connections fail.

The guarantee is the grants (SELECT on pgstac.items and pgstac.collections, USAGE on the
schema): `default_transaction_read_only` is a default the role may SET off, harmless then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from fedeploy.restore_drill.catalog_state import read_state
from loopback import PostgresServer
from tests.conftest import ROOT, start_peer

pytestmark = pytest.mark.integration

ROLE = "catalog_drill"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """pgstac with a collection and an item, and the drill's role made by the chart's script
    (twice: the second run updates a role an older chart made a member of pgstac_read)."""
    work = tmp_path_factory.mktemp("drill-role")
    pg = start_peer(lambda: PostgresServer(work / "pg").start())
    try:
        pg.create_database("pgstac")
        with psycopg.connect(pg.dsn("pgstac"), autocommit=True) as conn:
            conn.execute(
                "SELECT pgstac.create_collection(%s::jsonb)",
                (json.dumps({"id": "c1", "type": "Collection", "extent": {}}),),
            )
            conn.execute(f"CREATE ROLE {ROLE} LOGIN IN ROLE pgstac_read")
        secret = work / "secret"
        secret.mkdir()
        (secret / "username").write_text(ROLE)
        (secret / "password").write_text("drill-secret")
        for _ in range(2):
            made = subprocess.run(
                [sys.executable, str(ROOT / "charts/catalog/files/drill-role.py")],
                env={**os.environ, "DRILL_ROLE_SECRET_DIR": str(secret), "PGHOST": "127.0.0.1",
                     "PGPORT": str(pg.port), "PGUSER": "postgres", "PGDATABASE": "pgstac"},
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert made.returncode == 0, made.stdout + made.stderr
        yield pg
    finally:
        pg.remove()


def _as_drill(pg: PostgresServer) -> str:
    return f"postgresql://{ROLE}@127.0.0.1:{pg.port}/pgstac"


def test_the_drill_role_reads_what_the_drill_compares(server: PostgresServer) -> None:
    state = read_state(_as_drill(server), 20, "salt", with_lsn=True)
    assert state.collections == ("c1",) and state.lsn


def test_a_write_through_search_is_refused_even_with_read_only_set_off(
    server: PostgresServer,
) -> None:
    with psycopg.connect(_as_drill(server), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute("SET search_path = pgstac, public")
        for query in (
            'SELECT count(*) FROM search(\'{"collections": ["c1"]}\'::jsonb)',
            'SELECT pgstac.create_collection(\'{"id": "evil"}\'::jsonb)',
            "DELETE FROM pgstac.items",
            "SELECT count(*) FROM pgstac.pgstac_settings",
        ):
            with pytest.raises(psycopg.Error):
                conn.execute(query)
    with psycopg.connect(server.dsn("pgstac")) as owner:
        assert owner.execute("SELECT count(*) FROM pgstac.searches").fetchone() == (0,)
        assert owner.execute(
            "SELECT count(*) FROM pgstac.collections WHERE id = 'evil'"
        ).fetchone() == (0,)


def test_the_drill_role_is_bounded_and_no_member_of_pgstac_read(server: PostgresServer) -> None:
    with psycopg.connect(server.dsn("pgstac")) as owner:
        limit, settings = owner.execute(
            "SELECT rolconnlimit, rolconfig FROM pg_roles WHERE rolname = %s", (ROLE,)
        ).fetchone()  # type: ignore[misc]
        member = owner.execute("SELECT pg_has_role(%s, 'pgstac_read', 'MEMBER')", (ROLE,))
        assert member.fetchone() == (False,)
    assert limit == 2
    assert {
        "default_transaction_read_only=on",
        "statement_timeout=1h",
        "idle_in_transaction_session_timeout=10min",
        "temp_file_limit=4GB",
    } <= set(settings)
    held = [psycopg.connect(_as_drill(server)) for _ in range(2)]
    try:
        with pytest.raises(psycopg.OperationalError, match="too many connections"):
            psycopg.connect(_as_drill(server))
    finally:
        for conn in held:
            conn.close()
