"""User triggers and backfill batches: which fire, what stands in for the ones that do not.

By default a backfill's batches run with `session_replication_role = replica` (batches/runner.py,
`_batch_settings`), so the users' own triggers (an `updated_at` trigger, an audit trigger) do not
turn the tool's writes into changes that the rollback could not undo. What stays enforced, and how:

- the tool's own sync triggers are created `ENABLE ALWAYS` (`enable_always`), so they fire in
  replica mode too and keep new and old shapes in step;
- CHECK and NOT NULL constraints and unique indexes are not triggers: replica mode leaves them on;
- foreign keys ARE triggers, skipped in replica mode: for every foreign key a backfill's written
  table has or is referenced by, validation runs a blocking parity check counting rows whose key
  has no referenced row (`foreign_key_checks`), so a backfill cannot leave orphans behind.

`user_triggers: fire` on a backfill operation keeps the normal role for its batches (for the rare
trigger that must run). Setting the role needs superuser or, on PostgreSQL 15+,
`GRANT SET ON PARAMETER session_replication_role TO <role>`: validation says so before any change
(`require_role_can_skip`). `plan` lists every user trigger on a written table, and whether it fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import psycopg

from ...errors import SchemaValidationError
from ...identifiers import TableName, quote
from ...state import STATE_SCHEMA
from ..base import BackfillTask, ParityCheck, first_keys_sql


# the `user_triggers` field of the operations that backfill (backfill, add_column, alter_column)
UserTriggers = Literal["skip", "fire"]


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: TableName
    columns: tuple[str, ...]
    ref_table: TableName
    ref_columns: tuple[str, ...]


def enable_always(table: TableName, trigger: str) -> str:
    """SQL making a tool trigger fire in replica mode too (the backfill's batches run in it)."""
    return f"ALTER TABLE {table.sql} ENABLE ALWAYS TRIGGER {quote(trigger)}"


def read_foreign_keys(conn: psycopg.Connection, tables: set[TableName]) -> dict[TableName, list[ForeignKey]]:
    """table -> the foreign keys it has and those that reference it (top-level ones only)."""
    out: dict[TableName, list[ForeignKey]] = {}
    for table in sorted(tables):
        rows = conn.execute(
            """SELECT co.conname, cn.nspname, c.relname,
                      (SELECT array_agg(a.attname ORDER BY k.o) FROM unnest(co.conkey)
                         WITH ORDINALITY k(n, o) JOIN pg_attribute a
                         ON a.attrelid = co.conrelid AND a.attnum = k.n),
                      rn.nspname, r.relname,
                      (SELECT array_agg(a.attname ORDER BY k.o) FROM unnest(co.confkey)
                         WITH ORDINALITY k(n, o) JOIN pg_attribute a
                         ON a.attrelid = co.confrelid AND a.attnum = k.n)
               FROM pg_constraint co
               JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
               JOIN pg_class r ON r.oid = co.confrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace
               WHERE co.contype = 'f' AND co.conparentid = 0
                 AND to_regclass(%s) IN (co.conrelid, co.confrelid)
               ORDER BY co.conname""",
            (table.sql,),
        ).fetchall()
        out[table] = [ForeignKey(n, TableName(s, t), tuple(cols), TableName(rs, rt), tuple(rcols))
                      for n, s, t, cols, rs, rt, rcols in rows]
    return out


def foreign_key_checks(table: TableName, written: set[str] | None, fks: list[ForeignKey],
                       prefix: str) -> list[ParityCheck]:
    """Blocking checks standing in for the FK triggers a replica-mode batch skipped: for each FK
    of `table` (or referencing it) over a written column (`written` None: every column, as for
    inserted rows), the rows whose key has no referenced row."""
    checks = []
    for fk in fks:
        mine = fk.table == table and (written is None or set(fk.columns) & written)
        theirs = fk.ref_table == table and written is not None and set(fk.ref_columns) & written
        if not (mine or theirs):
            continue
        cols = ", ".join(f"c.{quote(c)}" for c in fk.columns)
        match = " AND ".join(f"r.{quote(rc)} = c.{quote(c)}" for c, rc in zip(fk.columns, fk.ref_columns))
        # MATCH SIMPLE: a key with a NULL column references nothing and is not an orphan
        source = f"FROM {fk.table.sql} AS c"
        orphans = (" AND ".join(f"c.{quote(c)} IS NOT NULL" for c in fk.columns)
                   + f" AND NOT EXISTS (SELECT 1 FROM {fk.ref_table.sql} AS r WHERE {match})")
        checks.append(ParityCheck(
            f"{prefix}.foreign_key.{fk.name}",
            f"foreign key {fk.name} of {fk.table} holds (its trigger does not fire on backfill "
            "batches, which run in replica mode)",
            f"SELECT count(*) {source} WHERE {orphans}",
            first_keys_sql(f"ROW({cols})", source, orphans, cols),
        ))
    return checks


def user_triggers(conn: psycopg.Connection, table: TableName, event: str) -> list[tuple[str, str, str]]:
    """(table or partition, trigger name, tgenabled) of each user trigger on `table` and its
    partitions for `event` ('UPDATE' or 'INSERT'); the tool's own triggers are left out."""
    bit = {"INSERT": 4, "UPDATE": 16}[event]
    return [tuple(r) for r in conn.execute(
        """SELECT t.tgrelid::regclass::text, t.tgname, t.tgenabled::text FROM pg_trigger t
           JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE (t.tgrelid = to_regclass(%s)
                  OR t.tgrelid IN (SELECT relid FROM pg_partition_tree(to_regclass(%s))))
             AND NOT t.tgisinternal AND t.tgparentid = 0 AND n.nspname <> %s
             AND t.tgtype & %s <> 0
           ORDER BY 1, 2""",
        (table.sql, table.sql, STATE_SCHEMA, bit),
    )]


def plan_notes(conn: psycopg.Connection, tasks: list[BackfillTask]) -> list[str]:
    """One line per user trigger on a table a backfill writes: whether it fires on the batches."""
    notes = []
    for task in tasks:
        event = "INSERT" if task.writes is not None else "UPDATE"
        for rel, name, enabled in user_triggers(conn, task.written_table, event):
            if enabled == "D":
                continue
            fires = task.user_triggers == "fire" and enabled in ("O", "A") or (
                task.user_triggers != "fire" and enabled in ("A", "R"))
            how = ("fires on its batches (user_triggers: fire)" if task.user_triggers == "fire"
                   else "fires on its batches anyway (ENABLE ALWAYS/REPLICA)" if fires
                   else "does not fire on its batches (they run with session_replication_role = "
                        "replica; set user_triggers: fire on the operation if it must)")
            notes.append(f"user trigger {name} on {rel} ({event}): {task.description}: {how}")
    return notes


def role_can_skip(conn: psycopg.Connection) -> bool:
    if conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
        return True
    if conn.info.server_version < 150000:  # no GRANT SET ON PARAMETER before 15
        return False
    return conn.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')").fetchone()[0]


def require_role_can_skip(conn: psycopg.Connection, where: str, tasks: list[BackfillTask]) -> None:
    """Before any change: a backfill whose batches skip user triggers needs a role that may set
    session_replication_role."""
    skipping = [t for t in tasks if t.user_triggers != "fire"]
    if skipping and not role_can_skip(conn):
        raise SchemaValidationError(
            where, f"the backfill ({skipping[0].description}) runs its batches with "
            "session_replication_role = replica so that user triggers do not fire on them, and "
            "this role may not set it: connect as a superuser, or GRANT SET ON PARAMETER "
            "session_replication_role TO the role (PostgreSQL 15+), or set user_triggers: fire "
            "on the operation (then its triggers change the rows, and the rollback cannot undo that)")
