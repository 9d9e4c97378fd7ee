"""The saved position of a partition: "every key up to here is done", kept across kills.

Each batch is one transaction that runs the task's statement for its keys *and* records its rows
and the partition's saved position, so a kill at any moment resumes where the committed work ends,
and a batch run again changes nothing (the statements are idempotent).  When two batches run at
once and the later one commits first, the position waits for the earlier one, so after a kill at
most the batches that were running are scanned again, changing no row.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import psycopg

from .. import state


@dataclass(eq=False)
class BatchRange:
    """Keys (lower, upper] of one batch; upper None only for the last range of the last
    partition."""

    lower: list[str] | None
    upper: list[str] | None
    keys: int
    last: bool
    committed: bool = False


class Ledger:
    """Which ranges of the partition have committed, and how far the saved position may go.

    Batches running at once may commit out of order, so a batch moves the position only over the
    gap-free run of committed ranges that follows it, in the batch's own transaction; `lock` is
    held from that state write to the commit, so state writes happen one at a time and the
    position never moves back.  A kill loses at most the batches committed beyond the saved
    position; they run again, changing nothing."""

    def __init__(self, migration: str, partition: str):
        self.migration, self.partition = migration, partition
        self.lock = threading.Lock()
        self._ranges: list[BatchRange] = []  # planned, in key order
        self._saved = 0  # ranges[:_saved] are inside the saved position

    def add(self, rng: BatchRange) -> None:
        self._ranges.append(rng)

    def order(self, rng: BatchRange) -> int:
        return next(i for i, r in enumerate(self._ranges) if r is rng)

    def save(self, conn: psycopg.Connection, rng: BatchRange, changed: int) -> int | None:
        """Under `lock`, inside the batch's transaction: record its rows and move the saved
        position as far as its commit allows.  Returns the new saved count of ranges."""
        i = self._saved
        while i < len(self._ranges) and (self._ranges[i] is rng or self._ranges[i].committed):
            i += 1
        if i == self._saved:  # an earlier range is still running: rows only
            state.add_range_rows(conn, self.migration, self.partition, changed)
            return None
        end = self._ranges[i - 1]
        state.save_range_position(
            conn, self.migration, self.partition, end.upper, changed, end.last)
        return i

    def committed(self, rng: BatchRange, saved: int | None) -> None:
        rng.committed = True
        if saved is not None:
            self._saved = saved

    def all_saved(self) -> bool:
        return bool(self._ranges) and self._saved == len(self._ranges) and self._ranges[-1].last
