"""The saved position: moved only over committed batches, whatever order they commit in."""

from __future__ import annotations

from migration_dags.batches.ledger import BatchRange, Ledger


def test_out_of_order_commits_never_move_the_saved_position_past_a_running_batch():
    """Two batches at once: the later one may commit first; the position waits for the earlier."""

    class Recorder:
        def __init__(self):
            self.writes = []

        def execute(self, sql, params):
            self.writes.append(params[0] if "position_key" in sql else "rows only")

    ledger = Ledger("m", "p")
    first, second, third = (BatchRange(lo, hi, 10, last)
                            for lo, hi, last in ((None, ["10"], False), (["10"], ["20"], False),
                                                 (["20"], None, True)))
    for rng in (first, second, third):
        ledger.add(rng)
    conn = Recorder()
    ledger.committed(second, ledger.save(conn, second, 10))
    assert conn.writes == ["rows only"] and not ledger.all_saved()
    ledger.committed(first, ledger.save(conn, first, 10))
    assert conn.writes[-1] == '["20"]'  # over both: the second had committed already
    ledger.committed(third, ledger.save(conn, third, 10))
    assert conn.writes[-1] is None and ledger.all_saved()  # the end of an unbounded range
