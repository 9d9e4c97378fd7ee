"""What plan says about the WAL a backfill writes, before it runs.

A backfill rewrites every row it touches: each batch's UPDATE writes the new row versions, their
index entries (unless HOT), and after every checkpoint a full-page image of each page it first
touches. Measured on the benchmark's 1M-row `users` (bench/backfill_bench.py, 2026-12-03): 371 MB
of WAL for a table of 95 MB with its index, so about four times the table. When that
is more than `max_wal_size` (PostgreSQL's default is 1 GB), checkpoints come every few seconds
during the backfill, and each one makes the application's writes wait (10M rows: client p99 190
ms against 2 ms idle). plan says so, with the setting to raise, while it is still cheap to do.
"""

from __future__ import annotations

import psycopg

from ..identifiers import TableName
from ..operations.base import BackfillTask

WAL_PER_TABLE_BYTE = 4  # measured: 371 MB of WAL per 95 MB of table and index rewritten
MB = 1024 * 1024


def wal_note(table: TableName, table_bytes: int, max_wal_bytes: int) -> str | None:
    """The note for one table, or None when its backfill fits within max_wal_size."""
    expected = table_bytes * WAL_PER_TABLE_BYTE
    if expected <= max_wal_bytes:
        return None
    suggest = max(2 * expected, max_wal_bytes) // (1024 * MB) + 1
    return (f"the backfill rewrites {table} ({_size(table_bytes)} with its indexes): expect about "
            f"{_size(expected)} of WAL, more than max_wal_size ({_size(max_wal_bytes)}), so "
            f"checkpoints every few seconds will make the application's writes wait; for the "
            f"migration, raise it: ALTER SYSTEM SET max_wal_size = '{suggest}GB'; "
            f"SELECT pg_reload_conf();")


def plan_notes(conn: psycopg.Connection, tasks: list[BackfillTask]) -> list[str]:
    """One note per table a backfill writes whose WAL would exceed max_wal_size."""
    max_wal = conn.execute(
        "SELECT setting::bigint * CASE unit WHEN 'MB' THEN 1048576 WHEN 'kB' THEN 1024 "
        "WHEN '8kB' THEN 8192 ELSE 1 END FROM pg_settings WHERE name = 'max_wal_size'").fetchone()[0]
    notes = []
    written = {}  # the table a task writes -> the larger of it and the table it reads by range
    for task in tasks:
        if task.copy is None:  # rows from another database: no table here to size yet
            written.setdefault(task.writes or task.range_table, set()).add(task.range_table)
    for table, read in written.items():
        sizes = [conn.execute("SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)",
                              (t.sql,)).fetchone()[0] for t in {table, *read}]
        note = wal_note(table, int(max(sizes)), int(max_wal))
        if note:
            notes.append(note)
    return notes


def _size(n: int) -> str:
    return f"{n / (1024 * MB):.1f} GB" if n >= 1024 * MB else f"{n // MB} MB"
