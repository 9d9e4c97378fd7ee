"""backfill, both forms, over several partitions and batches: uuid, composite and partitioned
keys, NULLs, odd names; its parity checks, its refusals, and what user triggers do to it."""

from __future__ import annotations

import pytest
from operations.lifecycle import (
    assert_unchanged_by,
    down_all,
    engine_for,
    run_lifecycle,
    run_sql,
    up_all,
)
from operations.shop import SHOP, migration

from migration_dags.errors import (
    ColumnDoesNotExistError,
    NoPrimaryKeyError,
    RollbackFailedError,
    SchemaValidationError,
    SpecError,
    TableDoesNotExistError,
    ValidationFailedError,
)


def _count(conn, sql: str) -> int:
    return conn.execute(sql).fetchone()[0]


def test_set_backfills_over_uuid_composite_and_partitioned_keys(database_url, migrations_dir):
    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM orders WHERE note IS DISTINCT FROM "
                            "CASE WHEN total IS NULL THEN 'no total' END") == 0
        assert _count(conn, "SELECT count(*) FROM orders WHERE note = 'no total'") == 30
        assert _count(conn, """SELECT count(*) FROM customers WHERE "Email" IS NULL""") == 0
        assert _count(conn, '''SELECT count(*) FROM "Order Items"
                               WHERE quantity > 2 AND unit_price <> ceil("line ""no""" % 13 + 0.99)''') == 0
        assert _count(conn, "SELECT count(*) FROM events WHERE kind IS NULL") == 0

    run_lifecycle(database_url, migrations_dir, migration("fill_in", '''
        - backfill:
            table: orders
            set: {note: "CASE WHEN total IS NULL THEN 'no total' END"}
        - backfill:
            table: customers
            set: {Email: "lower(replace(name, ' ', '.')) || '@example.org'"}
            where: '"Email" IS NULL'
        - backfill:
            table: Order Items
            set: {unit_price: 'ceil(unit_price)'}
            where: 'quantity > 2'
        - backfill:
            table: events
            set: {kind: "'unknown'", payload: "payload || jsonb_build_object('filled', true)"}
            where: "kind IS NULL"
    '''), SHOP, after_up=after_up)


def test_several_partitions_and_batches_run(database_url, migrations_dir):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("fill_notes", """
        - backfill: {table: orders, set: {note: "'n' || id"}}
    """))
    engine.up("backup")
    engine.up("schema_change")
    assert len(engine.partitions()) >= 3  # 300 rows in partitions of 100, batches of 40
    report = engine.up("backfill")
    assert report.extra["rows"] == 300
    down_all(engine)


def test_backfill_of_a_column_added_by_the_same_migration(database_url, migrations_dir):
    """unbackfill leaves the new column alone (the rollback drops it), restores the old one."""
    run_lifecycle(database_url, migrations_dir, migration("add_and_fill", """
        - add_column: {table: orders, column: {name: total_cents, type: bigint}}
        - backfill:
            table: orders
            set: {total_cents: "(total * 100)::bigint", note: "'cents: ' || (total * 100)::bigint"}
            where: "total IS NOT NULL"
    """), SHOP)


INSERT_SETUP = '''
CREATE TABLE order_totals (order_id bigint PRIMARY KEY, items int NOT NULL, amount numeric(12, 2));
INSERT INTO order_totals VALUES (3, 99, 99.00), (6, 98, NULL);  -- orders the select skips
'''


def test_insert_backfill_into_a_new_table(database_url, migrations_dir):
    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM item_totals") == _count(
            conn, 'SELECT count(DISTINCT order_id) FROM "Order Items"')
        assert _count(conn, "SELECT count(*) FROM item_totals WHERE amount IS NULL") > 0

    run_lifecycle(database_url, migrations_dir, migration("totals_new", '''
        - create_table:
            table: item_totals
            columns:
              - {name: order_id, type: bigint, primary_key: true, references: "orders(id)"}
              - {name: items, type: int, nullable: false}
              - {name: amount, type: "numeric(12,2)"}
        - backfill:
            table: orders
            insert:
              into: item_totals
              columns: [order_id, items, amount]
              select: >
                SELECT o.id, count(*)::int, sum(i.quantity * i.unit_price)::numeric(12,2)
                FROM {rows} AS o JOIN "Order Items" AS i ON i.order_id = o.id
                GROUP BY o.id
    '''), SHOP, after_up=after_up)


