"""create_table through the lifecycle (not backed up: it is new), and its refusals."""

from __future__ import annotations

import psycopg
import pytest
from operations.lifecycle import assert_unchanged_by, engine_for, run_lifecycle, run_sql
from operations.shop import SHOP, migration

from migration_dags.errors import (
    ColumnDoesNotExistError,
    SpecError,
    TableAlreadyExistsError,
    TableDoesNotExistError,
)

TABLES = '''
- create_table:
    table: Customer Notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: "gen_random_uuid()"}
      - {name: customer_id, type: uuid, nullable: false, references: "customers(id)"}
      - {name: 'Body "text"', type: text, nullable: false}
      - {name: pinned, type: boolean, nullable: false, default: "false"}
      - {name: slug, type: "varchar(40)", unique: true}
- create_table:
    table: {schema: public, name: note_links}
    columns:
      - {name: note_id, type: uuid, references: {table: Customer Notes, column: id, on_delete: cascade}}
      - {name: order_id, type: bigint, references: "orders(id)"}
      - {name: parent_order_id, type: bigint}
    primary_key: [note_id, order_id]
'''


def test_create_tables_with_keys_references_and_odd_names(database_url, migrations_dir):
    def after_up(conn):
        key = conn.execute(
            """SELECT pg_get_constraintdef(oid) FROM pg_constraint
               WHERE conrelid = 'note_links'::regclass AND contype = 'p'""").fetchone()[0]
        assert key == "PRIMARY KEY (note_id, order_id)"
        customer = conn.execute("SELECT id FROM customers LIMIT 1").fetchone()[0]
        note = conn.execute(
            '''INSERT INTO "Customer Notes" (customer_id, "Body ""text""") VALUES (%s, 'hi')
               RETURNING id''', (customer,)).fetchone()[0]
        conn.execute("INSERT INTO note_links VALUES (%s, 1, NULL)", (note,))
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO note_links VALUES (%s, 999999, NULL)", (note,))
        conn.execute('DELETE FROM "Customer Notes"')  # cascades to note_links
        assert conn.execute("SELECT count(*) FROM note_links").fetchone()[0] == 0

    engine = run_lifecycle(database_url, migrations_dir, migration("notes", TABLES), SHOP,
                           after_up=after_up)
    assert engine.migration.existing_tables() == []  # nothing to back up


@pytest.mark.parametrize(
    "operation, error",
    [
        ("{table: orders, columns: [{name: id, type: int}]}", TableAlreadyExistsError),
        ("{table: t, columns: [{name: a, type: int, references: 'nowhere(id)'}]}", TableDoesNotExistError),
        ("{table: t, columns: [{name: a, type: int, references: 'orders(nope)'}]}", ColumnDoesNotExistError),
        ("{table: t, columns: [{name: a, type: int, references: 't(b)'}]}", ColumnDoesNotExistError),
    ],
)
def test_create_table_refusals_change_nothing(database_url, migrations_dir, operation, error):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("refused", f"- create_table: {operation}"))
    assert_unchanged_by(database_url, lambda: engine.up("backup"), error)


@pytest.mark.parametrize(
    "operation, field",
    [
        ("{table: t, columns: [{name: a, type: int}, {name: a, type: int}]}", "columns[1].name"),
        ("{table: t, columns: [{name: a, type: int}], primary_key: [b]}", "primary_key[0]"),
        ("{table: t, columns: [{name: a, type: int, primary_key: true}], primary_key: [a]}", "primary_key"),
        ("{table: t, columns: [{name: a, type: int, references: 'orders'}]}", "columns[0].references"),
        ("{table: t, columns: [{name: a, type: 'int; drop table x'}]}", "columns[0].type"),
        ("{table: t, columns: []}", "columns"),
    ],
)
def test_malformed_create_table_is_a_spec_error(migrations_dir, operation, field):
    with pytest.raises(SpecError) as caught:
        engine_for("postgresql://unused", migrations_dir, migration("bad", f"- create_table: {operation}"))
    assert caught.value.field == f"operations[0].create_table.{field}"
