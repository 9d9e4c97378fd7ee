"""What the application wrote during the migration window, put to use: row counts, the proof and
the restore that keeps those writes. The capture itself (tables, trigger) is state/capture.py.

    expected_row_count   the backup's count + keys the application inserted - keys it deleted
    prove                a table against its backup under live writes: the schema is the same;
                         every row the application did not write equals the backup in every
                         pre-migration column; every row it wrote holds what it wrote; rows it
                         inserted are there, rows it deleted are gone
    restore_keeping_writes  put back only rows the migration changed and the application did not
                         write; rows both changed are conflicts, left as the application wrote them

Each reads the table, its backup and its capture in one REPEATABLE READ snapshot: an application
write and its capture row commit together, so the snapshot never sees one without the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from .backup_tables import RECORD_HASH, hash_column
from .db import MARK_TOOL_WRITE
from .fingerprint import (
    column_names, compare_schema, data_fingerprint, hashed_fingerprint, is_legacy,
    schema_fingerprint, table_exists,
)
from .identifiers import literal, quote
from .state import BackupRecord
from .state.capture import capture_table, exists, key_match, net_writes_sql, untouched

SAMPLES = 5


def captures(conn: psycopg.Connection, rec: BackupRecord) -> bool:
    """Whether the application's writes to this table are captured (it has a key)."""
    return bool(rec.key_columns) and exists(conn, rec.backup)


def expected_row_count(conn: psycopg.Connection, rec: BackupRecord) -> tuple[int, int, int, int]:
    """(rows now, expected, inserted, deleted) in one snapshot."""
    inserted, deleted = 0, 0
    if captures(conn, rec):
        sql = net_writes_sql(rec.backup, rec.key_columns)
        now, inserted, deleted = conn.execute(
            f"SELECT (SELECT count(*) FROM {rec.source.sql}), n.* FROM ({sql}) AS n").fetchone()
    else:
        now = conn.execute(f"SELECT count(*) FROM {rec.source.sql}").fetchone()[0]
    return int(now), rec.row_count + int(inserted) - int(deleted), int(inserted), int(deleted)


@dataclass
class Proof:
    figures: dict = field(default_factory=dict)
    problem: str | None = None  # what the tool lost or altered; None when the table is right


def prove(conn: psycopg.Connection, rec: BackupRecord,
          order_may_differ: frozenset[str] = frozenset()) -> Proof:
    """The table against its backup; application writes are never a difference. With
    `order_may_differ`, the columns plan announced a down may move to the end of the table: a
    schema that differs only in that (the table's columns in their order before the migration,
    some of those moved to the end) is reported (differs_in) but is not a problem; any other
    order is."""
    if not table_exists(conn, rec.source):
        return Proof({"exists": False}, "missing")
    if not captures(conn, rec):  # no key: only the exact comparison is possible
        difference, noted = _schema_difference(conn, rec, order_may_differ)
        count, data_now = data_fingerprint(conn, rec.source,
                                           legacy=is_legacy(rec.data_fingerprint))
        figures = {"schema_equal": difference is None and not noted,
                   "data_equal": data_now == rec.data_fingerprint,
                   "rows_before": rec.row_count, "rows_now": count, **noted}
        problem = difference or ("data" if data_now != rec.data_fingerprint else None)
        return Proof(figures, problem)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _prove_captured(conn, rec, order_may_differ)


def _schema_difference(conn: psycopg.Connection, rec: BackupRecord,
                       order_may_differ: frozenset[str]) -> tuple[str | None, dict]:
    """("schema" | "column order" | "dependent views" | "partitions" | None, what to add to the
    figures)."""
    difference = compare_schema(rec.schema_fingerprint, schema_fingerprint(conn, rec.source))
    if difference == "column order" and order_may_differ:
        moved = moved_to_the_end(conn, rec, order_may_differ)
        if moved:
            return None, {"differs_in": f"column order: {', '.join(moved)} now last "
                                        "(announced by plan)"}
    return difference, {}