def test_insert_backfill_into_an_existing_table(database_url, migrations_dir):
    """Rows already there are kept as they are (ON CONFLICT DO NOTHING); unbackfill deletes only
    the rows the backup does not have."""
    def after_up(conn):
        assert conn.execute("SELECT items FROM order_totals WHERE order_id = 3").fetchone() == (99,)
        assert _count(conn, "SELECT count(*) FROM order_totals") == 202  # 200 paid or shipped

    run_lifecycle(database_url, migrations_dir, migration("totals_existing", '''
        - backfill:
            table: orders
            insert:
              into: order_totals
              columns: [order_id, items, amount]
              select: "SELECT o.id, 0, o.total FROM {rows} AS o WHERE o.status <> 'new'"
    ''', extra="validation: {row_count: grows}"), SHOP + INSERT_SETUP, after_up=after_up)


def test_insert_parity_check_reports_missing_rows(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP + INSERT_SETUP)
    engine = engine_for(database_url, migrations_dir, migration("totals_check", '''
        - backfill:
            table: orders
            insert:
              into: order_totals
              columns: [order_id, items, amount]
              select: "SELECT o.id, 0, o.total FROM {rows} AS o"
    ''', extra="validation: {row_count: grows}"))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    with pytest.raises(ValidationFailedError, match=r"order_totals.backfill_0.inserted \(observed 2"):
        engine.up("validation")  # orders 3 and 6 were there before, with other values


def test_set_parity_check_reports_rows_changed_after_the_backfill(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("notes_check", """
        - backfill: {table: orders, set: {note: "'n' || id"}}
    """))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    conn.execute("UPDATE orders SET note = 'changed' WHERE id IN (7, 8)")  # the application
    with pytest.raises(ValidationFailedError, match=r"backfill_0.applied \(observed 2, e.g. keys \(7\), \(8\)"
                       r"; 2 of them written by the application since the backup \(a backfill `set` "
                       r"has no trigger"):
        engine.up("validation")


def test_a_non_idempotent_expression_is_caught_by_validation(database_url, migrations_dir):
    """Each row is updated once, but `total * 2` still differs from the row afterwards: the set
    expressions must give an already-backfilled row its own value again, and the check says so."""
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("doubling", """
        - backfill: {table: orders, set: {total: "total * 2"}, where: "total > 0"}
    """))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    with pytest.raises(ValidationFailedError, match=r"backfill_0.applied \(observed 270, e.g. keys "
                       r".*; 270 of them not written by the application: the set expressions must "
                       r"give a row the backfill wrote its own value again"):
        engine.up("validation")
    down_all(engine)  # unbackfill puts the totals back from the backup, so the proof passes


TOUCH = """
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
ALTER TABLE orders ADD COLUMN updated_at timestamptz NOT NULL DEFAULT '2024-01-01';
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE events ADD COLUMN updated_at timestamptz NOT NULL DEFAULT '2024-01-01';
CREATE TRIGGER events_touch BEFORE UPDATE ON events FOR EACH ROW EXECUTE FUNCTION touch();
"""


def test_user_triggers_do_not_fire_on_batches_and_the_round_trip_is_exact(database_url, migrations_dir):
    """updated_at triggers on a plain and a partitioned table (composite key): the batches run in
    replica mode, so the triggers leave every row alone; the tool's own sync trigger (add_column's,
    ENABLE ALWAYS) still keeps its column in step with the backfill's writes; up, down, up, down
    end exactly as before, with no restore."""
    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM orders WHERE updated_at <> '2024-01-01'") == 0
        assert _count(conn, "SELECT count(*) FROM events WHERE updated_at <> '2024-01-01'") == 0
        assert _count(conn, "SELECT count(*) FROM orders WHERE note IS DISTINCT FROM 'n' || id") == 0
        assert _count(conn, "SELECT count(*) FROM orders WHERE "
                            "note_len IS DISTINCT FROM length(note)") == 0
        assert _count(conn, "SELECT count(*) FROM events WHERE kind IS NULL") == 0
    run_sql(database_url, SHOP + TOUCH)
    engine = run_lifecycle(database_url, migrations_dir, migration("touchy", """
        - add_column: {table: orders, column: {name: note_len, type: int}, up: "length(note)"}
        - backfill: {table: orders, set: {note: "'n' || id"}}
        - backfill: {table: events, set: {kind: "coalesce(kind, 'none')"}}
    """), after_up=after_up)
    notes = "\n".join(engine.plan()["notes"])
    assert "orders_touch on orders (UPDATE)" in notes and "does not fire" in notes
    assert "events_touch on events (UPDATE)" in notes


