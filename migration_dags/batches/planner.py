"""Cutting a table into key ranges: the key batches address rows by, partitions, next batch.

Keys: the primary key, else a unique NOT NULL key, of any orderable type, composite too; bounds
are compared as ROW(...) values, so the btree on the key serves every range, and they are stored
as text (JSON arrays) and cast back to the key's types.  Every key query names the table's columns
through an alias: `SELECT t.id::text ... ORDER BY t.id` orders by the key, not by its text.

A backfill task's table is cut into partitions of about `partition_rows` keys (these become
Dagster dynamic partitions).  The first partition has no lower bound and the last no upper bound,
so rows inserted at either end during the backfill are covered (the operation's trigger covers
every live write anyway).  Planning steps through the key's index (OFFSET within a key range)
instead of numbering every row.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from .. import state
from ..errors import NoPrimaryKeyError
from ..identifiers import TableName, literal, quote
from ..operations.base import BackfillTask
from ..schema_model import primary_key_columns

# Alias of the table in every key query we build.
TABLE_ALIAS = "mdg_t"
_T = TABLE_ALIAS


@dataclass(frozen=True)
class KeySpec:
    columns: list[str]
    types: list[str]

    def cols(self, alias: str | None = None) -> list[str]:
        prefix = f"{alias}." if alias else ""
        return [prefix + quote(c) for c in self.columns]

    @property
    def row_sql(self) -> str:
        return "ROW(" + ", ".join(self.cols()) + ")"

    def value_sql(self, values: list[str]) -> str:
        return "ROW(" + ", ".join(f"{literal(v)}::{t}" for v, t in zip(values, self.types)) + ")"

    def range_sql(
        self, lower: list[str] | None, upper: list[str] | None, alias: str | None = None
    ) -> str:
        """(lower, upper] as a predicate on the key; None is unbounded."""
        row = "ROW(" + ", ".join(self.cols(alias)) + ")"
        parts = []
        if lower is not None:
            parts.append(f"{row} > {self.value_sql(lower)}")
        if upper is not None:
            parts.append(f"{row} <= {self.value_sql(upper)}")
        return " AND ".join(parts) or "TRUE"


def key_spec(conn: psycopg.Connection, table: TableName, where: str = "") -> KeySpec:
    """The key batches address rows by; NoPrimaryKeyError when the table has none."""
    columns = primary_key_columns(conn, table)
    if not columns:
        raise NoPrimaryKeyError(where or str(table), str(table))
    types = [
        conn.execute(
            """SELECT format_type(atttypid, atttypmod) FROM pg_attribute
               WHERE attrelid = to_regclass(%s) AND attname = %s""",
            (table.sql, c),
        ).fetchone()[0]
        for c in columns
    ]
    return KeySpec(columns, types)


def partition_key(task_index: int, index: int) -> str:
    return f"{task_index:02d}-{index:05d}"


def plan_partitions(
    conn: psycopg.Connection, migration: str, tasks: list[BackfillTask], partition_rows: int
) -> list[str]:
    """Cut each task's table into key ranges and record them (idempotent: kept if present).

    Steps through the key's index `partition_rows` keys at a time: one index-only pass, no sort.
    """
    existing = state.range_keys(conn, migration)
    if existing:
        return existing
    keys: list[str] = []
    with conn.transaction():
        for t_index, task in enumerate(tasks):
            if task.copy is not None:  # rows from another database: cut by the source's keys
                edges = task.copy.key_edges(partition_rows)
            else:
                edges = _edges(conn, task, partition_rows)
            for i in range(len(edges) - 1):
                key = partition_key(t_index, i)
                state.record_range(conn, migration, key, t_index, edges[i], edges[i + 1])
                keys.append(key)
    return keys


def _edges(conn: psycopg.Connection, task: BackfillTask,
           partition_rows: int) -> list[list[str] | None]:
    """None, the keys that end each partition but the last, None."""
    spec = key_spec(conn, task.range_table)
    edges: list[list[str] | None] = [None]
    while True:
        row = conn.execute(
            f"SELECT {_text_cols(spec)} "
            f"FROM {task.range_table.sql} AS {_T} "
            f"WHERE {spec.range_sql(edges[-1], None, _T)} "
            f"ORDER BY {', '.join(spec.cols(_T))} OFFSET {int(partition_rows) - 1} LIMIT 1"
        ).fetchone()
        if row is None:
            break
        edges.append(list(row))
    edges.append(None)
    if len(edges) > 2 and _is_last_key(conn, task.range_table, spec, edges[-2]):
        # the last bound is the table's last key: no empty partition after it
        edges.pop(-2)
    return edges


def _text_cols(spec: KeySpec, alias: str = _T) -> str:
    return ", ".join(f"{c}::text" for c in spec.cols(alias))


def _is_last_key(conn: psycopg.Connection, table: TableName, spec: KeySpec, key: list[str]) -> bool:
    return conn.execute(
        f"SELECT NOT EXISTS (SELECT 1 FROM {table.sql} AS {_T} WHERE {spec.range_sql(key, None, _T)})"
    ).fetchone()[0]


def next_batch_end(
    conn: psycopg.Connection, table: TableName, spec: KeySpec,
    position: list[str] | None, upper: list[str] | None, batch_size: int,
) -> tuple[list[str] | None, int, bool]:
    """(last key of the next batch, keys in it, whether keys remain after it) for the range
    (position, upper]; the key is None when fewer than batch_size keys remain (the batch then
    runs to `upper`), and (None, 0, False) when the range is empty.  Looks one key past the
    batch, so a range ending exactly on a batch boundary takes no extra, empty batch."""
    row = conn.execute(batch_end_sql(table, spec, position, upper, batch_size)).fetchone()
    return batch_end(row, len(spec.columns), batch_size)


def batch_end_sql(
    table: TableName, spec: KeySpec, position: list[str] | None, upper: list[str] | None,
    batch_size: int,
) -> str:
    """One row: the batch's last key as text (one column per key column; NULLs when fewer than
    batch_size keys remain), then how many keys the look-ahead saw, at most batch_size + 1.  The
    batch_size-th and next keys come from one index scan (OFFSET: no window functions, ~1 ms
    less per batch than numbering the keys); the keys are counted only when fewer remain.  A
    query of its own for the first batch; inside each batch's statement for the next one."""
    cols = spec.cols(_T)
    inner = ", ".join(f"{c} AS k{i}" for i, c in enumerate(cols))
    ks = [f"x.k{i}" for i in range(len(cols))]
    order = ", ".join(ks)
    size = int(batch_size)
    in_range = f"FROM {table.sql} AS {_T} WHERE {spec.range_sql(position, upper, _T)}"
    firsts = ", ".join(f"(array_agg({k}::text ORDER BY {order}))[1]" for k in ks)
    return (
        f"SELECT {firsts}, CASE count(*) WHEN 2 THEN {size + 1} WHEN 1 THEN {size} ELSE "
        f"(SELECT count(*) FROM (SELECT 1 {in_range} LIMIT {size}) AS mdg_tail) END "
        f"FROM (SELECT {inner} {in_range} ORDER BY {', '.join(cols)} "
        f"OFFSET {size - 1} LIMIT 2) AS x"
    )


def batch_end(row, key_columns: int, batch_size: int) -> tuple[list[str] | None, int, bool]:
    """batch_end_sql's row as (last key of the batch or None, keys in it, whether keys remain
    after it)."""
    if row is None or row[key_columns] is None:
        return None, 0, False
    seen = int(row[key_columns])
    end = list(row[:key_columns]) if row[0] is not None else None
    return end, min(seen, batch_size), seen > batch_size
