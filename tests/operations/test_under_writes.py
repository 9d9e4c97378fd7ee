"""Every operation type the issue names goes up and down while an application keeps writing the
table (inserts, updates of the very columns being migrated, deletes): each step raises nothing
(the CLI's exit 0), every row is right after up, and no application write is lost after down."""

from __future__ import annotations

import pytest

from operations.lifecycle import run_under_writes
from operations.writers import Workload

ROWS = 3000
SETUP = f"""
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, name text, price text, legacy text);
INSERT INTO users SELECT g, 'user' || g || '@Host' || (g % 7) || '.example', 'name ' || g,
       to_char(g % 100, 'FM990') || '.50', 'legacy ' || g
FROM generate_series(1, {ROWS}) AS g;
"""
SETTINGS = "settings: {batch_size: 100, partition_rows: 1000, lock_timeout_ms: 500, retries: 50}"


def email(rng) -> str:
    return f"w{rng.randrange(10**6)}@Writer{rng.randrange(5)}.example"


def workload(**changes) -> Workload:
    base = dict(
        table="users", key="id", initial_keys=range(1, ROWS + 1),
        insert=lambda rng, k: {"email": email(rng), "name": f"new {k}",
                               "price": f"{rng.randrange(100)}.25", "legacy": f"new legacy {k}"},
        updates=[lambda rng: {"email": email(rng)},
                 lambda rng: {"name": f"renamed {rng.randrange(10**6)}"},
                 lambda rng: {"price": f"{rng.randrange(100)}.75"},
                 lambda rng: {"legacy": f"written {rng.randrange(10**6)}"}],
    )
    base.update(changes)
    return Workload(**base)


def _count(conn, sql: str) -> int:
    return conn.execute(sql).fetchone()[0]


def test_add_column_with_up_under_writes(database_url, migrations_dir):
    """From schema_change on, the application is the new code: it writes domain too (before,
    the column does not exist and the write goes without it; after cutover the trigger is gone
    and the application alone keeps domain right)."""
    def with_domain(values):
        return {**values, "domain": values["email"].split("@")[1].lower()}

    base = workload()
    app_workload = workload(
        insert=lambda rng, k: with_domain(base.insert(rng, k)),
        updates=[lambda rng: with_domain({"email": email(rng)}), *base.updates[1:]],
        optional={"domain"})

    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM users WHERE domain IS DISTINCT FROM "
                            "lower(split_part(email, '@', 2))") == 0

    app = run_under_writes(database_url, migrations_dir, f"""
        name: add_domain
        tables: [users]
        {SETTINGS}
        operations:
          - add_column:
              table: users
              column: {{name: domain, type: text, nullable: false}}
              up: "lower(split_part(email, '@', 2))"
        """, SETUP, app_workload, after_up)
    assert app.counts["insert"] and app.counts["update"] and app.counts["delete"]


def test_alter_column_under_writes(database_url, migrations_dir):
    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = "
                            "'users' AND column_name = 'price' AND data_type = 'numeric'") == 1

    run_under_writes(database_url, migrations_dir, f"""
        name: price_numeric
        tables: [users]
        {SETTINGS}
        operations:
          - alter_column:
              table: users
              column: price
              type: numeric(10,2)
              up: "price::numeric(10,2)"
              down: "price::text"
        """, SETUP, workload(), after_up)


def test_backfill_of_an_existing_column_under_writes(database_url, migrations_dir):
    """The application writes emails already lower-case (as the new code does)."""
    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM users WHERE email <> lower(email)") == 0

    lower = workload(
        insert=lambda rng, k: {"email": email(rng).lower(), "name": f"new {k}", "price": "1.25",
                               "legacy": "l"},
        updates=[lambda rng: {"email": email(rng).lower()},
                 lambda rng: {"name": f"renamed {rng.randrange(10**6)}"}])
    run_under_writes(database_url, migrations_dir, f"""
        name: lower_emails
        tables: [users]
        {SETTINGS}
        operations:
          - backfill: {{table: users, set: {{email: "lower(email)"}}}}
        """, SETUP, lower, after_up)


def test_drop_column_under_writes(database_url, migrations_dir):
    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = "
                            "'users' AND column_name = 'legacy'") == 0

    run_under_writes(database_url, migrations_dir, f"""
        name: drop_legacy
        tables: [users]
        {SETTINGS}
        operations:
          - drop_column: {{table: users, column: legacy}}
        """, SETUP, workload(optional={"legacy"}), after_up)


def test_rename_column_under_writes(database_url, migrations_dir):
    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = "
                            "'users' AND column_name = 'full_name'") == 1

    run_under_writes(database_url, migrations_dir, f"""
        name: rename_name
        tables: [users]
        {SETTINGS}
        operations:
          - rename_column: {{table: users, from: name, to: full_name}}
        """, SETUP, workload(aliases={"name": ["full_name"]}), after_up)
