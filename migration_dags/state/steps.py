"""Which steps of a migration are applied: the table `applied_steps`.

`up` of a step inserts its row, `down` deletes it, each in the same transaction as the step's last
action where possible, so a step is recorded applied exactly when its work is committed.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from .schema import APPLIED_STEPS



def applied_steps(conn: psycopg.Connection, migration: str) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        f"SELECT step, run_id, applied_at, details FROM {APPLIED_STEPS} WHERE migration = %s",
        (migration,),
    ).fetchall()
    return {s: {"run_id": r, "applied_at": a, "details": d} for s, r, a, d in rows}


def migrations_with_step(conn: psycopg.Connection, step: str) -> set[str]:
    """Every migration that has `step` applied (with "cutover": the complete ones)."""
    return {m for (m,) in conn.execute(
        f"SELECT migration FROM {APPLIED_STEPS} WHERE step = %s", (step,))}


def is_applied(conn: psycopg.Connection, migration: str, step: str) -> bool:
    return conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {APPLIED_STEPS} WHERE migration = %s AND step = %s)",
        (migration, step),
    ).fetchone()[0]


def mark_applied(
    conn: psycopg.Connection, migration: str, step: str, run_id: str | None, details: dict
) -> None:
    conn.execute(
        f"""INSERT INTO {APPLIED_STEPS} (migration, step, run_id, details)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (migration, step) DO UPDATE SET run_id = EXCLUDED.run_id,
                applied_at = now(), details = EXCLUDED.details""",
        (migration, step, run_id, json.dumps(details, default=str)),
    )


def mark_undone(conn: psycopg.Connection, migration: str, step: str) -> None:
    conn.execute(
        f"DELETE FROM {APPLIED_STEPS} WHERE migration = %s AND step = %s",
        (migration, step),
    )