def _columns_in_order(conn: psycopg.Connection, table) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum", (table.sql,))]


def moved_to_the_end(conn: psycopg.Connection, rec: BackupRecord, movable: frozenset[str]) -> list[str]:
    """The columns of `movable` the table now has last, out of their place, when that is the only
    change to its column order since the backup (whose columns are in the table's order then);
    [] otherwise."""
    now, before = _columns_in_order(conn, rec.source), _columns_in_order(conn, rec.backup)
    tail: list[str] = []
    for column in reversed(now):
        if column not in movable:
            break
        tail.insert(0, column)
    head = now[: len(now) - len(tail)]
    if not tail or head != [c for c in before if c not in tail and c in now]:
        return []
    return tail


def _prove_captured(conn: psycopg.Connection, rec: BackupRecord,
                    order_may_differ: frozenset[str] = frozenset()) -> Proof:
    src, bak, keys = rec.source, rec.backup, rec.key_columns
    cap = capture_table(bak)
    difference, noted = _schema_difference(conn, rec, order_may_differ)
    if difference is not None:
        return Proof({"schema_equal": False}, difference)
    kept = untouched(cap, keys, "t")
    hashed = hash_column(conn, rec)
    legacy = hashed is not None and hashed != RECORD_HASH  # hashes taken before v2
    if hashed is not None:  # the schema is the same: so are the columns that were hashed
        columns = column_names(conn, src)
        _n, fp_backup = hashed_fingerprint(conn, bak, hashed, where=kept, legacy=legacy)
    else:
        columns = column_names(conn, bak)
        _n, fp_backup = data_fingerprint(conn, bak, columns, where=kept)
    _n, fp_now = data_fingerprint(conn, src, columns, where=kept, legacy=legacy)
    shown = "ROW(" + ", ".join(f"w.{quote(k)}" for k in keys) + ")::text"
    in_src = f"EXISTS (SELECT 1 FROM {src.sql} AS s WHERE {key_match(keys, 's', 'w')})"
    lost = _keys(conn, f"SELECT {shown} FROM {cap.sql} AS w WHERE w.op <> 'D' AND NOT {in_src}")
    back = _keys(conn, f"SELECT {shown} FROM {cap.sql} AS w WHERE w.op = 'D' AND {in_src}")
    altered = _keys(conn, altered_sql(rec, columns))
    now, expected, inserted, deleted = expected_row_count(conn, rec)
    figures = {
        "schema_equal": not noted, **noted, "data_equal": None,
        "untouched_rows_equal": fp_now == fp_backup,
        "rows_before": rec.row_count, "rows_now": now, "application_inserted": inserted,
        "application_deleted": deleted,
        "application_writes_lost": lost[0], "application_deletes_undone": back[0],
        "application_writes_altered": altered[0],
    }
    problems = []
    if fp_now != fp_backup:
        problems.append("rows the application did not write differ from the backup")
    for (n, samples), what in ((lost, "rows the application wrote are missing"),
                               (back, "rows the application deleted are back"),
                               (altered, "rows do not hold what the application wrote")):
        if n:
            problems.append(f"{n} {what} (keys {', '.join(samples)})")
    if not problems and now != expected:
        problems.append(f"{now} rows, expected {expected}")
    # the data is right: as backed up, but for what the application wrote since
    figures["data_equal"] = not problems
    return Proof(figures, "data: " + "; ".join(problems) if problems else None)


def altered_sql(rec: BackupRecord, columns: list[str]) -> str:
    """Rows the application wrote whose pre-migration columns do not hold what it wrote."""
    cap = capture_table(rec.backup)
    keys = rec.key_columns
    out = "ROW(" + ", ".join(f"s.{quote(k)}" for k in keys) + ")::text"
    cols = "ARRAY[" + ", ".join(literal(c) for c in columns) + "]::text[]"
    return (
        f"SELECT {out} FROM {rec.source.sql} AS s JOIN {cap.sql} AS w ON {key_match(keys, 'w', 's')}\n"
        f"WHERE w.op <> 'D' AND EXISTS (SELECT 1 FROM jsonb_each_text(w.written) AS e\n"
        f"  WHERE e.key = ANY({cols}) AND e.value IS DISTINCT FROM to_jsonb(s) ->> e.key)"
    )


