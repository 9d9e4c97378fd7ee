"""insert_rows: declared rows into a new table and into one that already has some; the exact undo
(rows there before stay), conflicts refused or kept, and its refusals at load time."""

from __future__ import annotations

import psycopg
import pytest
from operations.lifecycle import (
    assert_unchanged_by,
    down_all,
    engine_for,
    run_lifecycle,
    run_sql,
    up_all,
)
from operations.shop import migration

from migration_dags.errors import (
    ColumnDoesNotExistError,
    SpecError,
    StepFailedError,
    ValidationFailedError,
)

ROLES = """
CREATE TABLE roles (
    id serial PRIMARY KEY,
    name varchar(50) UNIQUE NOT NULL,
    description text,
    created_at timestamptz DEFAULT now(),
    tags text[],
    settings jsonb
);
INSERT INTO roles (name, description, created_at) VALUES
    ('admin', 'Everything', '2024-01-01 00:00:00+00'),
    ('auditor', 'Reads the logs', '2024-01-02 00:00:00+00');
"""


def _roles(conn) -> list[tuple]:
    return conn.execute("SELECT name, description, tags, settings FROM roles ORDER BY name").fetchall()


def test_declared_rows_into_a_new_table_are_undone_with_it(database_url, migrations_dir):
    def after_up(conn):
        names = conn.execute("SELECT name FROM roles ORDER BY name").fetchall()
        assert [r[0] for r in names] == ["admin", "guest", "user"]
        # a column a row does not name gets its default, not NULL
        assert conn.execute("SELECT count(*) FROM roles WHERE created_at IS NULL OR id IS NULL"
                            ).fetchone() == (0,)

    run_lifecycle(database_url, migrations_dir, migration("seed_roles", """
        - create_table:
            table: roles
            columns:
              - {name: id, type: serial, primary_key: true}
              - {name: name, type: varchar(50), nullable: false, unique: true}
              - {name: description, type: text}
              - {name: created_at, type: timestamptz, default: "now()"}
        - insert_rows:
            table: roles
            key: [name]
            rows:
              - {name: admin, description: Everything}
              - {name: user}
              - {name: guest, description: "Read only, it's \\\\ odd $mdg_insert_rows$"}
    """), after_up=after_up)


def test_undo_deletes_only_the_rows_it_inserted(database_url, migrations_dir):
    """admin is there with the declared values: left alone, never deleted; the others typed from
    JSON (an array, a jsonb mapping) and removed by down."""
    def after_up(conn):
        assert _roles(conn) == [
            ("admin", "Everything", None, None),
            ("auditor", "Reads the logs", None, None),
            ("guest", None, ["read", "o'dd"], {"level": 1, "nested": {"a": [1, None]}}),
            ("user", "Works here", None, None),
        ]
        recorded = conn.execute("SELECT key FROM migration_dags.inserted_rows ORDER BY key::text").fetchall()
        assert recorded == [({"name": "guest"},), ({"name": "user"},)]

    run_lifecycle(database_url, migrations_dir, migration("more_roles", """
        - insert_rows:
            table: roles
            key: name
            rows:
              - {name: admin, description: Everything}
              - {name: user, description: Works here}
              - {name: guest, tags: [read, "o'dd"], settings: {level: 1, nested: {a: [1, null]}}}
    """, "validation: {row_count: grows}"), ROLES, after_up=after_up)


def test_a_declared_row_there_with_other_values_is_refused_and_nothing_changes(database_url, migrations_dir):
    run_sql(database_url, ROLES)
    engine = engine_for(database_url, migrations_dir, migration("clash", """
        - insert_rows:
            table: roles
            key: [name]
            rows:
              - {name: user}
              - {name: admin, description: Only some things}
    """))
    engine.up("backup")
    error = assert_unchanged_by(database_url, lambda: engine.up("schema_change"), StepFailedError)
    assert "name=admin" in str(error) and "on_conflict: keep" in str(error)
    assert "operations[0].insert_rows" in str(error)
    down_all(engine)


def test_on_conflict_keep_leaves_the_existing_row_and_keeps_it_on_undo(database_url, migrations_dir):
    def after_up(conn):
        assert ("admin", "Everything", None, None) in _roles(conn)

    run_lifecycle(database_url, migrations_dir, migration("keep_admin", """
        - insert_rows:
            table: roles
            key: [name]
            on_conflict: keep
            rows:
              - {name: admin, description: Only some things}
              - {name: user}
    """, "validation: {row_count: grows}"), ROLES, after_up=after_up)


def test_validation_names_a_declared_row_the_application_changed_and_down_keeps_it(database_url, migrations_dir):
    run_sql(database_url, ROLES)
    engine = engine_for(database_url, migrations_dir, migration("changed", """
        - insert_rows: {table: roles, key: [name], rows: [{name: user, description: Works}]}
    """, "validation: {row_count: grows}"))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    run_sql(database_url, "UPDATE roles SET description = 'changed' WHERE name = 'user'")
    with pytest.raises(ValidationFailedError) as caught:
        engine.up("validation")
    assert "roles.insert_rows_0.present" in str(caught.value) and "name=user" in str(caught.value)
    down_all(engine)  # the application wrote that row: it stays as written, like every write
    with psycopg.connect(database_url) as conn:
        assert [r[:2] for r in _roles(conn)] == [
            ("admin", "Everything"), ("auditor", "Reads the logs"), ("user", "changed")]


def test_its_rows_are_the_tools_writes_not_the_applications(database_url, migrations_dir):
    """Change capture does not record them, so an exact row count sees the table grow."""
    run_sql(database_url, ROLES)
    engine = engine_for(database_url, migrations_dir, migration("grow", """
        - insert_rows: {table: roles, key: [name], rows: [{name: user}]}
    """))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    with pytest.raises(ValidationFailedError) as caught:
        engine.up("validation")
    assert "roles.row_count (observed 3)" in str(caught.value)
    down_all(engine)


def test_unknown_column_is_refused_before_anything_runs(database_url, migrations_dir):
    run_sql(database_url, ROLES)
    engine = engine_for(database_url, migrations_dir, migration("typo", """
        - insert_rows: {table: roles, key: [name], rows: [{name: x, descr: y}]}
    """))
    error = assert_unchanged_by(database_url, lambda: up_all(engine), ColumnDoesNotExistError)
    assert "rows[0]" in str(error) and "descr" in str(error)


@pytest.mark.offline
@pytest.mark.parametrize("body, found", [
    ("{table: roles, key: [name], rows: []}", "non-empty list of rows"),
    ("{table: roles, key: [name], rows: [{description: x}]}", "key column 'name'"),
    ("{table: roles, key: [name], rows: [{name: a}, {name: a}]}", "same key as rows[0]"),
    ("{table: roles, key: [name], rows: [x]}", "must be a mapping"),
    ("{table: roles, key: [name], rows: [{name: a}], on_conflict: update}", "on_conflict"),
])
def test_malformed_rows_are_refused_at_load(migrations_dir, body, found):
    from operations.lifecycle import write_migration

    with pytest.raises(SpecError) as caught:
        write_migration(migrations_dir, migration("bad_rows", f"- insert_rows: {body}"))
    assert found in str(caught.value)
