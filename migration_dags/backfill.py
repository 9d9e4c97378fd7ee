"""Batched, resumable backfill over primary-key ranges (keyset pagination, any orderable key).

Layout: a backfill task's table is cut into key-range partitions of about `partition_rows` rows
(these become Dagster dynamic partitions); each partition is processed in batches of `batch_size`
keys.  Each batch is one transaction that runs the task's statement for the keys in
(position, batch_upper] *and* moves the partition's saved position, so a crash at any moment
resumes exactly where the last committed batch ended, and a re-run batch changes nothing twice
(the statements are idempotent).  The first partition has no lower bound and the last no upper
bound, so rows inserted at either end during the backfill are covered (the trigger covers them too).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

import psycopg
from psycopg import errors as pg_errors

from .errors import NoPrimaryKeyError
from .identifiers import TableName, literal, quote
from .operations.base import BackfillTask
from .schema_model import primary_key_columns
from .state import STATE_SCHEMA


@dataclass(frozen=True)
class KeySpec:
    columns: list[str]
    types: list[str]

    @property
    def row_sql(self) -> str:
        return "ROW(" + ", ".join(quote(c) for c in self.columns) + ")"

    @property
    def order_sql(self) -> str:
        return ", ".join(quote(c) for c in self.columns)

    @property
    def text_sql(self) -> str:
        return ", ".join(f"{quote(c)}::text" for c in self.columns)

    def value_sql(self, values: list[str]) -> str:
        return "ROW(" + ", ".join(f"{literal(v)}::{t}" for v, t in zip(values, self.types)) + ")"

    def range_sql(self, lower: list[str] | None, upper: list[str] | None) -> str:
        parts = []
        if lower is not None:
            parts.append(f"{self.row_sql} > {self.value_sql(lower)}")
        if upper is not None:
            parts.append(f"{self.row_sql} <= {self.value_sql(upper)}")
        return " AND ".join(parts) or "TRUE"


def key_spec(conn: psycopg.Connection, table: TableName, where: str = "") -> KeySpec:
    columns = primary_key_columns(conn, table)
    if not columns:
        raise NoPrimaryKeyError(where or str(table), str(table))
    types = []
    for c in columns:
        types.append(
            conn.execute(
                """SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                   WHERE attrelid = to_regclass(%s) AND attname = %s""",
                (table.sql, c),
            ).fetchone()[0]
        )
    return KeySpec(columns, types)


def partition_key(task_index: int, index: int) -> str:
    return f"{task_index:02d}-{index:05d}"


def plan_partitions(
    conn: psycopg.Connection, migration: str, tasks: list[BackfillTask], partition_rows: int
) -> list[str]:
    """Cut each task's table into key ranges and record them (idempotent: kept if present)."""
    existing = conn.execute(
        f"SELECT partition_key FROM {STATE_SCHEMA}.backfill_ranges WHERE migration = %s ORDER BY 1",
        (migration,),
    ).fetchall()
    if existing:
        return sorted({r[0] for r in existing})
    keys: list[str] = []
    with conn.transaction():
        for t_index, task in enumerate(tasks):
            spec = key_spec(conn, task.range_table)
            bounds = [
                list(r)
                for r in conn.execute(
                    f"""SELECT {', '.join(quote(c) + '::text' for c in spec.columns)} FROM (
                          SELECT {spec.order_sql}, row_number() OVER (ORDER BY {spec.order_sql}) AS rn
                          FROM {task.range_table.sql}) s
                        WHERE rn % {int(partition_rows)} = 0 ORDER BY {spec.order_sql}"""
                )
            ]
            edges: list[list[str] | None] = [None, *bounds, None]
            for i in range(len(edges) - 1):
                key = partition_key(t_index, i)
                conn.execute(
                    f"""INSERT INTO {STATE_SCHEMA}.backfill_ranges
                        (migration, partition_key, task_index, lower_key, upper_key)
                        VALUES (%s, %s, %s, %s, %s)""",
                    (migration, key, t_index, _json(edges[i]), _json(edges[i + 1])),
                )
                keys.append(key)
    return keys


