"""Change capture for the migration window: which keys the application wrote in a touched table.

From just before the backup until the backup step's down (or `restore`), each backed-up table with
a key carries one AFTER ROW trigger that upserts the written key into a capture table in
`migration_dags_backup`, named after the backup table (`capture_table`):

    <key columns>   the row's key (a key changed by an UPDATE counts as a delete and an insert)
    op              the application's last write: 'I' insert, 'U' update, 'D' delete
    written         what it wrote, column name -> value as jsonb: the whole row for an insert, the
                    columns an update changed (merged over earlier writes, `||`), '{}' for a delete

The row goes into the capture table in the application's own transaction, so a snapshot sees a
write and its capture together or neither. The trigger's WHEN clause skips the tool's own writes:
every tool write sets TOOL_WRITE_SETTING (backfill batches to their trigger's name or 'none',
restores to 'on'), and restores under `session_replication_role = replica` fire no trigger at all.
A trigger installed before the backup's snapshot may capture a few writes the backup already has:
such a key is merely counted as touched, never lost.

Cost: one index upsert per written row, plus a jsonb diff per UPDATE (bench/capture_bench.py).
"""

from __future__ import annotations

import psycopg

from ..actions import Action
from ..db.runner import ActionRunner, LockSettings
from ..db.tool_writes import TOOL_WRITE_SETTING
from ..identifiers import TableName, literal, quote, short_name
from .schema import BACKUP_SCHEMA, STATE_SCHEMA


def capture_table(backup: TableName) -> TableName:
    """The capture table that goes with a backup table (one name derived from the other)."""
    return TableName(BACKUP_SCHEMA, short_name("w", backup.name))


def capture_trigger(migration: str) -> str:
    return short_name("mdg_capture", migration)


def _function(migration: str, source: TableName) -> str:
    # named after the migration and the table, not the backup's run: a backup re-run after a
    # kill installs the same trigger text, so the applied schema does not depend on the run
    name = short_name("capture", migration, source.schema, source.name)
    return f"{quote(STATE_SCHEMA)}.{quote(name)}"


# The application's write: neither a backfill batch nor a restore set the tool's setting.
APPLICATION_WRITE = f"coalesce(current_setting('{TOOL_WRITE_SETTING}', true), '') = ''"


def _upsert(cap: TableName, keys: list[str], row: str, op: str, written: str) -> str:
    cols = ", ".join(quote(k) for k in keys)
    vals = ", ".join(f"{row}.{quote(k)}" for k in keys)
    if op == "U":
        on_conflict = ("op = CASE WHEN c.op = 'I' THEN 'I' ELSE 'U' END, "
                       "written = c.written || EXCLUDED.written")
    else:
        on_conflict = "op = EXCLUDED.op, written = EXCLUDED.written"
    return (f"INSERT INTO {cap.sql} AS c ({cols}, op, written) VALUES ({vals}, '{op}', {written}) "
            f"ON CONFLICT ({cols}) DO UPDATE SET {on_conflict};")


def install_sql(source: TableName, backup: TableName, keys: list[str], migration: str) -> list[str]:
    """The capture table, its function and the trigger on `source` (idempotent)."""
    cap = capture_table(backup)
    cols = ", ".join(quote(k) for k in keys)
    same_key = " AND ".join(f"OLD.{quote(k)} IS NOT DISTINCT FROM NEW.{quote(k)}" for k in keys)
    fn = _function(migration, source)
    function = f"""CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger
LANGUAGE plpgsql AS $migration_dags$
DECLARE
  mdg__old jsonb;
  mdg__written jsonb;
BEGIN
  IF TG_OP = 'DELETE' THEN
    {_upsert(cap, keys, 'OLD', 'D', "'{}'")}
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND {same_key} THEN
    mdg__old := to_jsonb(OLD);
    SELECT coalesce(jsonb_object_agg(e.key, e.value), '{{}}') INTO mdg__written
    FROM jsonb_each(to_jsonb(NEW)) AS e WHERE e.value IS DISTINCT FROM mdg__old -> e.key;
    {_upsert(cap, keys, 'NEW', 'U', 'mdg__written')}
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN  -- the key changed: the old key is gone
    {_upsert(cap, keys, 'OLD', 'D', "'{}'")}
  END IF;
  {_upsert(cap, keys, 'NEW', 'I', 'to_jsonb(NEW)')}
  RETURN NULL;
END
$migration_dags$"""
    return [
        f"CREATE TABLE IF NOT EXISTS {cap.sql} AS SELECT {cols} FROM {source.sql} WITH NO DATA",
        f"ALTER TABLE {cap.sql} ADD COLUMN IF NOT EXISTS op char(1) NOT NULL DEFAULT 'U', "
        f"ADD COLUMN IF NOT EXISTS written jsonb NOT NULL DEFAULT '{{}}'",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {quote(short_name(cap.name, 'key'))} ON {cap.sql} ({cols})",
        function,
        f"CREATE OR REPLACE TRIGGER {quote(capture_trigger(migration))} "
        f"AFTER INSERT OR UPDATE OR DELETE ON {source.sql} FOR EACH ROW "
        f"WHEN ({APPLICATION_WRITE}) EXECUTE FUNCTION {fn}()",
    ]


