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


def test_the_views_over_a_table_count_and_tell_themselves_apart(conn):
    """Definitions, options, grants, comments, a materialized view's index and whether it is
    populated, of views reading the table directly or through another view."""
    before = _table(conn, "id int PRIMARY KEY, a text")
    changes = [
        "CREATE VIEW v AS SELECT id, a FROM t",
        "CREATE VIEW w AS SELECT a FROM v",
        "CREATE OR REPLACE VIEW w AS SELECT a, 1 AS one FROM v",
        "ALTER VIEW v SET (security_barrier = true)",
        "GRANT SELECT ON w TO PUBLIC",
        "COMMENT ON VIEW w IS 'x'",
        "CREATE MATERIALIZED VIEW m AS SELECT count(*) AS n FROM t WITH NO DATA",
        "REFRESH MATERIALIZED VIEW m",
        "CREATE INDEX m_n ON m (n)",
    ]
    seen = [before]
    for change in changes:
        conn.execute(change)
        now = schema_fingerprint(conn, T)
        assert compare_schema(seen[-1], now) == "dependent views", change
        seen.append(now)


def test_a_two_part_fingerprint_compares_without_the_views(conn):
    before = _table(conn, "id int PRIMARY KEY, a text")
    conn.execute("CREATE VIEW v AS SELECT a FROM t")
    recorded = before.rsplit(":", 1)[0]
    assert compare_schema(recorded, schema_fingerprint(conn, T)) is None
