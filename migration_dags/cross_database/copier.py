"""RowCopy: a backfill task whose rows come from another database.

The backfill machinery hands over to it at two points (batches/planner.py, batches/runner.py):

    key_edges(partition_rows)   the partition plan, cut from the source's keys (stored like every
                                plan: (lower, upper] bounds as the key's text)
    run_partition(...)          one partition, in batches of `batch_size` keys: read the rows of
                                (position, next key] from the source, transform them in Python
                                (values.py), and upsert them into the target with the partition's
                                saved position in the same transaction

The upsert is one statement per batch,

    INSERT INTO target AS t (cols) SELECT r.cols FROM jsonb_populate_recordset(NULL::target, $1) r
    ON CONFLICT (key) DO UPDATE SET ... WHERE ROW(t.cols) IS DISTINCT FROM ROW(EXCLUDED.cols)

so a batch run again (a resume after a kill, an `up` after the source changed) rewrites only rows
that differ and counts only those. Each value travels as text read by the column type's input
function (a json/jsonb column's text is parsed by PostgreSQL: `(r.c #>> '{}')::jsonb`); the
session's TimeZone is UTC, so a naive datetime is read as UTC. A value the target cannot take
fails the batch before anything is written, with a BackfillFailedError naming the partition and
the key (exit 8); the batches before it stay committed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import psycopg
from psycopg import errors as pg_errors

from .. import state
from ..batches.progress import BatchProgress, PartitionResult
from ..batches.runner import batch_settings
from ..batches.throttle import Throttle, as_throttle
from ..errors import BackfillFailedError
from ..identifiers import TableName, quote
from .source import SourceDatabase, SourceTable
from .values import ColumnMap, CopyValueError, family, wire

ROWS_PARAMETER = "%s::jsonb"  # psycopg's placeholder; any other % in the statement is doubled
SHOWN_PARAMETER = "$1::jsonb"
_ROWS = "\x00rows\x00"


@dataclass(frozen=True)
class Batch:
    rows: list[tuple]  # the source's raw rows, the copy's source columns in order
    upper: int | None  # the batch covers (position, upper]
    more: bool  # keys remain after it in the range


@dataclass
class RowCopy:
    source: SourceDatabase
    table: SourceTable
    target: TableName
    key: str  # the target's key column; its ColumnMap is among `columns`
    columns: tuple[ColumnMap, ...]
    op_index: int  # the operation's index in the file: the validation finds its task by it
    description: str = ""

    @property
    def key_map(self) -> ColumnMap:
        return next(c for c in self.columns if c.target == self.key)

    @property
    def key_position(self) -> int:
        return [c.target for c in self.columns].index(self.key)

    # -- the target's column types -------------------------------------------------------------
    def target_types(self, conn: psycopg.Connection) -> dict[str, str]:
        """Target column -> its type as format_type gives it (the live catalog)."""
        return dict(conn.execute(
            """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
               WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped""",
            (self.target.sql,)).fetchall())

    def kinds(self, conn: psycopg.Connection) -> list[str]:
        types = self.target_types(conn)
        return [family(types[c.target]) for c in self.columns]

    # -- SQL -------------------------------------------------------------------------------------
    def upsert_sql(self, json_types: dict[str, str], rows: str = ROWS_PARAMETER) -> str:
        """The batch's statement; `json_types`: json/jsonb target columns -> their type."""
        cols = [c.target for c in self.columns]
        picks = ", ".join(
            f"(r.{quote(c)} #>> '{{}}')::{json_types[c]}" if c in json_types else f"r.{quote(c)}"
            for c in cols)
        others = [c for c in cols if c != self.key]
        if others:
            sets = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in others)
            now = ", ".join(f"t.{quote(c)}" for c in others)
            new = ", ".join(f"EXCLUDED.{quote(c)}" for c in others)
            conflict = f"DO UPDATE SET {sets}\nWHERE ROW({now}) IS DISTINCT FROM ROW({new})"
        else:
            conflict = "DO NOTHING"
        sql = (f"INSERT INTO {self.target.sql} AS t ({', '.join(quote(c) for c in cols)})\n"
               f"SELECT {picks}\nFROM jsonb_populate_recordset(NULL::{self.target.sql}, {_ROWS}) AS r\n"
               f"ON CONFLICT ({quote(self.key)}) {conflict}")
        if rows == ROWS_PARAMETER:
            sql = sql.replace("%", "%%")
        return sql.replace(_ROWS, rows)

    def shown_sql(self, range_text: str) -> str:
        """What plan and lint show: the read from the source as a comment, then the upsert."""
        json_types = {c.target: "jsonb" for c in self.columns if c.transform == "json"}
        source_cols = ", ".join(c.source for c in self.columns)
        return (f"-- per batch: SELECT {source_cols} FROM {self.table} WHERE {range_text} ORDER BY "
                f"{self.key_map.source}, read from the source database ${self.source.env}\n"
                + self.upsert_sql(json_types, SHOWN_PARAMETER))

    # -- the plan ----------------------------------------------------------------------------------
    def key_edges(self, partition_rows: int) -> list[list[str] | None]:
        edges = self.source.key_edges(self.table, self.key_map.source, partition_rows)
        return [None, *[[str(e)] for e in edges], None]

    # -- reading the source ------------------------------------------------------------------------
    def batches(self, source_conn: Any, position: int | None, upper: int | None,
                size: int) -> Iterator[Batch]:
        """The range (position, upper] in batches of `size` rows; ends each read transaction on
        the source (no snapshot is held between batches)."""
        columns = [c.source for c in self.columns]
        at = self.key_position
        while True:
            rows = self.source.rows(source_conn, self.table, columns, self.key_map.source,
                                    position, upper, size + 1)
            source_conn.rollback()
            more = len(rows) > size
            rows = rows[:size]
            end = int(rows[-1][at]) if more else upper
            yield Batch(rows, end, more)
            if not more:
                return
            position = end

    def payload(self, rows: list[tuple], kinds: list[str]) -> str:
        """The batch's rows as the JSON array jsonb_populate_recordset reads; CopyValueError
        (with `.key`) on a value the target cannot take."""
        out = []
        for row in rows:
            item = {}
            for col, kind, raw in zip(self.columns, kinds, row):
                try:
                    item[col.target] = wire(col.value(raw, kind))
                except CopyValueError as exc:
                    exc.key = row[self.key_position]
                    raise
            out.append(item)
        return json.dumps(out, ensure_ascii=False)

    # -- one partition ---------------------------------------------------------------------------
    def run_partition(
        self, conn: psycopg.Connection, migration: str, partition: str, saved: state.SavedRange,
        batch_size: int, lock_timeout_ms: int, throttle: Throttle | None = None,
        on_batch: Callable[[BatchProgress], None] | None = None,
    ) -> PartitionResult:
        started = time.monotonic()
        lower, upper = bound(saved.lower), bound(saved.upper)
        position = bound(saved.position) if saved.position is not None else lower
        size = max(1, int(batch_size))
        types = self.target_types(conn)
        kinds = [family(types[c.target]) for c in self.columns]
        statement = self.upsert_sql(
            {c.target: types[c.target] for c, k in zip(self.columns, kinds) if k == "json"})
        settings = (batch_settings(lock_timeout_ms, None, fire_user_triggers=True)
                    + "; SET LOCAL TimeZone = 'UTC'")
        gate = as_throttle(throttle)
        total = self.source.count(self.table, self.key_map.source, position, upper)
        result = PartitionResult(partition, 0, 0, 0.0, 0, sample_sql=statement)
        done, last_batch_s = 0, 0.0
        with self.source.connect() as source_conn:
            for batch in self.batches(source_conn, position, upper, size):
                pause = gate.before_batch(conn, last_batch_s)
                result.paused_s += pause.seconds
                batch_started = time.monotonic()
                try:
                    payload = self.payload(batch.rows, kinds)
                except CopyValueError as exc:
                    raise self._failure(migration, partition, position, upper, exc,
                                        exc.key, result.rows) from None
                try:
                    changed = self._write(conn, migration, partition, settings, statement,
                                          payload, batch, gate, result)
                except (pg_errors.DataError, pg_errors.IntegrityError) as exc:
                    first = self._first_failing_key(conn, settings, statement, batch, kinds)
                    raise self._failure(migration, partition, position, upper, exc, first,
                                        result.rows) from exc
                last_batch_s = time.monotonic() - batch_started
                position = batch.upper
                result.rows += changed
                result.batches += 1
                done += len(batch.rows)
                if on_batch is not None:
                    on_batch(self._progress(partition, result, started, done, total, size,
                                            last_batch_s, not batch.more))
        self.source.dispose()
        result.elapsed_s = time.monotonic() - started
        result.rows_scanned = done
        return result

    def _write(self, conn, migration, partition, settings, statement, payload, batch, gate,
               result) -> int:
        tries = 0
        while True:
            try:
                with conn.transaction():
                    conn.execute(settings)
                    changed = max(conn.execute(statement, (payload,)).rowcount, 0)
                    upper = None if batch.upper is None else [str(batch.upper)]
                    state.save_range_position(conn, migration, partition, upper, changed,
                                              not batch.more)
                    gate.sample(conn)
                return changed
            except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected,
                    pg_errors.SerializationFailure):
                tries += 1  # a client holds one of the rows: let it finish, then again
                result.retries += 1
                time.sleep(min(0.01 * 2 ** min(tries, 7), 1.0))

    def _first_failing_key(self, conn, settings, statement, batch: Batch, kinds) -> Any:
        """The shortest failing prefix of the batch's rows (bisecting, each try rolled back)."""
        def fails(n: int) -> bool:
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute(settings)
                    conn.execute(statement, (self.payload(batch.rows[:n], kinds),))
            except psycopg.Error:
                return True
            return False

        lo, hi = 1, len(batch.rows)
        try:
            if not batch.rows or not fails(hi):
                return None
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if fails(mid) else (mid + 1, hi)
        except psycopg.Error:  # looking is best effort
            return None
        return batch.rows[lo - 1][self.key_position]

    def _failure(self, migration, partition, position, upper, error, first_key, rows):
        detail = " ".join(str(error).split())
        shown = lambda k: "(start)" if k is None else f"({k})"  # noqa: E731
        return BackfillFailedError(
            migration, partition, self.description,
            f"{shown(position)} .. {'(end)' if upper is None else shown(upper)}",
            None if first_key is None else f"({first_key})",
            f"{type(error).__name__}: {detail}", rows, shown(position))

    def _progress(self, partition, result, started, done, total, size, batch_s, last):
        elapsed = time.monotonic() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = 0.0 if last else (max(total - done, 0) / rate if rate > 0 else None)
        return BatchProgress(
            partition, result.rows, result.batches, elapsed, last, done, max(total, done), rate,
            eta, size, batch_s * 1000, result.paused_s, "", result.retries, str(self.target))

    # -- everything at once (the lifecycle harness re-runs a whole backfill) --------------------
    def copy_range(self, conn: psycopg.Connection, batch_size: int = 10_000) -> int:
        """Upsert every source row, without saving positions; returns the rows changed."""
        types = self.target_types(conn)
        kinds = [family(types[c.target]) for c in self.columns]
        statement = self.upsert_sql(
            {c.target: types[c.target] for c, k in zip(self.columns, kinds) if k == "json"})
        changed = 0
        with self.source.connect() as source_conn:
            for batch in self.batches(source_conn, None, None, batch_size):
                with conn.transaction():
                    conn.execute("SET LOCAL TimeZone = 'UTC'")
                    changed += max(conn.execute(statement, (self.payload(batch.rows, kinds),)).rowcount, 0)
        self.source.dispose()
        return changed


def bound(value: list[str] | None) -> int | None:
    """A stored bound (the key's text in a one-element list) as the integer key."""
    return None if value is None else int(value[0])
