"""Which rows a suite run sees: the suite's whole table, or one backfill partition's key range.

A partition is a key range recorded in the state (state.ranges): (lower, upper] bounds on the
primary key of its backfill task's table, as the key's values in text.  A suite runs on a partition only when it
validates that same table; the range becomes a predicate both paths use (the SQL path in its
WHERE, GX as a query asset), so both see exactly the partition's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from ..batches import key_spec
from ..errors import StepFailedError
from ..identifiers import TableName, literal, quote
from ..schema_model import primary_key_columns
from ..state import read_range, state_exists

if TYPE_CHECKING:
    from ..engine import MigrationEngine
    from .files import Suite


@dataclass(frozen=True)
class Scope:
    table: TableName
    key: tuple[str, ...]  # columns naming a row in samples; () when the table has no key
    where: str | None = None  # the partition's key-range predicate; None: the whole table
    partition: str | None = None

    @property
    def from_sql(self) -> str:
        return f"FROM {self.table.sql}" + (f" WHERE {self.where}" if self.where else "")

    @property
    def select_sql(self) -> str:
        """The rows as one query (the view GX reads)."""
        return f"SELECT * {self.from_sql}"

    @property
    def batch_sql(self) -> str:
        """What our SQL puts for {batch} in an unexpected_rows_query (GX puts its view's name)."""
        return self.table.sql if self.where is None else f"({self.select_sql}) AS subselect"

    def and_where(self, predicate: str) -> str:
        return f"({self.where}) AND ({predicate})" if self.where else predicate


@dataclass(frozen=True)
class PartitionRange:
    partition: str
    table: TableName
    predicate: str


def whole_table(conn: psycopg.Connection, suite: "Suite") -> Scope:
    key = suite.key if suite.key else tuple(primary_key_columns(conn, suite.table))
    return Scope(suite.table, key)


def partition_range(engine: "MigrationEngine", conn: psycopg.Connection, partition: str) -> PartitionRange:
    name = engine.migration.name
    saved = read_range(conn, name, partition) if state_exists(conn) else None
    if saved is None:
        raise StepFailedError(f"{name}: partition {partition!r} is not planned; run schema_change first")
    table = engine.backfill_tasks(engine.context(conn))[saved.task_index].range_table
    spec = key_spec(conn, table)
    parts = []
    if saved.lower is not None:
        parts.append(f"{spec.row_sql} > {key_row_sql(saved.lower, spec.types)}")
    if saved.upper is not None:
        parts.append(f"{spec.row_sql} <= {key_row_sql(saved.upper, spec.types)}")
    return PartitionRange(partition, table, " AND ".join(parts) or "TRUE")


def in_partition(conn: psycopg.Connection, suite: "Suite", rng: PartitionRange) -> Scope | None:
    """The suite's scope on this partition, or None when the suite validates another table."""
    if suite.table != rng.table:
        return None
    return Scope(suite.table, whole_table(conn, suite).key, rng.predicate, rng.partition)


def key_row_sql(values: list[str], types: list[str]) -> str:
    """A stored key bound (text values) as a ROW of the key's types, safe for GX's SQL too."""
    return "ROW(" + ", ".join(f"{_text(v)}::{t}" for v, t in zip(values, types)) + ")"


def _text(value: str) -> str:
    # The predicate reaches GX's connection (the view's CREATE) through SQLAlchemy and a DB-API
    # cursor, where ":name" may be read as a bind and "%" as a placeholder: a key holding either
    # is spelled in hex instead.
    if ":" in value or "%" in value:
        return f"convert_from(decode('{value.encode().hex()}', 'hex'), 'UTF8')"
    return literal(value)


def quoted_key(scope: Scope) -> str:
    return ", ".join(quote(c) for c in scope.key)
