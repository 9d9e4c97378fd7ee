"""Validation of a copy: each partition's rows on the source against the target's, by checksum.

For every key-range partition of the copy (the plan the backfill ran), both sides are read in key
order, a few thousand rows at a time: the source's rows through the copy's own transforms, the
target's as psycopg gives them (values.py). Each row becomes the digest of its canonical text; a
side's checksum is the SHA-256 of its digests in key order, and its count the number of rows. A
partition whose counts or checksums differ fails, naming its key range and the first keys that
differ (missing from the target, not in the source, or different), so a person can look at
exactly those rows. Nothing is written on either side.

Both checksums are computed in Python over the fetched rows, not in SQL: no hash function gives
the same text for a datetime or a JSON document in SQLite, MariaDB and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import psycopg

from .. import state
from ..identifiers import quote
from .copier import RowCopy, bound
from .values import CopyValueError, canonical_row, family, target_value

READ_ROWS = 5_000
SAMPLE_KEYS = 5


@dataclass
class Side:
    rows: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, row_digest: bytes) -> None:
        self.rows += 1
        self.digest.update(row_digest)

    @property
    def checksum(self) -> str:
        return self.digest.hexdigest()[:16]


@dataclass
class PartitionDiff:
    partition: str
    key: str
    lower: int | None
    upper: int | None
    source: Side
    target: Side
    keys: list[str]  # "12 differs", "15 missing from the target", ...

    @property
    def range_text(self) -> str:
        parts = ([f"> {self.lower}"] if self.lower is not None else []) + (
            [f"<= {self.upper}"] if self.upper is not None else [])
        return f"{self.key} {' and '.join(parts) or 'all'}"

    def text(self) -> str:
        shown = "; ".join(self.keys[:SAMPLE_KEYS])
        more = f" (and {len(self.keys) - SAMPLE_KEYS} more)" if len(self.keys) > SAMPLE_KEYS else ""
        return (f"partition {self.partition} ({self.range_text}): source {self.source.rows} rows "
                f"checksum {self.source.checksum}, target {self.target.rows} rows checksum "
                f"{self.target.checksum}; {self.key} {shown}{more}")


def compare_partitions(conn: psycopg.Connection, migration: str, copy: RowCopy,
                       task_index: int) -> list[PartitionDiff]:
    """Every partition of the copy whose rows differ between the source and the target."""
    types = copy.target_types(conn)
    kinds = [family(types[c.target]) for c in copy.columns]
    diffs = []
    with copy.source.connect() as source_conn:
        for key in state.range_keys(conn, migration):
            saved = state.read_range(conn, migration, key)
            if saved.task_index != task_index:
                continue
            diff = compare_range(conn, source_conn, copy, kinds, key, bound(saved.lower),
                                 bound(saved.upper))
            if diff is not None:
                diffs.append(diff)
    copy.source.dispose()
    return diffs


def compare_range(conn: psycopg.Connection, source_conn: Any, copy: RowCopy, kinds: list[str],
                  partition: str, lower: int | None, upper: int | None) -> PartitionDiff | None:
    source, target, keys = Side(), Side(), []
    theirs = _source_rows(source_conn, copy, kinds, lower, upper)
    ours = _target_rows(conn, copy, kinds, lower, upper)
    s, t = next(theirs, None), next(ours, None)
    while s is not None or t is not None:
        if t is None or (s is not None and s[0] < t[0]):
            source.add(s[1])
            keys.append(f"{s[0]} {s[2] or 'missing from the target'}")
            s = next(theirs, None)
        elif s is None or t[0] < s[0]:
            target.add(t[1])
            keys.append(f"{t[0]} not in the source")
            t = next(ours, None)
        else:
            source.add(s[1])
            target.add(t[1])
            if s[1] != t[1]:
                keys.append(f"{s[0]} {s[2] or 'differs'}")
            s, t = next(theirs, None), next(ours, None)
    if source.rows == target.rows and source.checksum == target.checksum:
        return None
    return PartitionDiff(partition, copy.key, lower, upper, source, target, keys)


def _source_rows(source_conn: Any, copy: RowCopy, kinds: list[str], lower: int | None,
                 upper: int | None) -> Iterator[tuple[int, bytes, str | None]]:
    """(key, row digest, why it cannot be copied or None) in key order."""
    at = copy.key_position
    for batch in copy.batches(source_conn, lower, upper, READ_ROWS):
        for raw in batch.rows:
            try:
                values = [c.value(v, k) for c, k, v in zip(copy.columns, kinds, raw)]
                yield int(raw[at]), canonical_row(values), None
            except CopyValueError as exc:
                yield int(raw[at]), b"cannot be copied", f"cannot be copied: {exc}"


def _target_rows(conn: psycopg.Connection, copy: RowCopy, kinds: list[str], lower: int | None,
                 upper: int | None) -> Iterator[tuple[int, bytes, None]]:
    key = quote(copy.key)
    picks = ", ".join(f"{quote(c.target)}::text" if k == "json" else quote(c.target)
                      for c, k in zip(copy.columns, kinds))
    at = copy.key_position
    position = lower
    while True:
        where = [f"{key} > %(lower)s" if position is not None else "TRUE",
                 f"{key} <= %(upper)s" if upper is not None else "TRUE"]
        rows = conn.execute(
            f"SELECT {picks} FROM {copy.target.sql} WHERE {' AND '.join(where)} "
            f"ORDER BY {key} LIMIT {READ_ROWS}", {"lower": position, "upper": upper}).fetchall()
        for row in rows:
            values = [target_value(k, v) for k, v in zip(kinds, row)]
            yield int(row[at]), canonical_row(values), None
        if len(rows) < READ_ROWS:
            return
        position = int(rows[-1][at])


def target_rows_sql(copy: RowCopy, range_text: str) -> str:
    """What plan shows for the target's side of the comparison."""
    picks = ", ".join(quote(c.target) for c in copy.columns)
    return (f"SELECT {picks} FROM {copy.target.sql} WHERE {range_text} "
            f"ORDER BY {quote(copy.key)}")