def _keys(conn: psycopg.Connection, select: str) -> tuple[int, list[str]]:
    n = conn.execute(f"SELECT count(*) FROM ({select}) AS x").fetchone()[0]
    samples = [r[0] for r in conn.execute(f"{select} LIMIT {SAMPLES}")] if n else []
    return int(n), samples


@dataclass
class Restored:
    changed: int = 0
    conflicts: int = 0
    conflict_keys: list[str] = field(default_factory=list)


def restore_keeping_writes(conn: psycopg.Connection, rec: BackupRecord, columns: list[str]) -> Restored:
    """Put back, by key, the rows the migration changed that the application did not write since
    the backup: delete rows only the migration made, re-insert rows only it deleted, set the
    restorable `columns` of the rest. Rows the application wrote and whose other columns differ
    from the backup (the migration changed them too) are conflicts: counted, a few keys listed,
    left as they are. One transaction, the table locked against writes (reads go on)."""
    src, bak, keys = rec.source, rec.backup, rec.key_columns
    cap = capture_table(bak)
    col_list = ", ".join(quote(c) for c in columns)
    b_untouched = untouched(cap, keys, "b")
    s_untouched = untouched(cap, keys, "s")
    settable = [c for c in columns if c not in keys]
    differs = ("ROW(" + ", ".join(f"s.{quote(c)}" for c in settable) + ") IS DISTINCT FROM ROW("
               + ", ".join(f"b.{quote(c)}" for c in settable) + ")")
    match = key_match(keys, "s", "b")
    out = Restored()
    with conn.transaction():
        conn.execute(f"LOCK TABLE {src.sql} IN SHARE ROW EXCLUSIVE MODE")
        conn.execute(MARK_TOOL_WRITE)
        out.changed += conn.execute(
            f"DELETE FROM {src.sql} AS s WHERE {s_untouched} AND NOT EXISTS "
            f"(SELECT 1 FROM {bak.sql} AS b WHERE {match})").rowcount
        conn.execute("SET LOCAL session_replication_role = replica")
        if settable:
            sets = ", ".join(f"{quote(c)} = b.{quote(c)}" for c in settable)
            out.changed += conn.execute(
                f"UPDATE {src.sql} AS s SET {sets} FROM {bak.sql} AS b "
                f"WHERE {match} AND {b_untouched} AND {differs}").rowcount
            # a row the application wrote, with a column it did not write that differs from the
            # backup: both changed it
            unwritten = " OR ".join(
                f"(NOT w.written ? {literal(c)} AND s.{quote(c)} IS DISTINCT FROM b.{quote(c)})"
                for c in settable)
            shown = "ROW(" + ", ".join(f"s.{quote(k)}" for k in keys) + ")::text"
            conflicts = (f"SELECT {shown} FROM {src.sql} AS s JOIN {bak.sql} AS b ON {match} "
                         f"JOIN {cap.sql} AS w ON {key_match(keys, 'w', 's')} "
                         f"WHERE w.op <> 'D' AND ({unwritten})")
            out.conflicts, out.conflict_keys = _keys(conn, conflicts)
        out.changed += conn.execute(
            f"INSERT INTO {src.sql} ({col_list}) OVERRIDING SYSTEM VALUE "
            f"SELECT {', '.join('b.' + quote(c) for c in columns)} FROM {bak.sql} AS b "
            f"WHERE {b_untouched} AND NOT EXISTS (SELECT 1 FROM {src.sql} AS s WHERE {match})"
        ).rowcount
    return out
