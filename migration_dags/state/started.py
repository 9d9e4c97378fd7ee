"""Which steps of a migration have started and not finished: the table `started_steps`.

The engine records a step started, in its own committed transaction, before the step's first
change, and deletes the record in the transaction that records the step applied (or undone).
A started record that is still there after a run means the run died (a kill, a dropped
connection) somewhere inside the step: the step's work may be partly done. Then

    up     resumes: the step re-runs its idempotent actions (schema_change does not validate
           again against a schema it changed itself)
    down   undoes the partial work, as it would an applied step's

`run_ids` lists every run that started the step (once each: a backfill is started once per
partition by the same run), so leftovers named after a run (a backup's copy)
can be found again.
"""

from __future__ import annotations

import psycopg

from .schema import STARTED_STEPS


def started_steps(conn: psycopg.Connection, migration: str) -> dict[str, list[str]]:
    """step -> the run ids that started it, for every started, unfinished step."""
    if not _exists(conn):
        return {}
    rows = conn.execute(
        f"SELECT step, run_ids FROM {STARTED_STEPS} WHERE migration = %s", (migration,)
    ).fetchall()
    return {step: list(run_ids) for step, run_ids in rows}


def is_started(conn: psycopg.Connection, migration: str, step: str) -> bool:
    return step in started_steps(conn, migration)


def mark_started(conn: psycopg.Connection, migration: str, step: str, run_id: str) -> None:
    conn.execute(
        f"""INSERT INTO {STARTED_STEPS} (migration, step, run_ids) VALUES (%s, %s, ARRAY[%s])
            ON CONFLICT (migration, step) DO UPDATE SET started_at = now(),
                run_ids = CASE WHEN %s = ANY({STARTED_STEPS}.run_ids) THEN {STARTED_STEPS}.run_ids
                               ELSE array_append({STARTED_STEPS}.run_ids, %s) END""",
        (migration, step, run_id, run_id, run_id),
    )


def forget_started(conn: psycopg.Connection, migration: str, step: str) -> None:
    if _exists(conn):
        conn.execute(
            f"DELETE FROM {STARTED_STEPS} WHERE migration = %s AND step = %s", (migration, step)
        )


def _exists(conn: psycopg.Connection) -> bool:
    return conn.execute(f"SELECT to_regclass('{STARTED_STEPS}') IS NOT NULL").fetchone()[0]
