"""Counting the writes still made in the old shape, so that `complete` contracts only once the old
release has stopped (a proven switch).

While a migration is expanded, every table whose old-shape writes would go wrong after complete
(each operation's `old_shape_tables`: a renamed or dropped column, a column changing type, a
NOT NULL or a computed column the old code does not fill) carries a statement trigger. It counts
each INSERT, UPDATE or DELETE made from a session whose search_path does not include the
migration's version schema (the new release puts it there; expand/version_schema.py) and records
when the last one happened. The tool's own writes are not counted.

The count lives in two sequences in the tool's schema, not in a table: nextval and setval are not
transactional and take no row lock, so concurrent writers never wait on each other for it.

`complete` (the cutover step) reads them first: while the last old-shape write is more recent than
the quiet period (--quiet-seconds, default 300), it refuses with OldShapeWritesError (exit 10) and
changes nothing; `--force` contracts anyway, and the run records it. After the contract the
triggers go; a down back to the expanded state puts them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import psycopg

from ..actions import Action
from ..db.tool_writes import TOOL_WRITE_SETTING
from ..errors import OldShapeWritesError
from ..identifiers import TableName, literal, quote, short_name
from ..state import STATE_SCHEMA
from .version_schema import version_schema_name

if TYPE_CHECKING:
    from ..spec import Migration

DEFAULT_QUIET_SECONDS = 300.0
COUNT_FUNCTION = f"{quote(STATE_SCHEMA)}.count_old_shape_write"


@dataclass(frozen=True)
class CompleteOptions:
    """How `complete` decides the old release has stopped."""

    quiet_seconds: float = DEFAULT_QUIET_SECONDS
    force: bool = False


@dataclass(frozen=True)
class OldShapeWrites:
    count: int
    last_at: datetime | None
    age_s: float | None  # seconds since the last one, by the server's clock

    def as_dict(self) -> dict:
        return {"count": self.count,
                "last_at": self.last_at.isoformat() if self.last_at else None,
                "age_s": None if self.age_s is None else round(self.age_s, 1)}


def old_shape_tables(migration: "Migration") -> list[TableName]:
    made = migration.created_tables()
    return sorted({t for op in migration.operations for t in op.old_shape_tables()} - made,
                  key=str)


def _sequences(migration: str) -> tuple[str, str]:
    count = short_name("mdg", migration, "old_writes")
    last = short_name("mdg", migration, "old_write_at")
    return (f"{quote(STATE_SCHEMA)}.{quote(count)}", f"{quote(STATE_SCHEMA)}.{quote(last)}")


def _trigger(migration: str) -> str:
    return short_name("mdg", migration, "old_shape_writes")


_FUNCTION_SQL = f"""CREATE OR REPLACE FUNCTION {COUNT_FUNCTION}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $migration_dags$
-- TG_ARGV: the version schema, the count sequence, the last-write sequence. SECURITY DEFINER so
-- that the application's role needs no right on the tool's sequences; no SET search_path, which
-- would hide the caller's; every name below is qualified.
BEGIN
  IF NOT (TG_ARGV[0] OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(false)))
     AND COALESCE(pg_catalog.current_setting('{TOOL_WRITE_SETTING}', true), '') OPERATOR(pg_catalog.=) ''
     AND pg_catalog.current_setting('application_name') NOT LIKE 'migration-dags %' THEN
    PERFORM pg_catalog.nextval(TG_ARGV[1]::regclass);
    PERFORM pg_catalog.setval(TG_ARGV[2]::regclass,
      (pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 1000)::bigint);
  END IF;
  RETURN NULL;
