"""The SQL path: a suite's common expectations compiled into one query of our own.

GX runs one query per metric (~8 scans for a 5-expectation suite); these types need one statement
(and a second query per failed expectation, for its sample keys).  The suite JSON still defines
every check, and each type below keeps GX's own semantics (tests compare the two on the same
data):

    type                                    unexpected rows                  `mostly` is over
    expect_column_values_to_not_be_null     col IS NULL                      all rows
    expect_column_values_to_be_null         col IS NOT NULL                  all rows
    expect_column_values_to_be_in_set       non-null col not in the set      non-null rows
    expect_column_values_to_not_be_in_set   col in the set                   non-null rows
    expect_column_values_to_be_between      non-null col outside the bounds  non-null rows
    expect_column_values_to_be_unique       non-null col whose value repeats non-null rows
    unexpected_rows_expectation             the rows its query returns       (none: 0 passes)
    expect_table_row_count_to_be_between    count(*) against min/max
    expect_table_row_count_to_equal         count(*) = value

Anything else goes to GX: another type, a kwarg we do not read (row_condition, suite parameters,
result_format, ...), values whose type does not match the column's (strings against a text
column, numbers against a numeric one, booleans against a boolean one).  When our query fails
(a missing column, say) the runner hands the whole suite to GX, which reports per expectation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import psycopg

from ..reports import CheckOutcome
from ..identifiers import literal, quote
from .files import Expectation
from .outcomes import SAMPLE_LIMIT, format_key, outcome, row_sample
from .scope import Scope, quoted_key

Judge = Callable[[list[Any]], tuple[bool, int | str]]

ROW_LEVEL_TYPES = {
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null",
    "expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_be_between", "expect_column_values_to_be_unique",
    "unexpected_rows_expectation",
}
TABLE_LEVEL_TYPES = {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}


@dataclass
class Plan:
    exp: Expectation
    needs: list[str]  # SQL expressions the one query evaluates
    judge: Judge  # their values -> (passed, observed)
    sample_sql: str | None = None  # offending rows, first SAMPLE_LIMIT, when it fails
    sample_by_key: bool = True  # sample_sql selects the key columns (else whole rows)


def compile_plans(
    conn: psycopg.Connection, expectations: list[Expectation], scope: Scope
) -> tuple[list[Plan], list[Expectation]]:
    """Split expectations into plans for our query and the rest, left to GX."""
    categories = column_categories(conn, scope)
    plans, rest = [], []
    for exp in expectations:
        plan = compile_expectation(exp, scope, categories)
        if plan is None:
            rest.append(exp)
        else:
            plans.append(plan)
    return plans, rest


def run_plans(conn: psycopg.Connection, plans: list[Plan], scope: Scope) -> list[CheckOutcome]:
    """One statement for every plan, then one sample query per failed plan, in one snapshot."""
    if not plans:
        return []
    exprs = list(dict.fromkeys(e for p in plans for e in p.needs))
    statement = "SELECT " + ",\n       ".join(exprs) + f"\n{scope.from_sql}"
    outcomes = []
    # counts and samples from one snapshot (unless the caller already holds a transaction)
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        if idle:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        values = dict(zip(exprs, conn.execute(statement).fetchone()))
        for plan in plans:
            passed, observed = plan.judge([values[e] for e in plan.needs])
            samples = [] if passed else _samples(conn, plan, scope)
            outcomes.append(outcome(plan.exp, scope.partition, passed, observed, samples))
    return outcomes


def _samples(conn: psycopg.Connection, plan: Plan, scope: Scope) -> list[str]:
    if plan.sample_sql is None:
        return []
    cur = conn.execute(plan.sample_sql)
    rows = cur.fetchall()
    if not plan.sample_by_key:  # whole rows of an unexpected_rows_query
        names = [d.name for d in cur.description or []]
        return [row_sample(dict(zip(names, row)), scope.key) for row in rows]
    # the key, or with no key the offending value, as GX gives it then
    return [format_key(row) if scope.key else str(row[0]) for row in rows]


def column_categories(conn: psycopg.Connection, scope: Scope) -> dict[str, str]:
    """Column name -> pg_type.typcategory (B boolean, N numeric, S string, ...)."""
    rows = conn.execute(
        """SELECT a.attname, t.typcategory FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped""",
        (scope.table.sql,),
    ).fetchall()
    return {name: str(cat) for name, cat in rows}


# -- compiling one expectation ----------------------------------------------------------------
ALLOWED_KWARGS = {
    "expect_column_values_to_not_be_null": {"column", "mostly"},
    "expect_column_values_to_be_null": {"column", "mostly"},
    "expect_column_values_to_be_in_set": {"column", "value_set", "mostly"},
    "expect_column_values_to_not_be_in_set": {"column", "value_set", "mostly"},
    "expect_column_values_to_be_between": {
        "column", "min_value", "max_value", "strict_min", "strict_max", "mostly"},
    "expect_column_values_to_be_unique": {"column", "mostly"},
    "expect_table_row_count_to_be_between": {"min_value", "max_value", "strict_min", "strict_max"},
    "expect_table_row_count_to_equal": {"value"},
    "unexpected_rows_expectation": {"unexpected_rows_query"},
}
_IGNORED_WHEN_NULL = {"row_condition", "condition_parser"}


def compile_expectation(exp: Expectation, scope: Scope, categories: dict[str, str]) -> Plan | None:
    allowed = ALLOWED_KWARGS.get(exp.type)
    kwargs = {k: v for k, v in exp.kwargs.items() if not (k in _IGNORED_WHEN_NULL and v is None)}
    if allowed is None or not set(kwargs) <= allowed:
        return None
    if exp.type.startswith("expect_table_row_count"):
        return _row_count(exp, kwargs)
    if exp.type == "unexpected_rows_expectation":
        return _unexpected_rows(exp, kwargs, scope)
    column = kwargs.get("column")
    mostly = kwargs.get("mostly", 1.0)
    if not isinstance(column, str) or column not in categories or not _is_number(mostly):
        return None
    if not 0 <= mostly <= 1:
        return None
    col, category = quote(column), categories[column]
    if exp.type == "expect_column_values_to_not_be_null":
        return _over_all_rows(exp, scope, col, f"{col} IS NULL", mostly)
    if exp.type == "expect_column_values_to_be_null":
        return _over_all_rows(exp, scope, col, f"{col} IS NOT NULL", mostly)
    if exp.type in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        values = _value_list(kwargs.get("value_set"), category)
        if values is None:
            return None
        negate = "NOT " if exp.type == "expect_column_values_to_be_in_set" else ""
        bad = f"{col} IS NOT NULL AND {col} {negate}IN ({', '.join(values)})"
        return _over_non_null(exp, scope, col, bad, mostly)
    if exp.type == "expect_column_values_to_be_between":
        expected = _between(col, category, kwargs)
        if expected is None:
            return None
        return _over_non_null(exp, scope, col, f"{col} IS NOT NULL AND NOT ({expected})", mostly)
    if exp.type == "expect_column_values_to_be_unique":
        return _unique(exp, scope, col, mostly)
    return None


def _over_all_rows(exp: Expectation, scope: Scope, col: str, bad: str, mostly: float) -> Plan:
    def judge(v: list[Any]) -> tuple[bool, int]:
        total, unexpected = v
        return (total == 0 or (total - unexpected) / total >= mostly), unexpected

    return Plan(exp, ["count(*)", f"count(*) FILTER (WHERE {bad})"], judge,
                _key_sample_sql(scope, col, bad))


def _over_non_null(exp: Expectation, scope: Scope, col: str, bad: str, mostly: float,
                   unexpected_sql: str | None = None) -> Plan:
    def judge(v: list[Any]) -> tuple[bool, int]:
        total, non_null, unexpected = v
        unexpected = int(unexpected or 0)
        if total == 0 or non_null == 0:
            return True, unexpected
        return (non_null - unexpected) / non_null >= mostly, unexpected

    count = unexpected_sql or f"count(*) FILTER (WHERE {bad})"
    return Plan(exp, ["count(*)", f"count({col})", count], judge, _key_sample_sql(scope, col, bad))


def _unique(exp: Expectation, scope: Scope, col: str, mostly: float) -> Plan:
    repeated = (f"SELECT {col} FROM {scope.table.sql} WHERE {scope.and_where(f'{col} IS NOT NULL')}"
                f" GROUP BY {col} HAVING count(*) > 1")
    rows_with_repeats = (
        f"(SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {scope.table.sql} "
        f"WHERE {scope.and_where(f'{col} IS NOT NULL')} GROUP BY {col} HAVING count(*) > 1) AS d)"
    )
    return _over_non_null(exp, scope, col, f"{col} IN ({repeated})", mostly, rows_with_repeats)


def _key_sample_sql(scope: Scope, col: str, bad: str) -> str:
    where = scope.and_where(bad)
    if scope.key:
        key = quoted_key(scope)
        return (f"SELECT {key} FROM {scope.table.sql} WHERE {where} ORDER BY {key} "
                f"LIMIT {SAMPLE_LIMIT}")
    return f"SELECT {col} FROM {scope.table.sql} WHERE {where} LIMIT {SAMPLE_LIMIT}"


def _row_count(exp: Expectation, kwargs: dict) -> Plan | None:
    if exp.type == "expect_table_row_count_to_equal":
        value = kwargs.get("value")
        if not _is_int(value):
            return None
        return Plan(exp, ["count(*)"], lambda v: (v[0] == value, v[0]))
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    strict_min, strict_max = kwargs.get("strict_min", False), kwargs.get("strict_max", False)
    if not all(x is None or _is_int(x) for x in (low, high)):
        return None
    if not all(isinstance(s, bool) for s in (strict_min, strict_max)):
        return None

    def judge(v: list[Any]) -> tuple[bool, int]:
        n = v[0]
        above = low is None or (n > low if strict_min else n >= low)
        below = high is None or (n < high if strict_max else n <= high)
        return above and below, n

    return Plan(exp, ["count(*)"], judge)


_SIMPLE_QUERY = re.compile(
    r"\s*select\s+(?P<cols>[\w\s,.*\"]+?)\s+from\s+\{batch\}\s+where\s+(?P<cond>.+)",
    re.IGNORECASE | re.DOTALL,
)
_NOT_FOLDABLE = re.compile(
    r"\b(select|from|join|group|having|order|limit|offset|union|intersect|except|window|fetch)\b"
    r"|--|/\*|;|\{|\}",
    re.IGNORECASE,
)


def _unexpected_rows(exp: Expectation, kwargs: dict, scope: Scope) -> Plan | None:
    query = kwargs.get("unexpected_rows_query")
    if not isinstance(query, str) or re.search(r"\bjoin\b", query, re.IGNORECASE):
        return None  # GX substitutes {batch} differently in joins: leave those to it
    query = query.rstrip("; \t\r\n\v\f")
    try:
        rows_sql = query.format(batch=scope.batch_sql)
    except (KeyError, IndexError, ValueError):
        return None
    match = _SIMPLE_QUERY.fullmatch(query)
    cols = match and match["cols"].strip()
    if match and not _NOT_FOLDABLE.search(match["cond"]) and not re.match(r"distinct\b", cols, re.I):
        count = f"count(*) FILTER (WHERE ({match['cond']}\n))"  # folded into the one scan
    else:
        count = f"(SELECT count(*) FROM ({rows_sql}) AS unexpected_rows)"
    return Plan(exp, [count], lambda v: (v[0] == 0, v[0]),
                f"SELECT * FROM ({rows_sql}) AS unexpected_rows LIMIT {SAMPLE_LIMIT}",
                sample_by_key=False)


# -- values ---------------------------------------------------------------------------------------
def _value_list(values: Any, category: str) -> list[str] | None:
    if not isinstance(values, list) or not values:
        return None
    rendered = [_literal(v, category) for v in values]
    return None if any(r is None for r in rendered) else rendered  # type: ignore[return-value]


def _literal(value: Any, category: str) -> str | None:
    """`value` as SQL when its type matches the column's category, else None (GX decides)."""
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE") if category == "B" else None
    if isinstance(value, int):
        return str(value) if category == "N" else None
    if isinstance(value, float):
        # GX binds a Python float as float8; so do we
        return f"{value!r}::float8" if category == "N" and math.isfinite(value) else None
    if isinstance(value, str):
        return literal(value) if category == "S" else None
    return None


def _between(col: str, category: str, kwargs: dict) -> str | None:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    strict_min, strict_max = kwargs.get("strict_min", False), kwargs.get("strict_max", False)
    if low is None and high is None:
        return None
    if not all(isinstance(s, bool) for s in (strict_min, strict_max)):
        return None
    if low is not None and high is not None and _is_number(low) and _is_number(high) and low > high:
        return None
    parts = []
    if low is not None:
        lit = _literal(low, category) if _is_number(low) else None
        if lit is None:
            return None
        parts.append(f"{col} {'>' if strict_min else '>='} {lit}")
    if high is not None:
        lit = _literal(high, category) if _is_number(high) else None
        if lit is None:
            return None
        parts.append(f"{col} {'<' if strict_max else '<='} {lit}")
    return " AND ".join(parts)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
