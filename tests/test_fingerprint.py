"""fingerprint: the schema proof sees column order, comments, grants and trigger state, and tells
an order-only difference from any other."""

from __future__ import annotations

from migration_dags.fingerprint import compare_schema, schema_fingerprint
from migration_dags.identifiers import TableName

T = TableName("public", "t")


def _table(conn, columns: str) -> str:
    conn.execute("DROP TABLE IF EXISTS t")
    conn.execute(f"CREATE TABLE t ({columns})")
    return schema_fingerprint(conn, T)


def test_column_order_is_a_difference_of_its_own(conn):
    before = _table(conn, "id int PRIMARY KEY, a text, b int")
    assert compare_schema(before, _table(conn, "id int PRIMARY KEY, a text, b int")) is None
    assert compare_schema(before, _table(conn, "id int PRIMARY KEY, b int, a text")) == "column order"
    assert compare_schema(before, _table(conn, "id int PRIMARY KEY, b int, a varchar")) == "schema"


def test_comments_grants_and_disabled_triggers_count(conn):
    before = _table(conn, "id int PRIMARY KEY, a text")
    for change in ("COMMENT ON COLUMN t.a IS 'x'", "COMMENT ON TABLE t IS 'x'",
                   "GRANT SELECT ON t TO PUBLIC", "GRANT SELECT (a) ON t TO PUBLIC"):
        _table(conn, "id int PRIMARY KEY, a text")
        conn.execute(change)
        assert compare_schema(before, schema_fingerprint(conn, T)) == "schema", change
    _table(conn, "id int PRIMARY KEY, a text")
    conn.execute("CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$")
    conn.execute("CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()")
    with_trigger = schema_fingerprint(conn, T)
    conn.execute("ALTER TABLE t DISABLE TRIGGER tr")
    assert compare_schema(with_trigger, schema_fingerprint(conn, T)) == "schema"


def test_a_fingerprint_recorded_before_column_order_counted_compares_whole(conn):
    assert compare_schema("0" * 32, "0" * 32 + ":" + "1" * 32) == "schema"
