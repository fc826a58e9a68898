"""The restore drill's read-only role, created or updated by the migration (backup.drill).

Its name and password come from the drill's Secret (mounted in /etc/fedeploy/drill-db, or the
folder DRILL_ROLE_SECRET_DIR names); it may
log in, is a member of pgstac_read only (pgstac's read-only role) and reads in read-only
transactions by default. Runs as the database's owner, after pgstac's migrations.
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
    conn.execute(sql.SQL("GRANT pgstac_read TO {}").format(role))
    conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role))
    conn.commit()
print(f"drill-role: {user} reads the catalog through pgstac_read")
