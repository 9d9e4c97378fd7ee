"""state.started: which steps a run died inside, and every run that started them."""

from __future__ import annotations

from migration_dags import state


def test_a_step_is_started_until_forgotten_each_run_listed_once(conn):
    assert state.started_steps(conn, "m") == {}  # no state yet: nothing started
    state.ensure_state_tables(conn)
    state.mark_started(conn, "m", "backfill", "run-1")
    state.mark_started(conn, "m", "backfill", "run-1")  # the next partition of the same run
    state.mark_started(conn, "m", "backfill", "run-2")
    assert state.started_steps(conn, "m") == {"backfill": ["run-1", "run-2"]}
    assert state.is_started(conn, "m", "backfill") and not state.is_started(conn, "other", "backfill")
    state.forget_started(conn, "m", "backfill")
    assert state.started_steps(conn, "m") == {}


def test_state_made_before_started_steps_existed_gets_the_table(conn):
    state.ensure_state_tables(conn)
    conn.execute("DROP TABLE migration_dags.started_steps")
    assert state.started_steps(conn, "m") == {}
    state.ensure_state_tables(conn)
    state.mark_started(conn, "m", "backup", "run-1")
    assert state.is_started(conn, "m", "backup")
