"""The restore drill's read-only role, created or updated by the migration (backup.drill).

Its name and password come from the drill's Secret (mounted in /etc/fedeploy/drill-db, or the
folder DRILL_ROLE_SECRET_DIR names); it may log in (2 connections at most) and SELECT
pgstac.items and pgstac.collections, nothing else of pgstac's (it is no member of pgstac_read,
whose EXECUTE on pgstac's functions includes search(), which writes pgstac.searches). Its
statements, idle transactions and temporary files are bounded. The guarantee is the grants:
`default_transaction_read_only` is only a default the role may SET off, which the missing write
grants make harmless. Runs as the database's owner, after pgstac's migrations.
"""

import os
import pathlib

import psycopg
from psycopg import sql

secret = pathlib.Path(os.environ.get("DRILL_ROLE_SECRET_DIR", "/etc/fedeploy/drill-db"))
user = (secret / "username").read_text().strip()
password = (secret / "password").read_text().strip()
if not user or not password or user == os.environ.get("PGUSER"):
    raise SystemExit(
        "drill-role: the drill's Secret needs a username (not the owner's) and a password"
    )
with psycopg.connect("") as conn:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
    verb = sql.SQL("ALTER" if exists else "CREATE")
    role = sql.Identifier(user)
    conn.execute(
        sql.SQL(
            "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
            "PASSWORD {}"
        ).format(verb, role, sql.Literal(password))
    )
    conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 2").format(role))
    # A role created by an older chart was a member of pgstac_read.
    member = conn.execute(
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles r ON r.oid = m.member WHERE g.rolname = 'pgstac_read' AND r.rolname = %s",
        (user,),
    ).fetchone()
    if member:
        conn.execute(sql.SQL("REVOKE pgstac_read FROM {}").format(role))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA pgstac TO {}").format(role))
    conn.execute(sql.SQL("GRANT SELECT ON pgstac.items, pgstac.collections TO {}").format(role))
    for name, value in (
        ("default_transaction_read_only", "on"),
        ("statement_timeout", "1h"),
        ("idle_in_transaction_session_timeout", "10min"),
    ):
        conn.execute(
            sql.SQL("ALTER ROLE {} SET {} = {}").format(
                role, sql.Identifier(name), sql.Literal(value)
            )
        )
    # A superuser's setting (or one granted SET): where the owner may not, the other bounds stay.
    try:
        with conn.transaction():
            conn.execute(sql.SQL("ALTER ROLE {} SET temp_file_limit = '4GB'").format(role))
    except psycopg.errors.InsufficientPrivilege:
        print("drill-role: temp_file_limit not set (the owner may not set it)")
    conn.commit()
print(f"drill-role: {user} may SELECT pgstac.items and pgstac.collections only")
