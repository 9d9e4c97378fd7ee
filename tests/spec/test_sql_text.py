"""SQL fragments of a migration file, read with PostgreSQL's parser: one expression where one is
meant, one type name, one SELECT, raw_sql's statements; and the functions an expression may call."""

from __future__ import annotations

import textwrap

import pytest

from migration_dags.errors import SpecError
from migration_dags.spec import load_migration
from migration_dags.spec.functions import refusal
from migration_dags.spec.sql_text import (
    FunctionName,
    expression_problem,
    function_calls,
    expression_tree,
    query_tree,
    SqlProblem,
    statements,
    type_problem,
)

pytestmark = pytest.mark.offline

EXPRESSIONS = [
    "false", "0", "now()", "lower(email)", "id % 2 = 0", "'it''s; fine -- really'",
    "created_at < now() - interval '30 days'", "CASE WHEN a THEN 1 ELSE 2 END",
    "x IN (1, 2)", "(SELECT max(id) FROM orders o WHERE o.user_id = users.id)",
    "replace(price, ',', '.')::numeric(10,2)", "(ARRAY[1, 2])[1]", "'été'",
]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_an_expression_is_accepted(text):
    assert expression_problem(text) is None


NOT_ONE_EXPRESSION = {
    "statement_after": ("false; drop table users", "not statements"),
    "escapes_parentheses": ("id < 3) or (true", "closes a bracket"),
    "second_target": ("1) AS x, (2", "closes a bracket"),
    "line_comment": ("true -- and then", "comment"),
    "block_comment": ("true /* x */", "comment"),
    "dollar_quote": ("$$x$$", "dollar-quoted"),
    "closes_trigger_body": ("$migration_dags$ || 1", "dollar-quoted"),
    "parameter": ("$1", "parameter"),
    "open_bracket": ("lower(x", "open"),
    "unterminated_string": ("'abc", "not valid SQL"),
    "select_statement": ("SELECT 1", "not valid SQL"),
    "alias": ("1 AS x", "not valid SQL"),
    "from_clause": ("1 FROM users", "not valid SQL"),
    "write_in_cte": ("(WITH d AS (DELETE FROM users RETURNING 1) SELECT 1)", "DELETE"),
    "select_into": ("(SELECT 1 INTO t)", "SELECT INTO"),
    "deep_parentheses": ("(" * 50_000 + "1" + ")" * 50_000, "too long"),
    "long_chain": ("+".join(["1"] * 30_000), "too long"),
    "deep_but_short": ("(" * 101 + "1" + ")" * 101, "deeper than 100"),
}


@pytest.mark.parametrize("case", NOT_ONE_EXPRESSION, ids=list(NOT_ONE_EXPRESSION))
def test_what_is_not_exactly_one_expression_is_refused(case):
    text, words = NOT_ONE_EXPRESSION[case]
    assert words in (expression_problem(text) or "")


@pytest.mark.parametrize("text", ["text", "numeric(10,2)", "timestamp with time zone", "int[]",
                                  '"char"', "double precision", "varchar(20)[]", "sales.money"])
def test_a_type_name_is_accepted(text):
    assert type_problem(text) is None


@pytest.mark.parametrize("text", ["int; DROP TABLE t", "text) , (1", "int::text", "int -- x",
                                  "int DEFAULT 1", "1", "text collate \"C\""])
def test_what_is_not_one_type_name_is_refused(text):
    assert type_problem(text) is not None


