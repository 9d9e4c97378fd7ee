"""The README's demo: a fresh `migration_dags_demo` database with 100,000 users, then the shipped
migration add_email_verification through the CLI: plan, up, status, down, and a check that the
database is back to what it was.

    python -m migration_dags.demo [--rows N] [--database-url URL]

Without a URL (or MIGRATION_DAGS_DATABASE_URL) it starts the embedded PostgreSQL.  Only the
database named migration_dags_demo is ever dropped and re-created.
"""

from __future__ import annotations

import argparse
import sys
import time

import psycopg
from psycopg.conninfo import make_conninfo

from . import settings
from .db import display_url, libpq_url
from .identifiers import quote

DEMO_DB = "migration_dags_demo"
MIGRATION = "add_email_verification"


def with_database(url: str, database: str) -> str:
    """The same server, another database, as a key=value connection string (from a TCP or
    unix-socket URL, or from key=value pairs)."""
    return make_conninfo(libpq_url(url), dbname=database)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migration_dags.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="a server to use instead of the embedded one")
    args = parser.parse_args(argv)

    from .cli import main as cli

    configured = settings.configured_database_url(args.database_url)
    server = configured or settings.database_url()
    print(f"== server: {'configured' if configured else 'embedded PostgreSQL'} "
          f"({display_url(server)})", flush=True)
    url = fresh_demo_database(server)
    took = seed_users(url, args.rows)
    print(f"== seeded {args.rows:,} users in {took:.1f} s", flush=True)
    before = snapshot(url)
    common = ["--database-url", url]
    steps = [
        ("plan (the SQL every step would run; changes nothing)", ["plan", MIGRATION]),
        ("up", ["up", MIGRATION]),
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
            with psycopg.connect(url) as conn:
                verified = conn.execute("SELECT count(*) FILTER (WHERE email_verified), count(*) FROM users").fetchone()
            print(f"   users verified: {verified[0]:,} of {verified[1]:,}", flush=True)
    same = snapshot(url) == before
    print(f"\n== after down, schema and data identical to before: {'yes' if same else 'NO'}")
    print("   the runs are in Dagster's run history: `dagster dev -w workspace.yaml`, then Runs")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
