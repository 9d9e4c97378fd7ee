"""The catalog check of a query that reads a table an earlier operation of the same migration
creates: checked against a stand-in of the model's columns, which leaves nothing behind."""

from __future__ import annotations

import psycopg
import pytest
from operations.lifecycle import engine_for, run_sql

from migration_dags.errors import SchemaValidationError

MIGRATION = """
name: roles_for_all
operations:
  - create_table:
      table: roles
      columns:
        - {{name: id, type: serial, primary_key: true}}
        - {{name: name, type: text, nullable: false, unique: true}}
  - create_table:
      table: user_roles
      columns:
        - {{name: user_id, type: bigint}}
        - {{name: role_id, type: int}}
      primary_key: [user_id, role_id]
  - backfill:
      table: users
      insert:
        into: user_roles
        columns: [user_id, role_id]
        select: "SELECT u.id, r.{column} FROM {{rows}} AS u CROSS JOIN roles AS r WHERE r.name = 'user'"
"""


def _relations(url: str) -> list:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT relname FROM pg_class WHERE relname IN ('roles', 'user_roles')").fetchall()


def test_a_select_may_read_a_table_the_migration_creates(database_url, migrations_dir):
    run_sql(database_url, "CREATE TABLE users (id bigint PRIMARY KEY)")
    plan = engine_for(database_url, migrations_dir, MIGRATION.format(column="id")).plan()
    assert "CROSS JOIN roles AS r" in "\n".join(plan["backfill"])
    assert _relations(database_url) == []  # the stand-ins went with the rolled-back transaction


def test_a_wrong_column_of_such_a_table_is_refused(database_url, migrations_dir):
    run_sql(database_url, "CREATE TABLE users (id bigint PRIMARY KEY)")
    engine = engine_for(database_url, migrations_dir, MIGRATION.format(column="nope"))
    with pytest.raises(SchemaValidationError) as caught:
        engine.plan()
    assert "operations[2].backfill.insert.select" in str(caught.value)
    assert 'column r.nope does not exist' in str(caught.value)
    assert _relations(database_url) == []
