"""The migration file each applied migration was applied from: its checksum and text (the table
`migration_files`, created on first use), so a later `up` or `down` can tell that the file changed
since (drift.py) and say how. Recorded when a step is applied; forgotten with the last step."""

from __future__ import annotations

import psycopg

from .schema import MIGRATION_FILES

_DDL = f"""CREATE TABLE IF NOT EXISTS {MIGRATION_FILES} (
    migration text PRIMARY KEY,
    checksum text NOT NULL,
    content text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
)"""


def recorded_file(conn: psycopg.Connection, migration: str) -> tuple[str, str] | None:
    """(checksum, text) of the file `migration` was applied from, or None."""
    if not conn.execute(f"SELECT to_regclass('{MIGRATION_FILES}') IS NOT NULL").fetchone()[0]:
        return None
    row = conn.execute(f"SELECT checksum, content FROM {MIGRATION_FILES} WHERE migration = %s",
                       (migration,)).fetchone()
    return (row[0], row[1]) if row else None


def record_file(conn: psycopg.Connection, migration: str, checksum: str, content: str) -> None:
    conn.execute(_DDL)
    conn.execute(
        f"""INSERT INTO {MIGRATION_FILES} (migration, checksum, content) VALUES (%s, %s, %s)
            ON CONFLICT (migration) DO UPDATE SET checksum = EXCLUDED.checksum,
                content = EXCLUDED.content, recorded_at = now()""",
        (migration, checksum, content))


def forget_file(conn: psycopg.Connection, migration: str) -> None:
    if conn.execute(f"SELECT to_regclass('{MIGRATION_FILES}') IS NOT NULL").fetchone()[0]:
        conn.execute(f"DELETE FROM {MIGRATION_FILES} WHERE migration = %s", (migration,))
