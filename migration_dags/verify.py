"""`migration-dags verify`: prove a migration on a copy of the target before it reaches production.

For each migration: clone the target database (or a sample of it) into a scratch database on the
same server, then on the clone run

    up (backup, schema_change, backfill, validation with its suites, cutover)
    -> down (every step, the engine's own backup proof included)
    -> exact fingerprint: every user table's schema and data equal the clone's before `up`
    -> up again (a rolled-back migration must apply cleanly a second time)

and squawk on the SQL of every step (lint.py). Each check is one row of findings; the
migration passes only if every row does. The scratch database is dropped afterwards.

The clone: the schema from `pg_dump --section=pre-data` (no tool schemas), every table's rows by
COPY (with --sample-rows N: the first N rows of each table by primary key, plus every row that a
kept row references through a foreign key, so the constraints hold), then `--section=post-data`
(indexes, constraints, triggers) and the sequences' positions. Engine-only: no Dagster instance,
no runs in the history (verify changes nothing but its scratch database).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql

from .db import connect, display_url, libpq_url
from .engine import MigrationEngine
from .errors import MigrationError
from .fingerprint import data_fingerprint, schema_description, views_description
from .identifiers import TableName
from .lint import flagged, lint_migration
from .pg_tools import client_program, server_major_version
from .spec import Migration
from .state import BACKUP_SCHEMA, STATE_SCHEMA
from .steps import STEPS

TOOL_SCHEMAS = (STATE_SCHEMA, BACKUP_SCHEMA)
PASS, FAIL = "pass", "FAIL"


@dataclass
class Check:
    migration: str
    check: str
    result: str  # PASS or FAIL
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.result == PASS


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def as_dict(self) -> dict:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


# -- the whole check -------------------------------------------------------------------------------
def verify_migration(
    migration: Migration, target_url: str, *, sample_rows: int | None = None,
    exclude_rules: tuple[str, ...] = (), progress=lambda _line: None,
) -> list[Check]:
    name = migration.name
    checks: list[Check] = []

    def record(check: str, ok: bool, detail: str = "") -> bool:
        checks.append(Check(name, check, PASS if ok else FAIL, detail))
        progress(f"{name}: {check}: {'ok' if ok else 'FAILED'}{' (' + detail + ')' if detail and not ok else ''}")
        return ok

    with connect(target_url, "migration-dags verify") as conn:
        pg_version = f"{server_major_version(conn)}.0"
    try:
        findings = [f for f in flagged(lint_migration(migration, pg_version))
                    if f.rule not in exclude_rules]
        for f in findings:
            record(f"squawk {f.rule}", False,
                   f"{f.step} {f.direction} {f.operation}: {f.message} [{f.statement[:80]}]")
        if not findings:
            record("squawk", True, "no findings on the SQL of any step")
    except (OSError, RuntimeError) as exc:
        record("squawk", False, " ".join(str(exc).split()))

    scratch = f"mdg_verify_{name}_{os.getpid()}"[:63]
    started = time.monotonic()
    try:
        scratch_url = clone_database(target_url, scratch, sample_rows)
    except Exception as exc:  # noqa: BLE001 - any failure to clone is a finding, not a crash
        record("clone", False, _one_line(exc))
        drop_database(target_url, scratch)
        return checks
    try:
        what = f"sample of {sample_rows} rows per table" if sample_rows else "full copy"
        record("clone", True, f"{what} into {scratch} in {time.monotonic() - started:.1f} s")
        before = fingerprints(scratch_url)
        engine = _engine(migration, scratch_url)
        if not _steps(engine, "up", record):
            _steps(engine, "down", lambda *_a, **_k: True)  # leave nothing half-applied
            return checks
        if not _steps(engine, "down", record):
            return checks
        record("fingerprint", *compare(before, fingerprints(scratch_url)))
        _steps(_engine(migration, scratch_url), "up again", record)
    finally:
        drop_database(target_url, scratch)
    return checks


def _engine(migration: Migration, url: str) -> MigrationEngine:
    from .suites.runner import make_suite_checks

    return MigrationEngine(migration, url, extra_checks=make_suite_checks())


def _steps(engine: MigrationEngine, direction: str, record) -> bool:
    """Every step up (or down, in reverse), one finding row for the whole direction."""
    order = list(reversed(STEPS)) if direction == "down" else list(STEPS)
    started = time.monotonic()
    for step in order:
        try:
            engine.down(step) if direction == "down" else engine.up(step)
        except Exception as exc:  # noqa: BLE001 - the finding names the step and the error
            detail = exc.one_line() if isinstance(exc, MigrationError) else _one_line(exc)
            return record(direction, False, f"{step}: {detail}")
    return record(direction, True, f"{', '.join(order)} in {time.monotonic() - started:.1f} s")


# -- fingerprints -----------------------------------------------------------------------------------
def user_tables(conn: psycopg.Connection) -> list[TableName]:
    rows = conn.execute(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname <> ALL(%s)
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg\\_%%'
           ORDER BY 1, 2""", (list(TOOL_SCHEMAS),)).fetchall()
    return [TableName(s, t) for s, t in rows]