def test_user_triggers_fire_makes_the_rollback_proof_fail(database_url, migrations_dir, conn):
    """`user_triggers: fire`: the batches fire the trigger like any write; unbackfill does not undo
    what it did, and the backup step's down refuses to call the tables equal."""
    run_sql(database_url, SHOP + TOUCH)
    engine = engine_for(database_url, migrations_dir, migration("touchy", """
        - backfill: {table: orders, set: {note: "'n' || id"}, where: "id <= 10", user_triggers: fire}
    """))
    assert "fires on its batches (user_triggers: fire)" in "\n".join(engine.plan()["notes"])
    up_all(engine)
    for step in ("cutover", "validation", "backfill", "schema_change"):
        engine.down(step)
    assert _count(conn, "SELECT count(*) FROM orders WHERE note IS NOT NULL") == 0
    assert _count(conn, "SELECT count(*) FROM orders WHERE updated_at <> '2024-01-01'") == 10
    with pytest.raises(RollbackFailedError, match=r"public.orders \(data"):
        engine.down("backup")


def test_foreign_keys_over_written_columns_are_checked_though_their_triggers_do_not_fire(
        database_url, migrations_dir):
    """Replica mode skips the FK triggers: validation's foreign key check stops an orphan."""
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("orphans", """
        - backfill: {table: orders, set: {customer_id: "md5('nobody')::uuid"}, where: "id <= 3"}
    """))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    with pytest.raises(ValidationFailedError, match=r"foreign_key.orders_customer_id_fkey \(observed 3"):
        engine.up("validation")
    down_all(engine)


def test_a_role_that_cannot_skip_triggers_is_told_before_any_change(database_url, migrations_dir):
    run_sql(database_url, SHOP + """
        DO $$ BEGIN CREATE ROLE mdg_plain LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
        GRANT ALL ON SCHEMA public TO mdg_plain; GRANT ALL ON ALL TABLES IN SCHEMA public TO mdg_plain;
        ALTER TABLE orders OWNER TO mdg_plain;
    """)
    import psycopg.conninfo
    url = psycopg.conninfo.make_conninfo(database_url, user="mdg_plain")
    engine = engine_for(url, migrations_dir, migration("plain", """
        - backfill: {table: orders, set: {note: "'n' || id"}}
    """))
    raised = assert_unchanged_by(database_url, lambda: engine.up("backup"), SchemaValidationError)
    assert "GRANT SET ON PARAMETER session_replication_role" in str(raised)


@pytest.mark.parametrize(
    "operation, error",
    [
        ("{table: nowhere, set: {a: '1'}}", TableDoesNotExistError),
        ("{table: orders, set: {nope: '1'}}", ColumnDoesNotExistError),
        ("{table: orders, set: {id: 'id + 1'}}", SchemaValidationError),
        ("{table: keyless, set: {n: 'n + 1'}}", NoPrimaryKeyError),
        ("{table: keyless, insert: {into: orders, columns: [id], select: 'SELECT n FROM {rows} k'}}",
         NoPrimaryKeyError),
        ("{table: orders, insert: {into: keyless, columns: [n], select: 'SELECT id FROM {rows} o'}}",
         NoPrimaryKeyError),
        ("{table: orders, insert: {into: orders, columns: [nope], select: 'SELECT id FROM {rows} o'}}",
         ColumnDoesNotExistError),
    ],
)
def test_backfill_refusals_change_nothing(database_url, migrations_dir, operation, error):
    run_sql(database_url, SHOP + "CREATE TABLE keyless (n int); INSERT INTO keyless VALUES (1), (2);")
    engine = engine_for(database_url, migrations_dir, migration("refused", f"- backfill: {operation}"))
    raised = assert_unchanged_by(database_url, lambda: engine.up("backup"), error)
    assert raised.where.endswith("operations[0].backfill")


@pytest.mark.parametrize(
    "operation, field",
    [
        ("{table: orders}", "set"),
        ("{table: orders, set: {note: 'x'}, insert: {into: t, columns: [a], select: 'x'}}", "set"),
        ("{table: orders, set: {}}", "set"),
        ("{table: orders, set: {note: 'x'}, where: ''}", "where"),
        ("{table: orders, insert: {into: t, columns: [a], select: 'SELECT 1 FROM orders'}}", "insert.select"),
        ("{table: orders, insert: {into: t, columns: [a], select: 'SELECT 1 FROM {rows} r'}, where: 'x'}",
         "where"),
    ],
)
def test_malformed_backfill_is_a_spec_error(migrations_dir, operation, field):
    with pytest.raises(SpecError) as caught:
        engine_for("postgresql://unused", migrations_dir, migration("bad", f"- backfill: {operation}"))
    assert caught.value.field == f"operations[0].backfill.{field}"


