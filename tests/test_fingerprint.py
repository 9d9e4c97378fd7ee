"""fingerprint: the schema proof sees column order, comments, grants and trigger state, and tells
an order-only difference from any other."""

from __future__ import annotations

import psycopg

from migration_dags.fingerprint import (
    FINGERPRINT_VERSION, compare_schema, data_fingerprint, is_legacy, schema_fingerprint,
)
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
    recorded = ":".join(before.split(":")[:2])
    assert compare_schema(recorded, schema_fingerprint(conn, T)) is None


# -- data fingerprints (v2: typed row hashes) ------------------------------------------------------
def _data(conn, value_sql: str, typ: str) -> str:
    conn.execute("DROP TABLE IF EXISTS t")
    conn.execute(f"CREATE TABLE t (id int PRIMARY KEY, v {typ})")
    conn.execute(f"INSERT INTO t VALUES (1, {value_sql})")
    return data_fingerprint(conn, T)[1]


def test_values_that_compare_equal_but_print_differently_have_different_fingerprints(conn):
    # the type's own equality (and hash) calls these equal; the proof must not
    for typ, a, b in [
        ("numeric", "1.0", "1.00"),
        ("jsonb", """'{"a": 1.0}'""", """'{"a": 1.00}'"""),
        ("float8", "'0'", "'-0'"),
        ("interval", "'1 day'", "'24 hours'"),
        ("int[]", "'{1,2}'", "'[0:1]={1,2}'"),
        ("text COLLATE \"und-x-icu\"", "'a'", "'A'"),
        ("text COLLATE mdg_case_insensitive", "'a'", "'A'"),  # equal under a non-deterministic one
        ("citext_like_domain", "'a'", "'A'"),
    ]:
        if typ == "text COLLATE mdg_case_insensitive":
            conn.execute("CREATE COLLATION IF NOT EXISTS mdg_case_insensitive "
                         "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)")
        if typ == "citext_like_domain":
            conn.execute("DROP TABLE IF EXISTS t")
            conn.execute("DROP DOMAIN IF EXISTS citext_like_domain")
            conn.execute("CREATE DOMAIN citext_like_domain AS text")
        assert _data(conn, a, typ) != _data(conn, b, typ), (typ, a, b)


def test_the_fingerprint_is_the_same_for_the_same_rows_and_sees_any_change(conn):
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, e text, n numeric, at timestamptz, j jsonb, "
                 "u uuid, b bytea, f bool)")
    conn.execute("""INSERT INTO t SELECT g, 'e' || g, g / 3.0, '2026-01-01'::timestamptz + g * interval '1 s',
                    jsonb_build_object('g', g), md5(g::text)::uuid, decode(md5(g::text), 'hex'), g % 2 = 0
                    FROM generate_series(1, 50) g""")
    before = data_fingerprint(conn, T)
    assert before[1].startswith(f"{FINGERPRINT_VERSION}:50:")
    assert data_fingerprint(conn, T) == before
    for change in ("UPDATE t SET e = 'x' WHERE id = 3", "UPDATE t SET at = at + interval '1 us' WHERE id = 4",
                   "UPDATE t SET f = NOT f WHERE id = 5", "UPDATE t SET e = NULL WHERE id = 6"):
        with conn.transaction():
            conn.execute(change)
            assert data_fingerprint(conn, T) != before, change
            raise psycopg.Rollback()
        assert data_fingerprint(conn, T) == before


def test_a_fingerprint_recorded_before_v2_is_recomputed_the_old_way(conn):
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, e text)")
    conn.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    old = data_fingerprint(conn, T, legacy=True)[1]
    assert is_legacy(old) and not is_legacy(data_fingerprint(conn, T)[1])
    total = conn.execute("SELECT sum(hashtextextended(ROW(t.e, t.id)::text, 0)) FROM t").fetchone()[0]
    assert old == f"2:{total}"


def test_a_partitions_index_constraint_or_trigger_changes_the_fingerprint(conn):
    """A CREATE INDEX on the parent takes over an equivalent index a partition has, and dropping
    it drops that one too: the parent's own definition does not show it, the partitions' part does."""
    conn.execute("CREATE TABLE p (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)")
    conn.execute("CREATE TABLE p_1 PARTITION OF p FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
    conn.execute("CREATE TABLE p_2 PARTITION OF p FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') "
                 "PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE p_2_all PARTITION OF p_2 DEFAULT")
    table = TableName("public", "p")
    before = schema_fingerprint(conn, table)
    for change, undo in [
        ("CREATE INDEX p_1_own ON p_1 (at)", "DROP INDEX p_1_own"),
        ("ALTER TABLE p_2_all ADD CONSTRAINT positive CHECK (id > 0)",
         "ALTER TABLE p_2_all DROP CONSTRAINT positive"),
        ("CREATE TRIGGER t BEFORE INSERT ON p_2_all FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
         "DROP TRIGGER t ON p_2_all"),
    ]:
        conn.execute(change)
        assert compare_schema(before, schema_fingerprint(conn, table)) == "partitions", change
        conn.execute(undo)
        assert compare_schema(before, schema_fingerprint(conn, table)) is None, undo
    # a fingerprint recorded before partitions were covered compares on its three parts
    assert compare_schema(":".join(before.split(":")[:3]), schema_fingerprint(conn, table)) is None