def fingerprints(url: str) -> dict[str, tuple[str, str]]:
    """Every user table: (its schema description with the views over it, its data fingerprint)."""
    with connect(url, "migration-dags verify fingerprint") as conn:
        return {str(t): ("\n".join(filter(None, (schema_description(conn, t),
                                                  views_description(conn, t)))),
                         data_fingerprint(conn, t)[1])
                for t in user_tables(conn)}


def compare(before: dict, after: dict) -> tuple[bool, str]:
    """(equal?, what differs, named line by line)."""
    diffs = []
    for table in sorted(set(before) | set(after)):
        if table not in after:
            diffs.append(f"{table}: missing after down")
            continue
        if table not in before:
            diffs.append(f"{table}: left behind by down")
            continue
        (schema_b, data_b), (schema_a, data_a) = before[table], after[table]
        if schema_b != schema_a:
            old, new = set(schema_b.splitlines()), set(schema_a.splitlines())
            diffs += [f"{table}: {line} missing after down" for line in sorted(old - new)]
            diffs += [f"{table}: {line} left behind by down" for line in sorted(new - old)]
        if data_b != data_a:
            diffs.append(f"{table}: data differs (rows:fingerprint {data_b} before, {data_a} after)")
    if diffs:
        return False, "; ".join(diffs)
    return True, f"{len(before)} tables: schema and data exactly as before up"


# -- cloning ------------------------------------------------------------------------------------------
def clone_database(source_url: str, scratch: str, sample_rows: int | None = None) -> str:
    """A fresh database `scratch` on the source's server holding the source's user schema and
    rows (or a foreign-key-closed sample); returns its URL."""
    source_url = libpq_url(source_url)
    with psycopg.connect(source_url, autocommit=True) as conn:
        major = server_major_version(conn)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    scratch_url = psycopg.conninfo.make_conninfo(source_url, dbname=scratch)
    pg_dump = client_program("pg_dump", major)
    with psycopg.connect(source_url) as src, psycopg.connect(scratch_url, autocommit=True) as dst:
        dst.execute(_dump(pg_dump, source_url, "pre-data"))
        tables = user_tables(src)
        for table in tables:
            _copy_rows(src, dst, table, _sample_where(src, table, sample_rows))
        if sample_rows:
            _close_foreign_keys(src, dst)
        dst.execute(_dump(pg_dump, source_url, "post-data"))
        _copy_sequence_positions(src, dst)
        dst.execute("ANALYZE")
    return scratch_url


def drop_database(server_url: str, name: str) -> None:
    try:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.Error:
        pass


def _dump(pg_dump: str, url: str, section: str) -> str:
    argv = [pg_dump, f"--section={section}", "--no-owner", "--no-privileges",
            *[f"--exclude-schema={s}" for s in TOOL_SCHEMAS], "-d", url]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"pg_dump --section={section} of {display_url(url)} failed: "
                           f"{_one_line(done.stderr)}")
    # psql meta-commands (pg_dump 15.14+/16.10+ print \restrict KEY) are not SQL
    return "\n".join(l for l in done.stdout.splitlines() if not l.startswith("\\"))


def _columns(conn: psycopg.Connection, table: TableName) -> list[str]:
    """The columns COPY can write: not dropped, not generated."""
    return [r[0] for r in conn.execute(
        """SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0
           AND NOT attisdropped AND attgenerated = '' ORDER BY attnum""", (table.sql,))]


