"""The throttle run_partition uses: none given means no pause, no pacing and no cancelling; a
migration's settings make one; anything else is refused (plain functions included)."""

from __future__ import annotations

import pytest

from migration_dags.batches import Throttle, ThrottleSettings, throttle_for
from migration_dags.batches.throttle import OFF, as_throttle


def test_no_throttle_means_no_pause_no_pacing_no_cancelling():
    gate = as_throttle(None)
    assert gate.settings == OFF
    assert (OFF.batch_pause_ms, OFF.max_client_wait_ms, OFF.busy_duty,
            OFF.max_transaction_age_s, OFF.max_replication_lag_s) == (0, 0, 1.0, 0, 0)
    assert not gate.can_connect and gate.workers() == 1


def test_a_throttle_is_used_as_given_and_a_plain_function_is_refused():
    gate = Throttle(ThrottleSettings(batch_pause_ms=5))
    assert as_throttle(gate) is gate
    with pytest.raises(TypeError, match="not a throttle"):
        as_throttle(lambda conn: None)


def test_throttle_for_reads_the_migration_settings():
    class Settings:
        batch_pause_ms = 40
        max_transaction_age_s = 12

    gate = throttle_for(Settings(), None)
    assert gate.settings.batch_pause_ms == 40 and gate.settings.max_transaction_age_s == 12
    assert gate.settings.max_client_wait_ms == ThrottleSettings().max_client_wait_ms
    assert not gate.can_connect
