"""Real process deaths of `migration-dags up` (a subprocess each): the environment hook's
os._exit at a checkpoint, and a SIGKILL while CREATE INDEX CONCURRENTLY waits. The next `up`
ends exactly applied, or `down` exactly as before, the tool's schemas gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from operations.lifecycle import assert_same, snapshot, write_migration

from migration_dags.db import faults

from .harness import (
    MIGRATION, assert_no_leftover_backups, assert_tool_schemas_gone, checkpoints, expected, reset,
)


@pytest.fixture
def cli(database_url, migrations_dir, tmp_path):
    write_migration(migrations_dir, MIGRATION)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "PYTHONPATH": os.getcwd()}
    env.pop(faults.ENV, None)
    argv = [sys.executable, "-m", "migration_dags.cli", "--database-url", database_url,
            "--migrations-dir", str(migrations_dir)]

    def run(*args: str, crash_at: int | None = None, wait: bool = True):
        extra = {faults.ENV: str(crash_at)} if crash_at else {}
        proc = subprocess.Popen([*argv, *args], env={**env, **extra}, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if not wait:
            return proc
        out, err = proc.communicate(timeout=300)
        return proc.returncode, err

    return run


def _checkpoint_of(labels: list[str], prefix: str) -> int:
    return next(i for i, label in enumerate(labels, start=1) if label.startswith(prefix))


def test_up_killed_after_the_index_build_then_up_ends_applied(database_url, migrations_dir, cli):
    want = expected(database_url, migrations_dir)
    # the index on the column the backfill fills is built at the end of the backfill step
    before = (len(checkpoints(database_url, migrations_dir, "backup"))
              + len(checkpoints(database_url, migrations_dir, "schema_change"))
              + _checkpoint_of(checkpoints(database_url, migrations_dir, "backfill"),
                               "after create index"))
    reset(database_url)
    code, err = cli("up", "crashy", "--complete", crash_at=before)
    assert code == faults.EXIT_CODE, err
    code, err = cli("up", "crashy", "--complete")
    assert code == 0, err
    assert_same(want.applied, snapshot(database_url), "after a kill after the index build and up")
    assert_no_leftover_backups(database_url)


def test_up_killed_after_a_backup_copy_then_down_leaves_no_copy(database_url, migrations_dir, cli):
    want = expected(database_url, migrations_dir)
    k = _checkpoint_of(checkpoints(database_url, migrations_dir, "backup"), "backup: copied")
    reset(database_url)
    code, err = cli("up", "crashy", "--complete", crash_at=k)
    assert code == faults.EXIT_CODE, err
    code, err = cli("down", "crashy")
    assert code == 0, err
    assert_same(want.original, snapshot(database_url), "after a kill in backup and down")
    assert_tool_schemas_gone(database_url)


def test_sigkill_while_the_concurrent_index_build_waits_then_down_restores(
        database_url, migrations_dir, cli):
    """The build commits an INVALID index first, then waits for older snapshots: a transaction
    on another table holds one, so the kill lands inside the statement. Its backend is ended
    too (as an operator or a restart would), leaving the invalid index behind."""
    want = expected(database_url, migrations_dir)
    reset(database_url)
    with psycopg.connect(database_url) as blocker, psycopg.connect(database_url, autocommit=True) as watch:
        blocker.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        blocker.execute("SELECT count(*) FROM events").fetchone()
        proc = cli("up", "crashy", "--complete", wait=False)
        try:
            build = _wait_for_index_build(watch, proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == -signal.SIGKILL
        watch.execute("SELECT pg_terminate_backend(%s)", (build,))
        blocker.rollback()
        invalid = watch.execute("SELECT NOT indisvalid FROM pg_index "
                                "WHERE indexrelid = to_regclass('orders_is_paid_idx')").fetchone()
        assert invalid == (True,), "the kill did not land inside the concurrent build"
    code, err = cli("down", "crashy")
    assert code == 0, err
    assert_same(want.original, snapshot(database_url), "after a SIGKILL in the index build and down")
    assert_tool_schemas_gone(database_url)


def _wait_for_index_build(conn: psycopg.Connection, proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"up ended before the index build: {proc.communicate()[1]}")
        row = conn.execute(
            """SELECT pid FROM pg_stat_activity WHERE datname = current_database()
               AND query LIKE 'CREATE INDEX CONCURRENTLY%%' AND wait_event_type = 'Lock'"""
        ).fetchone()
        if row:
            return row[0]
        time.sleep(0.1)
    raise AssertionError("the index build never started waiting")


