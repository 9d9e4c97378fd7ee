"""state.steps: which steps of a migration are applied."""

from __future__ import annotations

from migration_dags import state


def test_a_step_is_applied_until_marked_undone(conn):
    state.ensure_state_tables(conn)
    assert state.applied_steps(conn, "m") == {} and not state.is_applied(conn, "m", "backup")
    state.mark_applied(conn, "m", "backup", "run-1", {"tables": 2})
    state.mark_applied(conn, "m", "backup", "run-2", {"tables": 3})  # applied again: replaced
    applied = state.applied_steps(conn, "m")
    assert list(applied) == ["backup"]
    assert applied["backup"]["run_id"] == "run-2" and applied["backup"]["details"] == {"tables": 3}
    assert state.is_applied(conn, "m", "backup") and not state.is_applied(conn, "other", "backup")
    state.mark_undone(conn, "m", "backup")
    assert not state.is_applied(conn, "m", "backup")
