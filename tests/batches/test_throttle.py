"""The throttle run_partition uses: signals read at most every check_interval_s, never per batch;
a pause only while a signal holds; a migration's settings make one; anything else is refused."""

from __future__ import annotations

import pytest

from migration_dags.batches import Throttle, ThrottleSettings, throttle_for
from migration_dags.batches.throttle import as_throttle


class Signals:
    """A stand-in connection answering SIGNALS_SQL with the rows queued in `answers`."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.reads = 0

    def execute(self, _sql, _params=None):
        self.reads += 1
        row = self.answers.pop(0) if self.answers else (0, 0.0, 0.0, None)
        return type("R", (), {"fetchone": lambda _self: row})()


def test_no_throttle_means_the_default_signals_and_no_fixed_pause():
    gate = as_throttle(None)
    assert gate.settings == ThrottleSettings() and gate.settings.batch_pause_ms == 0


def test_a_throttle_is_used_as_given_and_a_plain_function_is_refused():
    gate = Throttle(ThrottleSettings(batch_pause_ms=5))
    assert as_throttle(gate) is gate
    with pytest.raises(TypeError, match="not a throttle"):
        as_throttle(lambda conn: None)


def test_throttle_for_reads_the_migration_settings():
    class Settings:
        batch_pause_ms = 7
        max_transaction_age_s = 60
    gate = throttle_for(Settings())
    assert gate.settings.batch_pause_ms == 7 and gate.settings.max_transaction_age_s == 60
    assert gate.settings.max_client_wait_ms == ThrottleSettings().max_client_wait_ms


def test_signals_are_read_once_per_interval_not_once_per_batch():
    now = [0.0]
    gate = Throttle(ThrottleSettings(check_interval_s=1.0), sleep=lambda s: None,
                    clock=lambda: now[0])
    conn = Signals()
    for _batch in range(100):  # 100 batches of 5 ms
        gate.before_batch(conn)
        gate.sample(conn)
        now[0] += 0.005
    assert conn.reads == 1 and gate.checks == 1


def test_no_signal_no_pause_and_no_query_between_batches():
    slept = []
    gate = Throttle(sleep=slept.append)
    conn = Signals()
    pause = gate.before_batch(conn, last_batch_s=0.01)
    assert pause.seconds == 0 and slept == [] and conn.reads == 0


def test_clients_waiting_on_a_batch_get_one_batch_of_time():
    slept = []
    gate = Throttle(ThrottleSettings(max_client_wait_ms=20), sleep=slept.append)
    conn = Signals((2, 35.0, 0.0, None))
    gate.sample(conn)
    pause = gate.before_batch(conn, last_batch_s=0.04)
    assert slept == [0.04] and pause.by_reason == {"lock waiters": 0.04}
    assert "2 session(s) waited 35 ms" in pause.reason


def test_a_long_transaction_pauses_until_it_ends():
    slept, now = [], [0.0]

    def sleep(s):
        slept.append(s)
        now[0] += s

    gate = Throttle(ThrottleSettings(max_transaction_age_s=10, check_interval_s=0.5),
                    sleep=sleep, clock=lambda: now[0])
    old = (0, 0.0, 0.0, ["42", "report", "12.0"])
    conn = Signals(old, old, old)  # seen in the batch, then twice while paused, then gone
    gate.sample(conn)
    seen = []
    pause = gate.before_batch(conn, report=seen.append)
    assert slept == [0.5, 0.5, 0.5] and pause.by_reason == {"long transaction": 1.5}
    assert "transaction of pid 42 (report) open 12 s" in pause.reason and seen


def test_replication_lag_over_the_limit_pauses_and_under_it_does_not():
    gate = Throttle(ThrottleSettings(max_replication_lag_s=10))
    assert gate.conditions(Signals((0, 0.0, 45.0, None))) == [
        ("replication lag", "replication lag 45.0 s, over the 10 s limit")]
    assert gate.conditions(Signals((0, 0.0, 5.0, None))) == []
    off = Throttle(ThrottleSettings(max_replication_lag_s=0))
    assert off.conditions(Signals((0, 0.0, 45.0, None))) == []