END
$migration_dags$"""


def count_actions(migration: "Migration") -> list[Action]:
    """The counting triggers (idempotent); none when no table's old shape breaks."""
    tables = old_shape_tables(migration)
    if not tables:
        return []
    count, last = _sequences(migration.name)
    trigger = _trigger(migration.name)
    actions = [Action(
        "the function and sequences counting writes in the old shape",
        f"{_FUNCTION_SQL};\nCREATE SEQUENCE IF NOT EXISTS {count};\n"
        f"CREATE SEQUENCE IF NOT EXISTS {last} MINVALUE 0 START 0",
        takes_lock=False,
    )]
    for table in tables:
        schema = version_schema_name(table.schema, migration.name)
        args = ", ".join(literal(a) for a in (schema, count, last))
        actions.append(Action(
            f"trigger on {table}: count writes not made through {schema}",
            f"CREATE OR REPLACE TRIGGER {quote(trigger)} AFTER INSERT OR UPDATE OR DELETE ON "
            f"{table.sql} FOR EACH STATEMENT EXECUTE FUNCTION {COUNT_FUNCTION}({args})",
            only_if=f"SELECT to_regclass({table.regclass_literal}) IS NOT NULL",
        ))
    return actions


def drop_count_actions(migration: "Migration", keep_counts: bool = False) -> list[Action]:
    """The counting triggers dropped; with keep_counts the sequences stay (a complete keeps
    what was seen, for status and the audit)."""
    tables = old_shape_tables(migration)
    if not tables:
        return []
    trigger = _trigger(migration.name)
    actions = [Action(f"drop the old-shape write counter on {t}",
                      f"DROP TRIGGER IF EXISTS {quote(trigger)} ON {t.sql}",
                      only_if=f"SELECT to_regclass({t.regclass_literal}) IS NOT NULL")
               for t in tables]
    if not keep_counts:
        count, last = _sequences(migration.name)
        actions.append(Action("drop the old-shape write counts",
                              f"DROP SEQUENCE IF EXISTS {count}, {last}", takes_lock=False))
        actions.append(Action(
            "drop the counting function, unless another migration's counters use it",
            f"DROP FUNCTION IF EXISTS {COUNT_FUNCTION}()", takes_lock=False,
            only_if=(f"SELECT to_regprocedure({literal(COUNT_FUNCTION + '()')}) IS NOT NULL AND "
                     f"NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgfoid = "
                     f"to_regprocedure({literal(COUNT_FUNCTION + '()')}))")))
    return actions


def read_old_shape_writes(conn: psycopg.Connection, migration: str) -> OldShapeWrites | None:
    """What the counters saw; None when the migration has none (nothing expanded to watch)."""
    count, last = _sequences(migration)
    if conn.execute("SELECT to_regclass(%s) IS NULL OR to_regclass(%s) IS NULL",
                    (count, last)).fetchone()[0]:
        return None
    n, called = conn.execute(f"SELECT last_value, is_called FROM {count}").fetchone()
    at_ms, at_called = conn.execute(f"SELECT last_value, is_called FROM {last}").fetchone()
    if not called or not at_called:
        return OldShapeWrites(0, None, None)
    now_ms = conn.execute("SELECT extract(epoch FROM clock_timestamp()) * 1000").fetchone()[0]
    last_at = datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc)
    return OldShapeWrites(int(n), last_at, max(0.0, (float(now_ms) - at_ms) / 1000))


def require_quiet(conn: psycopg.Connection, migration: "Migration",
                  options: CompleteOptions) -> OldShapeWrites | None:
    """Refuse (OldShapeWritesError) while an old-shape write is more recent than the quiet
    period, unless forced; return what was seen."""
    seen = read_old_shape_writes(conn, migration.name)
    if seen is None or seen.age_s is None or seen.age_s >= options.quiet_seconds or options.force:
        return seen
    tables = old_shape_tables(migration)
    paths = sorted({f"{version_schema_name(t.schema, migration.name)}, {t.schema}" for t in tables})
    raise OldShapeWritesError(
        migration.name, seen.count, seen.last_at.isoformat(timespec="seconds"), seen.age_s,
        options.quiet_seconds, ", ".join(str(t) for t in tables), " / ".join(paths))
