"""The lifecycle harness: one migration through every step, up and down, twice (pgroll style).

    setup SQL -> snapshot
    up every step -> after_up(conn) -> down every step -> database == snapshot
    up every step again; before schema_change and cutover: for every k, running the step's first
        k actions and then its undo (what the engine does when action k+1 fails) leaves the
        database as it was; after each step: running it again is skipped, and running its
        actions again (starts, backfill statements over every row, completes) changes nothing
    down every step again; after each one, running its undo actions again changes nothing
    -> database == snapshot

run_under_writes runs the same migration up and down while a simulated application (writers.py)
inserts, updates and deletes rows, and checks that every write it made survives both.

A snapshot is `pg_dump --schema-only` of the database without the tool's schemas, exactly as
printed (column order included), plus every user table's rows, columns in name order, sorted.
Only an operation that says in plan that a down after cutover cannot keep the column order
(`column_order_note`: alter_column, drop_column) is compared with each CREATE TABLE's column
lines sorted, and only for that difference. The many in-between checks use `quick_snapshot`,
read from the catalog in a few queries, to keep a case at a couple of seconds.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import psycopg

from pg_server import pg_dump
from migration_dags.engine import MigrationEngine
from migration_dags.expand import CompleteOptions
from migration_dags.fingerprint import data_fingerprint
from migration_dags.identifiers import TableName, quote
from migration_dags.db import ActionRunner, connect
from migration_dags.spec import Migration, load_migration
from migration_dags.state import BACKUP_SCHEMA, STATE_SCHEMA
from migration_dags.steps import STEPS
from migration_dags.steps.verbs import backfill_tasks, down_actions, up_actions

if TYPE_CHECKING:
    from operations.writers import Application, Workload
TOOL_SCHEMAS = (STATE_SCHEMA, BACKUP_SCHEMA)
Check = Callable[[psycopg.Connection], None]


# -- snapshots ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    schema: str
    rows: dict[str, list[str]]
    schema_columns_sorted: str = ""


def user_tables(conn: psycopg.Connection) -> list[TableName]:
    rows = conn.execute(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s)
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg\\_%%'
           ORDER BY 1, 2""",
        (list(TOOL_SCHEMAS),),
    ).fetchall()
    return [TableName(s, t) for s, t in rows]


