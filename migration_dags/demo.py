"""The README's demo: a fresh `migration_dags_demo` database with 100,000 users, then the shipped
migration add_email_verification through the CLI: plan, up, status, down, and a check that the
database is back to what it was.

    python -m migration_dags.demo [--rows N] [--database-url URL]

Without a URL (or MIGRATION_DAGS_DATABASE_URL) it starts the embedded PostgreSQL.  Only the
database named migration_dags_demo is ever dropped and re-created.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from urllib.parse import quote as url_quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from . import settings
from .db import display_url, libpq_url
from .identifiers import quote

DEMO_DB = "migration_dags_demo"
MIGRATION = "add_email_verification"


def with_database(url: str, database: str) -> str:
    """The same server, another database, as a key=value connection string (from a TCP or
    unix-socket URL, or from key=value pairs)."""
    return make_conninfo(libpq_url(url), dbname=database)


def as_url(conninfo: str) -> str:
    """A key=value connection string as a postgresql:// URL, the form users paste into
    --database-url or MIGRATION_DAGS_DATABASE_URL (a socket folder goes in ?host=)."""
    if "://" in conninfo:
        return conninfo
    p = conninfo_to_dict(conninfo)
    user = url_quote(p.pop("user", ""), safe="")
    password = p.pop("password", None)
    auth = f"{user}:{url_quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host, port, dbname = p.pop("host", ""), p.pop("port", ""), url_quote(p.pop("dbname", ""), safe="")
    query = dict(p)
    if host.startswith("/"):
        query["host"], host = host, ""
    netloc = f"{host}:{port}" if host and port else host
    if port and not host:
        query["port"] = port
    tail = "&".join(f"{k}={url_quote(str(v), safe='/')}" for k, v in query.items())
    return f"postgresql://{auth}{netloc}/{dbname}" + (f"?{tail}" if tail else "")


def next_steps(url: str, embedded: bool) -> list[str]:
    """What to run after the demo, with the URL that reaches its data."""
    exe = ".venv/bin/migration-dags"
    lines = [
        "\n== next: the demo's database is still there, migration rolled back; try",
        f"   export MIGRATION_DAGS_DATABASE_URL={shlex.quote(display_url(as_url(url)))}",
        f"   {exe} plan {MIGRATION}    # the SQL every step would run",
        f"   {exe} verify {MIGRATION}  # what CI runs: up, down, exact fingerprint, up again, squawk",
        f"   {exe} up {MIGRATION}      # apply it for real",
        f"   {exe} ui                             # the Dagster UI with the demo's runs (Runs), http://127.0.0.1:3000",
    ]
    if embedded:
        from .embedded import embedded_status

        status = embedded_status()
        if status.running:
            lines.append(f"== the embedded PostgreSQL is still running (pid {status.pid}, data in "
                         f"{status.folder}); stop it: {exe} embedded stop")
    return lines


def fresh_demo_database(server_url: str) -> str:
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {quote(DEMO_DB)} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {quote(DEMO_DB)}")
    return with_database(server_url, DEMO_DB)


def seed_users(url: str, rows: int) -> float:
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """CREATE TABLE users (
                   id bigserial PRIMARY KEY,
                   email text NOT NULL UNIQUE,
                   full_name text,
                   created_at timestamptz NOT NULL DEFAULT now())"""
        )
        conn.execute(
            """INSERT INTO users (email, full_name, created_at)
               SELECT 'user' || g || '@example.com',
                      CASE WHEN g %% 10 = 0 THEN NULL ELSE 'User ' || g END,
                      now() - (g %% 90) * interval '1 day' - (g %% 997) * interval '1 minute'
               FROM generate_series(1, %s) g""",
            (rows,),
        )
        conn.execute("ANALYZE users")
    return time.monotonic() - started


def snapshot(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            """SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
               WHERE attrelid = 'users'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"""
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'users' ORDER BY indexname"
        ).fetchall()
        data = conn.execute(
            "SELECT count(*), sum(hashtextextended(u::text, 0)) FROM users u"
        ).fetchone()
    return columns, indexes, data


def new_release_writes(url: str) -> str:
    """What a new release of the application does while the migration is expanded: it puts the
    version schema first on its search_path and writes the new shape, beside the old release."""
    schema = f"public_{MIGRATION}"
    with psycopg.connect(url, options=f"-c search_path={schema},public") as conn:
        # a write that leaves the data as it was, so the demo's final proof compares exactly
        key, verified = conn.execute(
            "UPDATE users SET email_verified = email_verified WHERE id = (SELECT min(id) FROM "
            "users) RETURNING id, email_verified").fetchone()
    return (f"   a new release (SET search_path = {schema}, public) updated user {key} through "
            f"the new shape (email_verified = {verified}) while the old release keeps using public")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migration_dags.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="a server to use instead of the embedded one")
    args = parser.parse_args(argv)

    from .cli import main as cli

    configured = settings.configured_database_url(args.database_url)
    server = configured or settings.database_url()
    url = fresh_demo_database(server)
    print(f"== server: {'configured' if configured else 'embedded PostgreSQL'}; the demo's "
          f"database: {display_url(as_url(url))}", flush=True)
    took = seed_users(url, args.rows)
    print(f"== seeded {args.rows:,} users in {took:.1f} s", flush=True)
    before = snapshot(url)
    common = ["--database-url", url]
    steps = [
        ("plan (the SQL every step would run; changes nothing)", ["plan", MIGRATION]),
        ("up (expand: both shapes work; stops before cutover)", ["up", MIGRATION]),
        ("status", ["status", MIGRATION]),
        ("complete (contract, once no old-shape write was seen for the quiet period)",
         ["complete", MIGRATION]),
        ("status", ["status", MIGRATION]),
        ("down", ["down", MIGRATION]),
        ("status after down", ["status", MIGRATION]),
    ]
    for title, command in steps:
        print(f"\n== migration-dags {' '.join(command)}: {title}", flush=True)
        code = cli(common + command)
        if code != 0:
            print(f"demo: `migration-dags {' '.join(command)}` exited {code}", file=sys.stderr)
            return code
        if command[0] == "up":
            print(new_release_writes(url), flush=True)
        if command[0] == "complete":
            with psycopg.connect(url) as conn:
                verified = conn.execute("SELECT count(*) FILTER (WHERE email_verified), count(*) FROM users").fetchone()
            print(f"   users verified: {verified[0]:,} of {verified[1]:,}", flush=True)
    same = snapshot(url) == before
    print(f"\n== after down, schema and data identical to before: {'yes' if same else 'NO'}")
    print(f"   the runs are in Dagster's run history at {settings.dagster_home().resolve()}")
    print("\n".join(next_steps(url, embedded=not configured)), flush=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