def _json(value: list[str] | None) -> str | None:
    return None if value is None else json.dumps(value)


@dataclass
class BatchProgress:
    partition: str
    rows: int
    batches: int
    elapsed_s: float
    done: bool


@dataclass
class PartitionResult:
    partition: str
    rows: int
    batches: int
    elapsed_s: float
    retries: int
    already_done: bool = False
    sample_sql: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


Throttle = Callable[[psycopg.Connection], None]


def no_throttle(conn: psycopg.Connection) -> None:
    return None


def run_partition(
    conn: psycopg.Connection,
    migration: str,
    partition: str,
    tasks: list[BackfillTask],
    batch_size: int,
    lock_timeout_ms: int = 500,
    throttle: Throttle = no_throttle,
    on_batch: Callable[[BatchProgress], None] | None = None,
) -> PartitionResult:
    row = conn.execute(
        f"""SELECT task_index, lower_key, upper_key, position_key, rows_done, done
            FROM {STATE_SCHEMA}.backfill_ranges WHERE migration = %s AND partition_key = %s""",
        (migration, partition),
    ).fetchone()
    if row is None:
        raise KeyError(f"partition {partition!r} of migration {migration!r} is not planned")
    t_index, lower, upper, position, rows_done, done = row
    started = time.monotonic()
    if done:
        return PartitionResult(partition, 0, 0, 0.0, 0, already_done=True)
    task = tasks[t_index]
    spec = key_spec(conn, task.range_table)
    position = position if position is not None else lower
    rows = batches = retries = 0
    sample = ""
    while True:
        throttle(conn)
        next_upper = _batch_upper(conn, task.range_table, spec, position, upper, batch_size)
        last = next_upper is None
        batch_upper = upper if last else next_upper
        statement = task.for_range(spec.range_sql(position, batch_upper))
        sample = sample or statement
        while True:
            try:
                with conn.transaction():
                    conn.execute("SET LOCAL synchronous_commit = off")
                    conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
                    changed = conn.execute(statement).rowcount
                    conn.execute(
                        f"""UPDATE {STATE_SCHEMA}.backfill_ranges SET position_key = %s,
                              rows_done = rows_done + %s, done = %s, updated_at = now()
                            WHERE migration = %s AND partition_key = %s""",
                        (_json(batch_upper), max(changed, 0), last, migration, partition),
                    )
                break
            except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected,
                    pg_errors.SerializationFailure):
                retries += 1
                time.sleep(min(0.05 * 2 ** min(retries, 6), 2.0))
        rows += max(changed, 0)
        batches += 1
        position = batch_upper
        if on_batch:
            on_batch(BatchProgress(partition, rows, batches, time.monotonic() - started, last))
        if last:
            break
    return PartitionResult(partition, rows, batches, time.monotonic() - started, retries,
                           sample_sql=sample)


def _batch_upper(
    conn: psycopg.Connection, table: TableName, spec: KeySpec,
    position: list[str] | None, upper: list[str] | None, batch_size: int,
) -> list[str] | None:
    """The key ending the next batch, or None when fewer than batch_size keys remain."""
    row = conn.execute(
        f"SELECT {spec.text_sql} FROM {table.sql} WHERE {spec.range_sql(position, upper)} "
        f"ORDER BY {spec.order_sql} OFFSET {int(batch_size) - 1} LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    if upper is not None and list(row) == list(upper):
        return None
    return list(row)


def partitions_status(conn: psycopg.Connection, migration: str) -> list[tuple[str, bool, int]]:
    from .state import state_exists

    if not state_exists(conn):
        return []
    return [
        (k, d, n)
        for k, d, n in conn.execute(
            f"""SELECT partition_key, done, rows_done FROM {STATE_SCHEMA}.backfill_ranges
                WHERE migration = %s ORDER BY partition_key""",
            (migration,),
        )
    ]


def forget_partitions(conn: psycopg.Connection, migration: str) -> None:
    conn.execute(f"DELETE FROM {STATE_SCHEMA}.backfill_ranges WHERE migration = %s", (migration,))