def table_rows(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every user table's rows as text, its columns in name order, sorted."""
    out = {}
    for table in user_tables(conn):
        cols = [r[0] for r in conn.execute(
            """SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0
               AND NOT attisdropped ORDER BY attname""", (table.sql,))]
        row = "ROW(" + ", ".join(f"t.{quote(c)}" for c in cols) + ")::text"
        out[str(table)] = sorted(r[0] for r in conn.execute(f"SELECT {row} FROM {table.sql} AS t"))
    return out


def normalize_dump(text: str, sort_columns: bool = False) -> str:
    """pg_dump output without comments and settings; with `sort_columns`, each CREATE TABLE's
    column lines sorted (hides column order: only for a change plan announced)."""
    lines = [
        ln for ln in text.splitlines()
        if ln.strip() and not ln.startswith("--") and not ln.startswith("SET ")
        and not ln.startswith("SELECT pg_catalog.set_config")
        and not ln.startswith(("\\restrict ", "\\unrestrict "))  # a random key per dump
        # pg_dump 16 reading a PostgreSQL 15 server we started ourselves prints a per-column
        # pg_attver option that changes between two identical runs: not part of the schema
        and "SET (pg_attver=" not in ln
    ]
    out, body = [], None
    for ln in lines:
        if body is not None:
            if ln.startswith(")"):
                out += sorted(b.rstrip(",") for b in body) if sort_columns else body
                out.append(ln)
                body = None
            else:
                body.append(ln)
            continue
        out.append(ln)
        if re.match(r"^CREATE (UNLOGGED )?TABLE .*\($", ln):
            body = []
    return "\n".join(out)


def snapshot(database_url: str) -> Snapshot:
    excludes = [f"--exclude-schema={s}" for s in TOOL_SCHEMAS]
    dump = subprocess.run(
        [pg_dump(), "--schema-only", "--no-owner", *excludes, "-d", database_url],
        check=True, capture_output=True, text=True,
    ).stdout
    with psycopg.connect(database_url, autocommit=True) as conn:
        return Snapshot(normalize_dump(dump), table_rows(conn), normalize_dump(dump, sort_columns=True))


_CATALOG = r"""
SELECT 'column', c.oid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.oid = ANY(%(rels)s) AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', conrelid::regclass::text, conname, pg_get_constraintdef(oid) || ' ' || convalidated
FROM pg_constraint WHERE conrelid = ANY(%(rels)s)
UNION ALL
SELECT 'index', indrelid::regclass::text, indexrelid::regclass::text,
       pg_get_indexdef(indexrelid) || ' ' || indisvalid
FROM pg_index WHERE indrelid = ANY(%(rels)s)
UNION ALL
SELECT 'trigger', tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
FROM pg_trigger WHERE tgrelid = ANY(%(rels)s) AND NOT tgisinternal
UNION ALL
SELECT 'view', schemaname, viewname, definition FROM pg_views
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'function', n.nspname, p.oid::regprocedure::text, pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p')
UNION ALL
SELECT 'relation', n.nspname, c.relname, c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', %(state)s, %(backup)s) AND n.nspname NOT LIKE 'pg\_%%'
ORDER BY 1, 2, 3
"""


def quick_snapshot(conn: psycopg.Connection) -> tuple:
    """Cheaper than `snapshot` (no pg_dump): every user table's columns, constraints, indexes and
    triggers, every view and function definition (the tool's schema included, so a leftover
    trigger function shows), every user relation's name and kind, and each table's row
    fingerprint."""
    tables = user_tables(conn)
    oids = [conn.execute("SELECT to_regclass(%s)::oid", (t.sql,)).fetchone()[0] for t in tables]
    catalog = conn.execute(_CATALOG, {"rels": oids, "state": STATE_SCHEMA, "backup": BACKUP_SCHEMA}).fetchall()
    return catalog, {str(t): data_fingerprint(conn, t) for t in tables}


def assert_same(before: Snapshot, after: Snapshot, when: str, order_may_differ: bool = False) -> None:
    if order_may_differ:
        a, b = before.schema_columns_sorted, after.schema_columns_sorted
    else:
        a, b = before.schema, after.schema
    assert b == a, f"schema differs {when}:\n" + _diff(a, b)
    assert after.rows == before.rows, f"rows differ {when}: " + _row_diff(before.rows, after.rows)


def _diff(a: str, b: str) -> str:
    import difflib

    return "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), "before", "after", lineterm=""))


def _row_diff(a: dict, b: dict) -> str:
    parts = []
    for table in sorted(set(a) | set(b)):
        x, y = a.get(table, []), b.get(table, [])
        if x != y:
            gone, new = sorted(set(x) - set(y))[:3], sorted(set(y) - set(x))[:3]
            parts.append(f"{table}: {len(x)} -> {len(y)} rows, e.g. missing {gone}, extra {new}")
    return "; ".join(parts)


# -- migrations --------------------------------------------------------------------------------
def write_migration(migrations_dir: Path, yaml_text: str) -> Migration:
    text = textwrap.dedent(yaml_text).strip() + "\n"
    name = re.search(r"^name:\s*(\S+)", text, re.M).group(1)
    path = migrations_dir / f"{name}.yaml"
    path.write_text(text)
    return load_migration(path)


def engine_for(database_url: str, migrations_dir: Path, yaml_text: str) -> MigrationEngine:
    """An engine whose cutover does not wait for a quiet period: these tests write the tables
    in the old shape as they please (the release protocol is tests/expand's)."""
    return MigrationEngine(write_migration(migrations_dir, yaml_text), database_url,
                           complete_options=CompleteOptions(quiet_seconds=0))


def run_sql(database_url: str, sql: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(textwrap.dedent(sql))


def up_all(engine: MigrationEngine) -> None:
    for step in STEPS:
        engine.up(step)


def down_all(engine: MigrationEngine) -> None:
    for step in reversed(STEPS):
        engine.down(step)


# -- re-running a step's own actions -------------------------------------------------------------
def _rerun_up(engine: MigrationEngine, conn: psycopg.Connection, step: str) -> None:
    ctx = engine.context(conn)
    ops = engine.migration.operations
    if step == "backfill":
        for task in backfill_tasks(ops, ctx):
            if task.copy is not None:  # rows from another database: copy every one again
                changed = task.copy.copy_range(conn)
            elif task.rewrites_null_results:  # writes NULL-valued rows again: no value changes
                before = data_fingerprint(conn, task.written_table)
                conn.execute(task.for_range("TRUE"))
                changed = 0 if data_fingerprint(conn, task.written_table) == before else "some"
            else:
                changed = conn.execute(task.for_range("TRUE")).rowcount
            assert changed == 0, f"backfill {task.description!r} changed {changed} rows when re-run"
    elif step != "validation":  # validation's verb gives checks, not actions
        ActionRunner(conn).run_all(up_actions(step, ops, ctx))


def _rerun_down(engine: MigrationEngine, conn: psycopg.Connection, step: str) -> None:
    ActionRunner(conn).run_all(down_actions(step, engine.migration.operations, engine.context(conn)))


def _check_half_done_undo(engine: MigrationEngine, conn: psycopg.Connection, step: str) -> None:
    """Stop the step after each of its actions in turn and undo it, as the engine does when the
    next action fails (with the context computed before the step, as the engine's undo has it)."""
    ctx = engine.context(conn)
    ops = engine.migration.operations
    actions = up_actions(step, ops, ctx)
    undo = down_actions(step, ops, ctx)
    runner = ActionRunner(conn)
    state = quick_snapshot(conn)
    for k in range(1, len(actions)):
        runner.run_all(actions[:k])
        runner.run_all(undo)
        assert quick_snapshot(conn) == state, (
            f"undoing {step} after its first {k} actions (last: {actions[k - 1].description}) "
            "left the database changed")


# -- the lifecycle -------------------------------------------------------------------------------
def run_lifecycle(
    database_url: str,
    migrations_dir: Path,
    migration_yaml: str,
    setup_sql: str = "",
    after_up: Check | None = None,
    after_down: Check | None = None,
) -> MigrationEngine:
    """Run the whole cycle described in the module docstring; returns the engine."""
    if setup_sql:
        run_sql(database_url, setup_sql)
    engine = engine_for(database_url, migrations_dir, migration_yaml)
    plan = engine.plan()  # the dry run works before anything is applied
    # only a column order change plan announced may remain after down
    moved = any(op.column_order_note() for op in engine.migration.operations)
    assert moved == any("column order" in n for n in plan.get("notes", []))
    before = snapshot(database_url)

    up_all(engine)
    if after_up is not None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            after_up(conn)
    down_all(engine)
    assert_same(before, snapshot(database_url), "after the first down", moved)
    if after_down is not None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            after_down(conn)

    with connect(database_url, "lifecycle test") as conn:
        for step in STEPS:
            if step in ("schema_change", "cutover"):
                _check_half_done_undo(engine, conn, step)
            engine.up(step)
            assert engine.up(step).skipped_reason == "already applied"
            state = quick_snapshot(conn)
            _rerun_up(engine, conn, step)
            assert quick_snapshot(conn) == state, f"re-running the actions of {step} changed the database"
        for step in reversed(STEPS):
            engine.down(step)
            assert engine.down(step).skipped_reason == "not applied"
            state = quick_snapshot(conn)
            _rerun_down(engine, conn, step)
            assert quick_snapshot(conn) == state, f"re-running the undo of {step} changed the database"
    assert_same(before, snapshot(database_url), "after the second down", moved)
    return engine


def assert_unchanged_by(database_url: str, action: Callable[[], object], error: type[BaseException]):
    """Run `action`, expect `error`, and prove the database did not change (quick snapshot: the
    tool's own state tables may change, nothing else). Returns the error."""
    import pytest

    with psycopg.connect(database_url, autocommit=True) as conn:
        before = quick_snapshot(conn)
        with pytest.raises(error) as caught:
            action()
        assert quick_snapshot(conn) == before, f"the database changed although {error.__name__} was raised"
    return caught.value


# -- under live writes ---------------------------------------------------------------------------
def run_under_writes(
    database_url: str,
    migrations_dir: Path,
    migration_yaml: str,
    setup_sql: str,
    workload: "Workload",
    after_up: Check | None = None,
) -> "Application":
    """Every step up, then every step down, while a simulated application (writers.py) inserts,
    updates and deletes rows of the workload's table. After up (the application paused): after_up,
    and every application write is there. After down: the schema is exactly as before (pg_dump),
    every application write is there, every row it did not write equals its value before.
    Each step's up and down raising nothing is the engine's exit 0. Returns the application."""
    from operations.writers import Application, check_writes_survived, rows_as_text

    run_sql(database_url, setup_sql)
    engine = engine_for(database_url, migrations_dir, migration_yaml)
    before = snapshot(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows_before = rows_as_text(conn, workload.table, workload.key)
    app = Application(database_url, workload).start()
    try:
        app.wait_for_writes(20)
        up_all(engine)
        app.wait_for_writes(20)
        app.pause()
        with psycopg.connect(database_url, autocommit=True) as conn:
            if after_up is not None:
                after_up(conn)
            check_writes_survived(app, rows_as_text(conn, workload.table, workload.key), {},
                                  workload.aliases, "after up")
        app.resume()
        app.wait_for_writes(20)
        for step in reversed(STEPS):
            engine.down(step)
            app.wait_for_writes(5)
    finally:
        app.stop()
    after = snapshot(database_url)
    # only a column order change plan announced may remain after down (see run_lifecycle)
    if any(op.column_order_note() for op in engine.migration.operations):
        a, b = before.schema_columns_sorted, after.schema_columns_sorted
    else:
        a, b = before.schema, after.schema
    assert b == a, "schema differs after down:\n" + _diff(a, b)
    with psycopg.connect(database_url, autocommit=True) as conn:
        check_writes_survived(app, rows_as_text(conn, workload.table, workload.key), rows_before,
                              when="after down")
        assert conn.execute("SELECT to_regnamespace(%s)", (STATE_SCHEMA,)).fetchone()[0] is None, \
            "the tool's schemas are left after the last down"
    return app
