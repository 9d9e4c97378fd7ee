"""Kill a step at a checkpoint (in-process: db/faults.py raises InjectedCrash, which nothing
catches, as kill -9 would stop everything), then resume with `up` or roll back with `down`:
the database must end exactly applied or exactly as before (pg_dump-level snapshots).

schema_change is killed at every checkpoint, one by one (before and after each of its
statements, after it is recorded started, before it is recorded applied); the other steps at
their first, a middle and their last checkpoint.
"""

from __future__ import annotations

import psycopg
import pytest

from migration_dags.steps import STEPS

from operations.lifecycle import assert_same, snapshot

from migration_dags.db import faults

from .harness import (
    assert_tool_schemas_gone, checkpoints, crash, engine, expected, reset, resume_or_roll_back,
)


@pytest.fixture
def want(database_url, migrations_dir):
    return expected(database_url, migrations_dir)


def test_schema_change_killed_at_every_statement_then_up_or_down(database_url, migrations_dir, want):
    labels = checkpoints(database_url, migrations_dir, "schema_change")
    statements = [label for label in labels if label.startswith(("before ", "after "))]
    assert len(statements) >= 10, labels  # each action's before and after
    for k, label in enumerate(labels, start=1):
        for then in ("up", "down"):
            crash(database_url, migrations_dir, "schema_change", k)
            resume_or_roll_back(database_url, migrations_dir, then, want,
                                f"schema_change killed at {k} ({label})")


@pytest.mark.parametrize("step", [s for s in STEPS if s != "schema_change"])
def test_each_step_killed_at_three_points_then_up_or_down(database_url, migrations_dir, want, step):
    labels = checkpoints(database_url, migrations_dir, step)
    assert len(labels) >= 3, labels
    for k in sorted({1, (len(labels) + 1) // 2, len(labels)}):
        for then in ("up", "down"):
            crash(database_url, migrations_dir, step, k)
            resume_or_roll_back(database_url, migrations_dir, then, want,
                                f"{step} killed at {k} ({labels[k - 1]})")


@pytest.mark.parametrize("then", ["up", "down"])
def test_an_invalid_index_left_by_a_killed_concurrent_build_is_rebuilt_or_dropped(
        database_url, migrations_dir, want, then):
    """A kill during CREATE INDEX CONCURRENTLY, once its catalog entry is committed, leaves the
    index INVALID (what the server keeps of the build): up rebuilds it, down drops it. The index
    is on the column the backfill fills, so the backfill step builds it after its batches."""
    labels = checkpoints(database_url, migrations_dir, "backfill")
    k = next(i for i, label in enumerate(labels, start=1)
             if label.startswith("before create index orders_is_paid_idx"))
    crash(database_url, migrations_dir, "backfill", k)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE INDEX orders_is_paid_idx ON orders (is_paid, id)")
        conn.execute("UPDATE pg_index SET indisvalid = false "
                     "WHERE indexrelid = 'orders_is_paid_idx'::regclass")
    resume_or_roll_back(database_url, migrations_dir, then, want, "with an invalid index left")
    if then == "up":
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT indisvalid FROM pg_index "
                                "WHERE indexrelid = 'orders_is_paid_idx'::regclass").fetchone()[0]


def test_down_killed_at_four_points_then_down_again_restores(database_url, migrations_dir, want):
    reset(database_url)
    eng = engine(database_url, migrations_dir)
    for step in STEPS:
        eng.up(step)
    with faults.counting() as labels:
        for step in reversed(STEPS):
            eng.down(step)
    labels = list(labels)
    points = sorted({1, len(labels) // 3, 2 * len(labels) // 3, len(labels) - 1})
    for k in points:
        reset(database_url)
        eng = engine(database_url, migrations_dir)
        for step in STEPS:
            eng.up(step)
        with faults.armed(k), pytest.raises(faults.InjectedCrash):
            for step in reversed(STEPS):
                eng.down(step)
        resume_or_roll_back(database_url, migrations_dir, "down", want,
                            f"down killed at {k} ({labels[k - 1]})")


@pytest.mark.parametrize("step", ["schema_change", "backup"])
def test_restore_makes_progress_after_a_kill(database_url, migrations_dir, want, step):
    """A kill inside `step`, then `restore` (what an operator might try first): the started
    steps are undone and the database is exactly as before."""
    k = len(checkpoints(database_url, migrations_dir, step)) // 2
    eng = crash(database_url, migrations_dir, step, k)
    eng.restore()
    assert_same(want.original, snapshot(database_url), f"after restore, {step} killed at {k}")
    assert_tool_schemas_gone(database_url)


def test_plan_after_a_kill_inside_schema_change_shows_the_sql_instead_of_refusing(
        database_url, migrations_dir, want):
    labels = checkpoints(database_url, migrations_dir, "schema_change")
    k = next(i for i, label in enumerate(labels, start=1) if label.startswith("after add column"))
    eng = crash(database_url, migrations_dir, "schema_change", k)
    plan = eng.plan()  # the column the killed run added "already exists": no refusal
    assert any("ADD COLUMN IF NOT EXISTS \"is_paid\"" in sql for sql in plan["schema_change"])
    assert any("orders_is_paid_idx" in sql for sql in plan["backfill"])  # built after the batches


def test_status_shows_the_step_a_run_stopped_inside(database_url, migrations_dir, want):
    eng = crash(database_url, migrations_dir, "backup", 2)
    steps = eng.status().steps
    assert steps["backup"].started and not steps["backup"].applied
    assert steps["backup"].as_dict() == {"applied": False, "started": True}
    assert not steps["schema_change"].started
