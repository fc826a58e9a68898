"""The catalog chart's migration Job, its queryables step run for real against pgstac."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from fedeploy.charts import render_chart
from loopback import PostgresServer
from tests.conftest import ROOT
from tests.peers import peer_fixture

pytestmark = pytest.mark.integration


postgres = peer_fixture(PostgresServer, "postgres", scope="module", teardown="remove")


def _migration_program(tmp_path) -> str:
    manifests = render_chart(
        ROOT / "charts/catalog",
        {"site": {"name": "test-site", "kind": "kubernetes"}, "database": {"existingSecret": "db"}},
        "catalog",
        "fedeploy",
    )
    (config_map,) = [
        m for m in manifests if m["kind"] == "ConfigMap" and "migrate" in m["metadata"]["name"]
    ]
    (job,) = [m for m in manifests if m["kind"] == "Job"]
    sql = tmp_path / "pgstac-queryables.sql"
    sql.write_text(config_map["data"]["pgstac-queryables.sql"])
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    program = script.split("exec python -c '", 1)[1].rsplit("'", 1)[0]
    return program.replace("/sql/pgstac-queryables.sql", str(sql))


def test_migration_job_registers_updated_queryable_idempotently(postgres, tmp_path):
    postgres.create_database("chartjob")
    postgres.execute(
        "chartjob",
        "SET search_path TO pgstac, public; DELETE FROM queryables WHERE name = 'updated'",
    )
    with psycopg.connect(postgres.dsn("chartjob")) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pgstac.queryables WHERE name = 'updated'"
        ).fetchone() == (0,)
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "PGUSER": "postgres",
        "PGDATABASE": "chartjob",
    }
    program = _migration_program(tmp_path)
    for _ in range(2):  # a re-run of the Job changes nothing
        subprocess.run([sys.executable, "-c", program], env=env, check=True, timeout=60)
    with psycopg.connect(postgres.dsn("chartjob")) as conn:
        rows = conn.execute(
            "SELECT property_wrapper FROM pgstac.queryables WHERE name = 'updated'"
        ).fetchall()
    assert rows == [("to_tstz",)]
