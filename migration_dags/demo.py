"""The README's demo: a fresh `migration_dags_demo` database with 100,000 users and 100,000
old_table rows (NULLs and odd values), then every shipped migration through the CLI in depends_on
order, each `up` (expand: both shapes work, a new release may read the version schema) and then
`complete` (contract): one of them (swap_user_email) fails validation first on a duplicate the "application"
wrote, rolls itself back and is proven identical to before, and passes once the data is fixed;
then the last one comes down again (proof: identical to before its up), and the audit log.

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
from .demo_data import seed, seed_users  # noqa: F401  (seed_users: the tests' users table)
from .identifiers import quote

DEMO_DB = "migration_dags_demo"
MIGRATION = "add_email_verification"  # the one next_steps names unless told


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


def next_steps(url: str, embedded: bool, name: str = MIGRATION) -> list[str]:
    """What to run after the demo, with the URL that reaches its data; `name`: the migration the
    demo left rolled back."""
    exe = ".venv/bin/migration-dags"
    lines = [
        f"\n== next: the demo's database is still there, every migration applied but {name}; try",
        f"   export MIGRATION_DAGS_DATABASE_URL={shlex.quote(display_url(as_url(url)))}",
        f"   {exe} status swap_user_email  # each migration's steps and state",
        f"   {exe} plan {name}    # the SQL every step would run",
        f"   {exe} verify {name}  # what CI runs: up, down, exact fingerprint, up again, squawk",
        f"   {exe} up {name}      # expand it again",
        f"   {exe} complete {name}  # contract, once the new release runs",
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


def snapshot(url: str) -> tuple:
    """Every table's columns, indexes and a hash of its rows (the demo's own quick check)."""
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        found = []
        for table in tables:
            columns = conn.execute(
                """SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
                   WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum""",
                (quote(table),)).fetchall()
            indexes = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' "
                                   "AND tablename = %s ORDER BY indexname", (table,)).fetchall()
            data = conn.execute(f"SELECT count(*), sum(hashtextextended(t::text, 0)) FROM {quote(table)} t").fetchone()
            found.append((table, columns, indexes, data))
    return tuple(found)




class Demo:
    def __init__(self, url: str):
        from .cli import main as cli

        self.url, self.cli = url, cli

    def run(self, *command: str, title: str = "", expect: int = 0) -> int:
        print(f"\n== migration-dags {' '.join(command)}{': ' + title if title else ''}", flush=True)
        code = self.cli(["--database-url", self.url, *command])
        if code != expect:
            print(f"demo: `migration-dags {' '.join(command)}` exited {code}, not {expect}",
                  file=sys.stderr)
        return code

    def up(self, name: str) -> bool:
        """One migration up (expand: it stops at the expanded state), what a new release sees
        then, and complete (contract); for a scenario that must fail first: the failure, the proof
        that it rolled back, the fix, and the second up."""
        from .demo_scenarios import SCENARIOS, Scenario

        scenario = SCENARIOS.get(name) or Scenario(lambda _url: "applied")
        if scenario.prepare is not None:
            print(f"\n== {scenario.prepare(self.url)}", flush=True)
        if scenario.fix is not None:
            before = snapshot(self.url)
            if self.run("up", name, title="fails validation, rolls back", expect=3) != 3:
                return False
            same = snapshot(self.url) == before
            print(f"   rolled back; every table identical to before that up: {'yes' if same else 'NO'}")
            if not same:
                return False
            print(f"\n== {scenario.fix(self.url)}", flush=True)
        if self.run("up", name, title="expand: both shapes work; stops before cutover") != 0:
            return False
        if scenario.expanded is not None:
            print(f"   {scenario.expanded(self.url, name)}", flush=True)
        if self.run("complete", name, title="contract, once no old-shape write was seen") != 0:
            return False
        print(f"   {scenario.shows(self.url)}", flush=True)
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migration_dags.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="a server to use instead of the embedded one")
    args = parser.parse_args(argv)

    from .migration_set import MigrationSet

    started = time.monotonic()
    configured = settings.configured_database_url(args.database_url)
    server = configured or settings.database_url()
    url = fresh_demo_database(server)
    print(f"== server: {'configured' if configured else 'embedded PostgreSQL'}; the demo's "
          f"database: {display_url(as_url(url))}", flush=True)
    took = seed(url, args.rows)
    print(f"== seeded {args.rows:,} users and {args.rows:,} old_table rows in {took:.1f} s", flush=True)
    demo = Demo(url)
    names = [m.name for m in MigrationSet.load(settings.migrations_dir()).ordered()]
    if demo.run("list", title="the shipped migrations, in depends_on order"):
        return 1
    last = names[-1]
    for name in names:
        before_last = snapshot(url) if name == last else None
        if not demo.up(name):
            return 1
    if demo.run("status", last) or demo.run("down", last, title="a proven rollback of the last one"):
        return 1
    same = snapshot(url) == before_last
    print(f"   every table identical to before its up: {'yes' if same else 'NO'}", flush=True)
    if demo.run("audit", title="the audit log: every run above, from Dagster's run history"):
        return 1
    print(f"\n== the demo took {time.monotonic() - started:.0f} s; the runs are in Dagster's run "
          f"history at {settings.dagster_home().resolve()}")
    print("\n".join(next_steps(url, embedded=not configured, name=last)), flush=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
