"""The fault harness: run a migration's steps, die at the k-th checkpoint (db/faults.py), then
resume with `up` or roll back with `down`, and compare pg_dump-level snapshots.

    SETUP + MIGRATION   two tables; a column with its sync trigger and NOT VALID check, an index
                        built CONCURRENTLY (after the backfill: it is on the filled table), a
                        CHECK constraint: each kind of partial work
    checkpoints(...)    the labels of every checkpoint a clean run of one step passes
    crash_then(...)     a fresh database, the steps before `step`, `step` dying at checkpoint k,
                        then every step up (or down), and the snapshot that must come out
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from operations.lifecycle import Snapshot, assert_same, run_sql, snapshot, write_migration
from operations.shop import SHOP, migration

from migration_dags.db import faults
from migration_dags.engine import MigrationEngine
from migration_dags.state import BACKUP_SCHEMA, STATE_SCHEMA
from migration_dags.steps import STEPS

MIGRATION = migration("crashy", """
- add_column:
    table: orders
    column: {name: is_paid, type: boolean, nullable: false}
    up: "status = 'paid'"
- create_index: {name: orders_is_paid_idx, table: orders, columns: [is_paid, id]}
- add_check: {table: orders, name: orders_total_non_negative, check: "total >= 0"}
- add_column:
    table: customers
    column: {name: vip, type: boolean, default: 'false', nullable: false}
""")


@dataclass
class Expected:
    """The two states every case must end in: before the migration, and fully applied."""

    original: Snapshot
    applied: Snapshot


def engine(database_url: str, migrations_dir: Path) -> MigrationEngine:
    return MigrationEngine(write_migration(migrations_dir, MIGRATION), database_url)


def reset(database_url: str) -> None:
    """The shared test database emptied, then the shop loaded (operations/conftest.py)."""
    from operations.conftest import _RESET

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_RESET)
    run_sql(database_url, SHOP)


_EXPECTED: list[Expected] = []
_CHECKPOINTS: dict[str, list[str]] = {}


def expected(database_url: str, migrations_dir: Path) -> Expected:
    """Computed once per session: every case starts from the same shop and migration."""
    if not _EXPECTED:
        _EXPECTED.append(_expected(database_url, migrations_dir))
    return _EXPECTED[0]


def _expected(database_url: str, migrations_dir: Path) -> Expected:
    reset(database_url)
    original = snapshot(database_url)
    eng = engine(database_url, migrations_dir)
    for step in STEPS:
        eng.up(step)
    return Expected(original, snapshot(database_url))


def checkpoints(database_url: str, migrations_dir: Path, step: str) -> list[str]:
    """The labels of every checkpoint a clean run of `step` passes (once per session)."""
    if step not in _CHECKPOINTS:
        _CHECKPOINTS[step] = _checkpoints(database_url, migrations_dir, step)
    return _CHECKPOINTS[step]


def _checkpoints(database_url: str, migrations_dir: Path, step: str) -> list[str]:
    reset(database_url)
    eng = engine(database_url, migrations_dir)
    for earlier in STEPS[:STEPS.index(step)]:
        eng.up(earlier)
    with faults.counting() as labels:
        eng.up(step)
    return list(labels)


def crash(database_url: str, migrations_dir: Path, step: str, k: int) -> MigrationEngine:
    """A fresh shop, every step before `step` applied, then `step`'s up killed at checkpoint k."""
    reset(database_url)
    eng = engine(database_url, migrations_dir)
    for earlier in STEPS[:STEPS.index(step)]:
        eng.up(earlier)
    with faults.armed(k), pytest.raises(faults.InjectedCrash):
        eng.up(step)
    return eng


def resume_or_roll_back(database_url: str, migrations_dir: Path, then: str, want: Expected,
                        when: str) -> None:
    """After a crash: a new process's engine runs every step up (or down); the database must be
    exactly applied (or exactly as before, the tool's schemas gone)."""
    eng = engine(database_url, migrations_dir)
    if then == "up":
        for step in STEPS:
            eng.up(step)
        assert_same(want.applied, snapshot(database_url), f"after up, {when}")
        assert_no_leftover_backups(database_url)
    else:
        for step in reversed(STEPS):
            eng.down(step)
        assert_same(want.original, snapshot(database_url), f"after down, {when}")
        assert_tool_schemas_gone(database_url)


def assert_no_leftover_backups(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        copies = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename NOT LIKE 'w\\_\\_%%'",
            (BACKUP_SCHEMA,)).fetchone()[0]  # w__*: capture's record of writes, not a copy
        recorded = conn.execute(f"SELECT count(*) FROM {STATE_SCHEMA}.backups").fetchone()[0]
        started = conn.execute(f"SELECT count(*) FROM {STATE_SCHEMA}.started_steps").fetchone()[0]
    assert copies == recorded, f"{copies} backup copies, {recorded} recorded"
    assert started == 0, "a step is still recorded started after every step is applied"


def assert_tool_schemas_gone(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        left = conn.execute(
            "SELECT array_agg(nspname) FROM pg_namespace WHERE nspname IN (%s, %s)",
            (STATE_SCHEMA, BACKUP_SCHEMA)).fetchone()[0]
    assert not left, f"the tool's schemas are still there after down: {left}"