def test_undo_of_an_insert_into_a_created_table_deletes_its_rows(database_url, migrations_dir, conn):
    """The raw_sql's down deletes orders the flags reference; it runs before create_table's
    rollback drops the flags, so unbackfill must have emptied them (else: FK violation)."""
    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM order_flags") == 10

    run_lifecycle(database_url, migrations_dir, migration("flags_new", '''
        - create_table:
            table: order_flags
            columns:
              - {name: order_id, type: bigint, primary_key: true, references: "orders(id)"}
              - {name: flag, type: text}
        - raw_sql:
            table: orders
            up: "INSERT INTO orders (id, status) SELECT g, 'new' FROM generate_series(1001, 1010) g ON CONFLICT DO NOTHING"
            down: "DELETE FROM orders WHERE id > 1000"
        - backfill:
            table: orders
            insert:
              into: order_flags
              columns: [order_id, flag]
              select: "SELECT o.id, 'x' FROM {rows} AS o WHERE o.id > 1000"
    ''', extra="validation: {row_count: grows}"), SHOP, after_up=after_up)


def test_add_column_and_alter_column_take_user_triggers_fire_too(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP + TOUCH)
    engine = engine_for(database_url, migrations_dir, migration("touch_fill", """
        - add_column: {table: orders, column: {name: twice, type: numeric}, up: "total * 2",
                       user_triggers: fire}
        - alter_column: {table: events, column: kind, type: varchar(20), up: "kind::varchar(20)",
                         down: "kind::text"}
    """))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    # the trigger fired on every row the batches changed (30 have no total: nothing to fill)
    assert _count(conn, "SELECT count(*) FROM orders WHERE updated_at <> '2024-01-01'") == 270
    assert _count(conn, "SELECT count(*) FROM events WHERE updated_at <> '2024-01-01'") == 0


KEEP_IN_STEP = """
    - backfill:
        table: orders
        set: {note: "upper(status) || ':' || id"}
        where: "total IS NOT NULL"
        keep_in_step: true
"""


def test_keep_in_step_through_the_lifecycle(database_url, migrations_dir):
    def after_up(conn):
        assert conn.execute("SELECT count(*) FROM orders WHERE total IS NOT NULL AND "
                            "note IS DISTINCT FROM upper(status) || ':' || id").fetchone() == (0,)

    run_lifecycle(database_url, migrations_dir, migration("notes_in_step", KEEP_IN_STEP), SHOP,
                  after_up=after_up)


def test_keep_in_step_applies_the_set_to_live_writes_until_cutover(database_url, migrations_dir,
                                                                    conn):
    """Without it, a row the application writes after its batch fails validation
    (test_set_parity_check_reports_rows_changed_after_the_backfill)."""
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("notes_in_step", KEEP_IN_STEP))
    note = lambda key: conn.execute("SELECT note FROM orders WHERE id = %s", (key,)).fetchone()[0]
    for step in ("backup", "schema_change"):
        engine.up(step)
    conn.execute("INSERT INTO orders (id, status, total) VALUES (5001, 'new', 1), (5002, 'new', NULL)")
    assert (note(5001), note(5002)) == ("NEW:5001", None)  # where: only rows with a total
    engine.up("backfill")
    conn.execute("UPDATE orders SET status = 'paid', note = 'mine' WHERE id IN (7, 5001)")
    assert (note(7), note(5001)) == ("PAID:7", "PAID:5001")  # after their batch: still in step
    engine.up("validation")  # passes
    engine.up("cutover")  # the trigger goes: the new release writes the values itself
    conn.execute("UPDATE orders SET note = 'after' WHERE id = 5001")
    assert note(5001) == "after"
    down_all(engine)
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass "
                        "AND tgname LIKE 'mdg%%'").fetchone() == (0,)


def test_keep_in_step_goes_with_set(migrations_dir):
    with pytest.raises(SpecError, match="keep_in_step: goes with set"):
        engine_for("postgresql://unused", migrations_dir, migration("both", """
            - backfill:
                table: orders
                insert: {into: totals, columns: [id], select: "SELECT o.id FROM {rows} AS o"}
                keep_in_step: true
        """))
