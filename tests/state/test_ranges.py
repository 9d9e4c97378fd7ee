"""state.ranges: the backfill's key-range partitions, their saved positions and rows done."""

from __future__ import annotations

import pytest

from migration_dags import state
from migration_dags.state import SavedRange


@pytest.fixture
def planned(conn):
    """Migration m: task 0 in three ranges (the keys composite), task 1 in one; n: one range."""
    state.ensure_state_tables(conn)
    edges = [None, ["5", "a b"], ["9", "ü"], None]
    for i in range(3):
        state.record_range(conn, "m", f"00-0000{i}", 0, edges[i], edges[i + 1])
    state.record_range(conn, "m", "01-00000", 1, None, None)
    state.record_range(conn, "n", "00-00000", 0, None, None)
    return conn


def test_recorded_ranges_read_back_with_their_keys_as_lists(planned):
    assert state.range_keys(planned, "m") == ["00-00000", "00-00001", "00-00002", "01-00000"]
    assert state.read_range(planned, "m", "00-00001") == SavedRange(
        0, ["5", "a b"], ["9", "ü"], None, False)
    assert state.read_range(planned, "m", "00-00000").lower is None
    assert state.read_range(planned, "m", "99-00000") is None
    assert state.range_keys(planned, "other") == []


def test_rows_and_position_are_kept_only_when_the_batch_transaction_commits(planned):
    with planned.transaction():
        state.save_range_position(planned, "m", "00-00001", ["5", "x"], 10, False)
        state.save_range_position(planned, "m", "00-00001", ["7", "x"], 5, False)

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), planned.transaction():
        state.save_range_position(planned, "m", "00-00001", ["9", "ü"], 100, True)
        raise Rollback
    assert state.read_range(planned, "m", "00-00001").position == ["7", "x"]
    assert ("00-00001", False, 15) in state.ranges_status(planned, "m")
    state.save_range_position(planned, "m", "00-00002", None, 3, True)
    saved = state.read_range(planned, "m", "00-00002")
    assert saved.done and saved.position is None


def test_rows_done_elsewhere_counts_only_done_ranges_of_the_same_task(planned):
    state.save_range_position(planned, "m", "00-00000", ["5", "a b"], 40, True)
    state.save_range_position(planned, "m", "00-00001", ["6", "a"], 7, False)  # not done
    state.save_range_position(planned, "m", "01-00000", None, 500, True)  # another task
    state.save_range_position(planned, "n", "00-00000", None, 900, True)  # another migration
    assert state.rows_done_in_other_ranges(planned, "m", "00-00002") == 40
    assert state.rows_done_in_other_ranges(planned, "m", "00-00000") == 0


def test_reset_makes_only_the_given_ranges_as_planned_and_forget_only_one_migration(planned):
    for key in ("00-00000", "00-00001"):
        state.save_range_position(planned, "m", key, ["5", "a b"], 10, True)
    state.reset_ranges(planned, "m", ["00-00001"])
    assert state.ranges_status(planned, "m")[:2] == [("00-00000", True, 10), ("00-00001", False, 0)]
    assert state.read_range(planned, "m", "00-00001").position is None
    state.forget_ranges(planned, "m")
    assert state.ranges_status(planned, "m") == []
    assert state.ranges_status(planned, "n") == [("00-00000", False, 0)]


def test_status_without_any_state_is_empty(conn):
    assert state.ranges_status(conn, "m") == []
