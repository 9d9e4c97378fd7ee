"""The crash tests' checkpoints: inert unless armed, counted from the arming, filtered by label."""

from __future__ import annotations

import pytest

from migration_dags.db import faults
from migration_dags.errors import ConnectionLostError

pytestmark = pytest.mark.offline


def test_unarmed_checkpoints_do_nothing():
    for _ in range(3):
        faults.checkpoint("anything")


def test_the_kth_checkpoint_raises_an_exception_nothing_catches():
    with faults.armed(2):
        faults.checkpoint("one")
        with pytest.raises(faults.InjectedCrash, match="checkpoint 2: two"):
            faults.checkpoint("two")
    assert not issubclass(faults.InjectedCrash, Exception)
    faults.checkpoint("disarmed again")


def test_only_counts_the_labels_it_names_and_action_replaces_the_crash():
    seen = []
    with faults.counting() as labels:
        faults.checkpoint("a")
    assert labels == ["a"]
    with faults.armed(2, seen.append, only="backfill"):
        for label in ("backfill 1", "cutover", "backfill 2", "backfill 3"):
            faults.checkpoint(label)
    assert seen == ["backfill 2"]


def test_a_lost_connection_names_the_step_and_the_command_that_carries_on():
    lost = ConnectionLostError("m", "backfill", "up", "server closed the connection")
    assert lost.exit_code == 5 and "step backfill" in str(lost)
    assert "migration-dags up m` to resume" in str(lost)
    assert "migration-dags down m` to continue" in str(ConnectionLostError("m", "cutover", "down", "x"))