def test_a_query_is_one_select_that_only_reads():
    query_tree("SELECT o.id, sum(o.n) FROM (SELECT 1) AS o GROUP BY 1")
    for text, words in [("SELECT 1; DROP TABLE t", "statements"), ("DELETE FROM t", "one SELECT"),
                        ("SELECT 1 INTO t", "SELECT INTO"), ("SELECT 1 -- x", "comment"),
                        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE")]:
        with pytest.raises(SqlProblem, match=words):
            query_tree(text)


def test_raw_sql_statements_are_split_as_written():
    text = "CREATE VIEW v AS SELECT 'a;b' AS x; COMMENT ON VIEW v IS 'é';\n  GRANT SELECT ON v TO public"
    assert statements(text) == [
        "CREATE VIEW v AS SELECT 'a;b' AS x", "COMMENT ON VIEW v IS 'é'", "GRANT SELECT ON v TO public"
    ]
    with pytest.raises(SqlProblem, match="not valid SQL"):
        statements("CREATE VIEW v AS SELEC 1")
    with pytest.raises(SqlProblem, match="no statement"):
        statements("-- only a comment")


def test_function_calls_are_found_at_any_depth():
    tree = expression_tree("coalesce(pg_catalog.lower(x), (SELECT pg_sleep(1)), upper(y))")
    assert set(function_calls(tree)) == {
        FunctionName("pg_catalog", "lower"), FunctionName(None, "pg_sleep"), FunctionName(None, "upper")
    }


@pytest.mark.parametrize("name", ["pg_terminate_backend", "pg_cancel_backend", "dblink_exec",
                                  "pg_read_file", "lo_import", "set_config", "pg_sleep", "nextval",
                                  "setval", "pg_advisory_lock", "query_to_xml", "pg_notify"])
def test_functions_with_side_effects_are_refused_unless_allowed(name):
    function = FunctionName(None, name)
    assert "side effects" in refusal(function, ())
    assert refusal(function, (name,)) is None
    assert refusal(FunctionName("pg_catalog", name), ()) is not None


def test_sequences_may_be_used_in_a_column_default():
    assert refusal(FunctionName(None, "nextval"), (), column_default=True) is None
    assert refusal(FunctionName(None, "pg_sleep"), (), column_default=True) is not None


def test_a_function_outside_pg_catalog_needs_allowing():
    function = FunctionName("app", "normalise")
    assert "not a built-in" in refusal(function, ())
    assert refusal(function, ("app.normalise",)) is None
    assert refusal(FunctionName(None, "lower"), ()) is None


# -- through the loader: one line naming file and field -------------------------------------------
def load(folder, text):
    path = folder / "m.yaml"
    path.write_text("name: m\n" + textwrap.dedent(text))
    return load_migration(path)


INJECTIONS = {
    "default_statement": ("""
        operations:
          - add_column: {table: users, column: {name: c, type: boolean, default: "false; drop table users"}}
        """, "operations[0].add_column.column.default", "not statements"),
    "where_escapes": ("""
        operations:
          - backfill: {table: users, set: {c: 'true'}, where: "id < 3) or (true"}
        """, "operations[0].backfill.where", "closes a bracket"),
    "set_comment": ("""
        operations:
          - backfill: {table: users, set: {c: "1 --"}}
        """, "operations[0].backfill.set.c", "comment"),
    "check_dollar": ("""
        operations:
          - add_check: {table: users, name: k, check: "$$a$$ = 'a'"}
        """, "operations[0].add_check.check", "dollar"),
    "alter_down": ("""
        operations:
          - alter_column: {table: users, column: c, type: text, up: "c::text", down: "c); drop table users; select (1"}
        """, "operations[0].alter_column.down", "closes a bracket"),
    "index_where": ("""
        operations:
          - create_index: {name: i, table: users, columns: [id], where: "true) with (fillfactor=10"}
        """, "operations[0].create_index.where", "closes a bracket"),
    "table_default": ("""
        operations:
          - create_table: {table: t, columns: [{name: id, type: int, default: "1; drop table users"}]}
        """, "operations[0].create_table.columns[0].default", "not statements"),
    "type": ("""
        operations:
          - add_column: {table: users, column: {name: c, type: "int default 1; drop table users"}}
        """, "operations[0].add_column.column.type", "not"),
    "select_writes": ("""
        operations:
          - backfill:
              table: users
              insert: {into: t, columns: [id], select: "SELECT id FROM {rows} AS r; DELETE FROM users"}
        """, "operations[0].backfill.insert.select", "statements"),
    "side_effect": ("""
        operations:
          - add_column: {table: users, column: {name: c, type: boolean}, up: "pg_terminate_backend(42)"}
        """, "operations[0].add_column.up", "side effects"),
    "user_function": ("""
        operations:
          - backfill: {table: users, set: {c: "app.evil(id)"}}
        """, "operations[0].backfill.set.c", "allow_functions"),
    "raw_sql_syntax": ("""
        operations:
          - raw_sql: {up: "CREATE VIEW v AS SELEC 1", down: "DROP VIEW IF EXISTS v"}
        """, "operations[0].raw_sql.up", "not valid SQL"),
}


@pytest.mark.parametrize("case", INJECTIONS, ids=list(INJECTIONS))
def test_a_malformed_fragment_is_a_spec_error_naming_file_and_field(migrations_dir, case):
    text, field, words = INJECTIONS[case]
    with pytest.raises(SpecError) as caught:
        load(migrations_dir, text)
    assert caught.value.field == field
    assert words in caught.value.message
    assert "\n" not in str(caught.value)


def test_allow_functions_lets_an_expression_call_them(migrations_dir):
    m = load(migrations_dir, """
        allow_functions: [app.evil, pg_sleep]
        operations:
          - backfill: {table: users, set: {c: "app.evil(id)"}, where: "pg_sleep(0) IS NOT NULL"}
        """)
    assert m.allow_functions == ("app.evil", "pg_sleep")


def test_a_sequence_default_loads(migrations_dir):
    load(migrations_dir, """
        operations:
          - add_column: {table: users, column: {name: n, type: bigint, default: "nextval('s')"}}
        """)


def test_allow_functions_must_be_names(migrations_dir):
    with pytest.raises(SpecError) as caught:
        load(migrations_dir, """
            allow_functions: ["pg_sleep(1)"]
            operations: [{raw_sql: {up: 'select 1', down: 'select 2'}}]
            """)
    assert caught.value.field == "allow_functions"


def test_raw_sql_plan_lists_each_statement_as_written(migrations_dir):
    m = load(migrations_dir, """
        operations:
          - raw_sql:
              up: "CREATE VIEW v AS SELECT 1 -- one\\n; COMMENT ON VIEW v IS 'a;b'"
              down: "DROP VIEW IF EXISTS v"
        """)
    (up,) = m.operations[0].start(None)
    assert up.render() == (
        "-- raw SQL (up): 2 statements\n"
        "-- statement 1 of 2\nCREATE VIEW v AS SELECT 1 -- one\n;\n"
        "-- statement 2 of 2\nCOMMENT ON VIEW v IS 'a;b';"
    )
    (down,) = m.operations[0].rollback(None)
    assert down.render() == "-- raw SQL (down)\nDROP VIEW IF EXISTS v;"


def test_a_type_cut_at_its_comma_by_a_yaml_flow_mapping_says_to_quote_it():
    """`{name: total, type: numeric(19,4)}`: YAML ends the value at the comma."""
    assert type_problem("numeric(19") == (
        'is not one type name: leaves a bracket open (in a YAML `{...}` mapping a comma ends the '
        'value: quote it, e.g. "numeric(19,4)")')