def install(conn: psycopg.Connection, source: TableName, backup: TableName, keys: list[str],
            migration: str, lock: LockSettings = LockSettings()) -> None:
    """Start capturing writes to `source`: one short transaction, under lock_timeout with retries
    (the trigger takes a brief ShareRowExclusiveLock on the table, and on each of its partitions)."""
    ActionRunner(conn, lock).run(Action(
        f"capture the application's writes to {source}",
        ";\n".join(install_sql(source, backup, keys, migration))))


def remove(conn: psycopg.Connection, source: TableName, backup: TableName, migration: str,
           lock: LockSettings = LockSettings()) -> None:
    """Stop capturing and drop what capture made (idempotent)."""
    stop(conn, source, migration, lock)
    ActionRunner(conn, lock).run(Action(
        f"drop the record of the application's writes to {source}",
        f"DROP FUNCTION IF EXISTS {_function(migration, source)}();\n"
        f"DROP TABLE IF EXISTS {capture_table(backup).sql}", takes_lock=False))


def stop(conn: psycopg.Connection, source: TableName, migration: str,
         lock: LockSettings = LockSettings()) -> None:
    """Drop the capture trigger of `migration` from `source`, if both exist. Under lock_timeout
    with retries: on a partitioned table the drop locks every partition, in an order an
    application's foreign-key checks may take the other way round (a deadlock is retried too)."""
    ActionRunner(conn, lock).run(Action(
        f"stop capturing the application's writes to {source}",
        f"DROP TRIGGER IF EXISTS {quote(capture_trigger(migration))} ON {source.sql}",
        only_if=f"SELECT to_regclass({source.regclass_literal}) IS NOT NULL"))


def exists(conn: psycopg.Connection, backup: TableName) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                        (capture_table(backup).sql,)).fetchone()[0]


def rename_written_sql(backup: TableName, old: str, new: str) -> str:
    """After a column rename: what the application wrote under the old name is under the new one
    (run in the rename's transaction, which blocks writes)."""
    cap = capture_table(backup)
    o, n = literal(old), literal(new)
    return (f"UPDATE {cap.sql} SET written = (written - {o}) || jsonb_build_object({n}, written -> {o}) "
            f"WHERE written ? {o}")


def key_match(keys: list[str], a: str, b: str) -> str:
    return " AND ".join(f"{a}.{quote(k)} = {b}.{quote(k)}" for k in keys)


def untouched(cap: TableName, keys: list[str], alias: str) -> str:
    """SQL true when the application has not written the row `alias` since the backup."""
    return f"NOT EXISTS (SELECT 1 FROM {cap.sql} AS w WHERE {key_match(keys, 'w', alias)})"


def net_writes_sql(backup: TableName, keys: list[str]) -> str:
    """(inserted, deleted): keys the application inserted that the backup lacks and still exist
    by its last write, and backed-up keys whose last write is a delete.  An outer join, not
    EXISTS per write: the server may hash the (small) capture table and read the backup once,
    so a hashes-only backup needs no index on its key (PostgreSQL 15 hashes an anti-join's
    inner side only: the whole backup)."""
    cap = capture_table(backup)
    cols = ", ".join(quote(k) for k in keys)
    return (f"SELECT count(*) FILTER (WHERE w.op <> 'D' AND b.mdg_found IS NULL), "
            f"count(*) FILTER (WHERE w.op = 'D' AND b.mdg_found IS NOT NULL) "
            f"FROM {cap.sql} AS w LEFT JOIN (SELECT {cols}, true AS mdg_found FROM {backup.sql}) AS b "
            f"ON {key_match(keys, 'b', 'w')}")
