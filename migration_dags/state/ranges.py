"""The backfill's key-range partitions and how far each got: the table `backfill_ranges`.

One row per partition: its task, its bounds (lower, upper] on the task table's key, the saved
position ("every key up to here is done"), the rows it changed and whether it is done.  Bounds and
positions are the key's values as text, stored as JSON arrays (None: unbounded); the functions here
take and return them as lists.  The position and rows are written inside each batch's own
transaction (the caller's), so they commit exactly with the batch's work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import psycopg

from ..identifiers import literal
from .schema import BACKFILL_RANGES, state_exists


@dataclass(frozen=True)
class SavedRange:
    task_index: int
    lower: list[str] | None
    upper: list[str] | None
    position: list[str] | None  # None: nothing done yet (the batches start at `lower`)
    done: bool


def _json(key: list[str] | None) -> str | None:
    return None if key is None else json.dumps(key)


def _key(value: Any) -> list[str] | None:
    if value is None:
        return None
    return json.loads(value) if isinstance(value, str) else list(value)


def range_keys(conn: psycopg.Connection, migration: str) -> list[str]:
    """The partition keys planned for `migration`, in order; empty when none are."""
    rows = conn.execute(
        f"SELECT partition_key FROM {BACKFILL_RANGES} WHERE migration = %s ORDER BY 1",
        (migration,),
    ).fetchall()
    return sorted({r[0] for r in rows})


def record_range(
    conn: psycopg.Connection, migration: str, key: str, task_index: int,
    lower: list[str] | None, upper: list[str] | None,
) -> None:
    conn.execute(
        f"""INSERT INTO {BACKFILL_RANGES}
            (migration, partition_key, task_index, lower_key, upper_key)
            VALUES (%s, %s, %s, %s, %s)""",
        (migration, key, task_index, _json(lower), _json(upper)),
    )


def read_range(conn: psycopg.Connection, migration: str, key: str) -> SavedRange | None:
    row = conn.execute(
        f"""SELECT task_index, lower_key, upper_key, position_key, done
            FROM {BACKFILL_RANGES} WHERE migration = %s AND partition_key = %s""",
        (migration, key),
    ).fetchone()
    if row is None:
        return None
    task_index, lower, upper, position, done = row
    return SavedRange(task_index, _key(lower), _key(upper), _key(position), done)


def touch_ranges(conn: psycopg.Connection, migration: str) -> None:
    """A small write to the migration's ranges: the WAL a synchronous commit needs to flush
    the asynchronous batch commits before it (batches.runner.make_durable)."""
    conn.execute(
        f"UPDATE {BACKFILL_RANGES} SET updated_at = now() WHERE migration = %s", (migration,))


def save_range_position(
    conn: psycopg.Connection, migration: str, key: str, position: list[str] | None, rows: int,
    done: bool,
) -> None:
    """Count a batch's rows and move the saved position to `position`."""
    conn.execute(
        f"""UPDATE {BACKFILL_RANGES} SET position_key = %s,
              rows_done = rows_done + %s, done = %s, updated_at = now()
            WHERE migration = %s AND partition_key = %s""",
        (_json(position), rows, done, migration, key))


def save_range_position_sql(
    migration: str, key: str, position: list[str] | None, rows_sql: str, done: bool,
) -> str:
    """save_range_position as one statement with no parameters, for a batch to run as part of
    its own statement: the rows counted by `rows_sql` (a scalar subquery's SELECT)."""
    saved = "NULL" if position is None else literal(_json(position))
    return (f"UPDATE {BACKFILL_RANGES} SET position_key = {saved}, "
            f"rows_done = rows_done + ({rows_sql}), done = {'true' if done else 'false'}, "
            f"updated_at = now() WHERE migration = {literal(migration)} "
            f"AND partition_key = {literal(key)}")


def rows_done_in_other_ranges(conn: psycopg.Connection, migration: str, key: str) -> int:
    """Rows changed by the partitions of the same task (table) that are done, `key` aside."""
    return int(conn.execute(
        f"""SELECT coalesce(sum(rows_done) FILTER (WHERE done), 0)
            FROM {BACKFILL_RANGES}
            WHERE migration = %s AND partition_key <> %s AND task_index = (
                SELECT task_index FROM {BACKFILL_RANGES}
                WHERE migration = %s AND partition_key = %s)""",
        (migration, key, migration, key),
    ).fetchone()[0])


def ranges_status(conn: psycopg.Connection, migration: str) -> list[tuple[str, bool, int]]:
    """(partition key, done, rows changed) of every partition, in key order."""
    if not state_exists(conn):
        return []
    return [
        (k, d, n)
        for k, d, n in conn.execute(
            f"""SELECT partition_key, done, rows_done FROM {BACKFILL_RANGES}
                WHERE migration = %s ORDER BY partition_key""",
            (migration,),
        )
    ]


def reset_ranges(conn: psycopg.Connection, migration: str, keys: Iterable[str]) -> None:
    """Make the partitions `keys` as planned: nothing done, no rows (the backfill's undo)."""
    conn.execute(
        f"""UPDATE {BACKFILL_RANGES} SET done = false, rows_done = 0, position_key = NULL
            WHERE migration = %s AND partition_key = ANY(%s)""",
        (migration, list(keys)))


def forget_ranges(conn: psycopg.Connection, migration: str) -> None:
    conn.execute(f"DELETE FROM {BACKFILL_RANGES} WHERE migration = %s", (migration,))