def _primary_key(conn: psycopg.Connection, table: TableName) -> list[str]:
    return [r[0] for r in conn.execute(
        """SELECT a.attname FROM pg_index i JOIN pg_attribute a
             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
           WHERE i.indrelid = to_regclass(%s) AND i.indisprimary
           ORDER BY array_position(i.indkey::int2[], a.attnum)""", (table.sql,))]


def _sample_where(conn: psycopg.Connection, table: TableName, sample_rows: int | None) -> sql.Composable:
    if not sample_rows:
        return sql.SQL("")
    order = _primary_key(conn, table)
    order_by = (sql.SQL(" ORDER BY ") + sql.SQL(", ").join(map(sql.Identifier, order))) if order else sql.SQL("")
    return order_by + sql.SQL(" LIMIT {}").format(sql.Literal(int(sample_rows)))


def _copy_rows(src, dst, table: TableName, tail: sql.Composable, where: sql.Composable | None = None) -> None:
    cols = sql.SQL(", ").join(map(sql.Identifier, _columns(src, table)))
    target = sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))
    select = sql.SQL("SELECT {} FROM {}").format(cols, target)
    if where is not None:
        select += sql.SQL(" WHERE ") + where
    out = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(select + tail)
    into = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(target, cols)
    with src.cursor().copy(out) as reading, dst.cursor().copy(into) as writing:
        for block in reading:
            writing.write(block)


def _close_foreign_keys(src, dst) -> None:
    """Add to the sample every row a kept row references, until no reference is dangling
    (a chain of references takes several rounds). The foreign keys come from the source,
    since the scratch database gets its constraints only after the rows."""
    fks = src.execute(
        """SELECT cn.nspname, cc.relname,
                  array(SELECT attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute ON attrelid = c.conrelid AND attnum = k.n ORDER BY o),
                  array(SELECT attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute ON attrelid = c.confrelid AND attnum = k.n ORDER BY o),
                  pn.nspname, pc.relname
           FROM pg_constraint c JOIN pg_class pc ON pc.oid = c.confrelid
           JOIN pg_namespace pn ON pn.oid = pc.relnamespace
           JOIN pg_class cc ON cc.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
           WHERE c.contype = 'f' AND pn.nspname <> ALL(%s)""", (list(TOOL_SCHEMAS),)).fetchall()
    for _round in range(50):
        added = 0
        for c_schema, c_name, child_cols, parent_cols, p_schema, p_name in fks:
            # qualified: the dumped schema left the scratch session's search_path empty
            child = sql.SQL("{}.{}").format(sql.Identifier(c_schema), sql.Identifier(c_name))
            parent = sql.SQL("{}.{}").format(sql.Identifier(p_schema), sql.Identifier(p_name))
            child_row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(
                sql.SQL("c.{}").format(sql.Identifier(c)) for c in child_cols))
            parent_row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(
                sql.SQL("p.{}").format(sql.Identifier(c)) for c in parent_cols))
            not_null = sql.SQL(" AND ").join(
                sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c)) for c in child_cols)
            missing = [r[0] for r in dst.execute(sql.SQL(
                "SELECT DISTINCT {} FROM {} AS c WHERE {} AND NOT EXISTS "
                "(SELECT 1 FROM {} AS p WHERE {} = {})").format(
                    child_row, child, not_null, parent, parent_row, child_row))]
            if not missing:
                continue
            plain_parent = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(map(sql.Identifier, parent_cols)))
            _copy_rows(src, dst, TableName(p_schema, p_name), sql.SQL(""),
                       where=sql.SQL("{} = ANY({})").format(plain_parent, sql.Literal(missing)))
            added += len(missing)
        if not added:
            return


def _copy_sequence_positions(src, dst) -> None:
    for schema, name, last, called in src.execute(
        """SELECT schemaname, sequencename, last_value, last_value IS NOT NULL FROM pg_sequences
           WHERE schemaname <> ALL(%s)""", (list(TOOL_SCHEMAS),)).fetchall():
        if called:
            dst.execute("SELECT setval(%s, %s, true)",
                        (sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name)).as_string(dst), last))


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# -- several migrations ------------------------------------------------------------------------------
def verify(migrations: list[Migration], target_url_for, **options) -> VerifyReport:
    report = VerifyReport()
    for migration in migrations:
        report.checks += verify_migration(migration, target_url_for(migration), **options)
    return report
