"""backup: copy every table the migration touches before anything changes, and capture what the
application writes to it from then on; its down proves the tables are right and only then drops
the copies and stops capturing.

    up       per existing touched table: change capture started (state/capture.py; tables with a
             key), then a copy in migration_dags_backup taken in one REPEATABLE READ snapshot, with
             its row count and fingerprints, recorded in state. Only what the down cannot rebuild
             is copied: a table the migration only adds to (ADDITIVE operations: a new column,
             index or constraint, which the down drops) gets its key and a hash per row, enough
             for the proof; any other (rewritten or dropped columns, raw_sql) a full copy
    down     refused while a later step is applied; proves each table against its backup under
             live writes (capture.prove): the same schema, rows the application did not write equal
             the backup, rows it wrote hold its writes. Right: the backups and captures are dropped;
             wrong (the tool lost or altered something): RollbackFailedError (exit 4), all kept
    restore  (a command, not a step) puts back the rows the migration changed and the application
             did not write; with discard_application_writes, every backed-up row exactly. Then down
"""

from __future__ import annotations

import time

import psycopg

from .. import state
from ..actions import Action, ActionResult
from .. import capture
from ..backup_tables import (
    RECORD_HASH,
    backup_table_name,
    hashes_only,
    drop_backup,
    restorable_columns,
    restore_table,
    take_backup,
)
from ..db.faults import checkpoint
from ..errors import RefusedError, RollbackFailedError
from ..schema_model import primary_key_columns
from ..state import capture as capture_state
from ..reports import StepReport
from .base import Planning, Step, StepRun
from .context import validate

LATER_STEPS = ("cutover", "validation", "backfill", "schema_change")
# Operations that never write an existing column of an existing row (their downs drop what they
# added). add_column whose batches fire the table's user triggers is not one: those may.
ADDITIVE = frozenset({"add_column", "create_index", "add_check", "add_foreign_key"})


def only_added_to(migration, table) -> bool:
    """Whether every operation changing `table` only adds to it: its backup then needs no rows."""
    return all(op.kind in ADDITIVE and getattr(op, "user_triggers", "skip") != "fire"
               for op in migration.operations if table in op.tables())


class BackupStep(Step):
    name = "backup"
    description = "Copy every table the migration touches, with row count and fingerprints."
    # Bad input changes nothing: the engine validates before the lock and the state tables exist.
    validate_before_lock = True

    def up(self, run: StepRun, partition: str | None = None) -> StepReport:
        validate(run.conn, run.migration)
        report = run.report(self.name, "up")
        tables = {}
        for table in run.migration.existing_tables():
            started = time.monotonic()
            # Capture first: a write between the trigger and the snapshot is merely counted as
            # touched; a write after the snapshot is never missed.
            keys = primary_key_columns(run.conn, table)
            if keys:
                capture_state.install(run.conn, table, backup_table_name(run.name, run.engine.run_id, table),
                                      keys, run.name, run.engine.lock_settings)
            hashes = only_added_to(run.migration, table)
            rec = take_backup(run.conn, run.name, run.engine.run_id, table, hashes_only=hashes)
            checkpoint(f"backup: copied {table}")  # a kill here leaves an unrecorded copy
            with run.conn.transaction():
                state.record_backup(run.conn, run.name, run.engine.run_id, rec)
            checkpoint(f"backup: recorded {table}")
            tables[str(table)] = {
                "backup_table": str(rec.backup), "row_count": rec.row_count,
                "data_fingerprint": rec.data_fingerprint,
                "schema_fingerprint": rec.schema_fingerprint, "hashes_only": hashes,
                "duration_s": round(time.monotonic() - started, 3),
            }
            copied = f"key and {RECORD_HASH}" if hashes else "*"
            report.results.append(ActionResult(
                Action(f"back up {table}" + (" (key and row hashes: the migration only adds to it)"
                                             if hashes else ""),
                       f"CREATE TABLE {rec.backup.sql} AS SELECT {copied} FROM {table.sql}"),
                True, rec.row_count, time.monotonic() - started, 1, 0.0))
        report.extra["tables"] = tables
        report.recorded = {"tables": tables}
        return report

    def down(self, run: StepRun) -> StepReport:
        """Prove every touched table equals its backup; only then drop the backups."""
        for later in LATER_STEPS:
            if state.is_applied(run.conn, run.name, later):
                raise RollbackFailedError(
                    f"{run.name}: cannot drop the backup while step {later} is still applied; "
                    f"run migration-dags down {run.name}")
        report = run.report(self.name, "down")
        proof, mismatches = compare_with_backups(run.conn, run.name,
                                                 announced_moves(run.migration.operations))
        report.extra["proof"] = proof
        if mismatches:
            raise RollbackFailedError(
                f"{run.name}: rolled back, but the tool lost or altered rows: {'; '.join(mismatches)} "
                f"(writes the application made since the backup are not counted as differences). "
                f"The backups and the record of application writes are kept in schema "
                f"{state.BACKUP_SCHEMA}. Inspect them, then run `migration-dags restore {run.name}`: "
                f"it puts back the rows the migration changed and keeps every application write"
            )
        for rec in state.backups(run.conn, run.name):
            started = time.monotonic()
            capture_state.remove(run.conn, rec.source, rec.backup, run.name, run.engine.lock_settings)
            drop_backup(run.conn, rec)
            # the metadata shows what ran: the proof's reads are in `proof`, these drops here
            report.results.append(ActionResult(
                Action(f"drop the backup of {rec.source} and its change capture",
                       f"DROP TABLE IF EXISTS {rec.backup.sql}", takes_lock=False),
                True, 0, time.monotonic() - started, 1, 0.0))
        return report

    def forget_unrecorded(self, run: StepRun) -> None:
        """A backup up that failed before the step was recorded may have started capturing."""
        for rec in state.backups(run.conn, run.name):
            capture_state.remove(run.conn, rec.source, rec.backup, run.name, run.engine.lock_settings)
        for table in run.migration.existing_tables():
            capture_state.stop(run.conn, table, run.name, run.engine.lock_settings)

    def forget(self, run: StepRun) -> None:
        state.forget_backups(run.conn, run.name)

    def after_down(self, run: StepRun, report: StepReport) -> None:
        report.extra["tool_schemas_dropped"] = state.drop_state_if_unused(run.conn)

    def plan(self, planning: Planning) -> list[str]:
        return [
            (f"-- hash every row of {t} (key and row hash; the migration only adds to it) into "
             if only_added_to(planning.migration, t) else f"-- copy {t} into ")
            + f"{state.BACKUP_SCHEMA} (REPEATABLE READ), count rows, fingerprint"
            for t in planning.migration.existing_tables()
        ]


def restore(run: StepRun, discard_application_writes: bool = False) -> StepReport:
    """For a rollback whose proof failed: put back the rows the migration changed and the
    application did not write since the backup; rows both changed are conflicts, left as the
    application wrote them and listed in report.extra. With discard_application_writes, every
    backed-up table's rows exactly as the backup has them (every write since the backup is lost).
    Never run automatically. The caller then runs the backup step's down (the proof)."""
    if not state.is_applied(run.conn, run.name, "backup"):
        raise RefusedError(f"{run.name}: there is no backup to restore (step backup not applied)")
    for later in LATER_STEPS:
        if state.is_applied(run.conn, run.name, later):
            raise RefusedError(
                f"{run.name}: step {later} is still applied; run migration-dags down {run.name} first")
    report = run.report("backup", "restore")
    report.extra["discard_application_writes"] = discard_application_writes
    conflicts = {}
    for rec in state.backups(run.conn, run.name):
        started = time.monotonic()
        if hashes_only(run.conn, rec):  # the migration only added to it: nothing to put back
            report.results.append(ActionResult(Action(
                f"nothing to restore in {rec.source}: the migration only added to it (its backup "
                "holds row hashes for the proof)", "-- nothing to put back"),
                True, 0, time.monotonic() - started, 1, 0.0))
            continue
        if discard_application_writes or not capture.captures(run.conn, rec):
            changed = restore_table(run.conn, rec)
        else:
            done = capture.restore_keeping_writes(run.conn, rec, restorable_columns(run.conn, rec))
            changed = done.changed
            if done.conflicts:
                conflicts[str(rec.source)] = {"rows": done.conflicts, "keys": done.conflict_keys}
        report.results.append(ActionResult(
            Action(f"restore {rec.source} from {rec.backup}", f"-- rows put back by key from {rec.backup.sql}"),
            True, changed, time.monotonic() - started, 1, 0.0))
    report.extra["conflicts"] = conflicts
    return report


def announced_moves(operations) -> dict:
    """table -> the columns plan said a down may move to the end of it (column_order_note)."""
    moves: dict = {}
    for op in operations:
        if op.column_order_note():
            moves.setdefault(op.table, set()).add(op.column)
    return moves


def compare_with_backups(
    conn: psycopg.Connection, migration: str, order_may_differ: dict | None = None
) -> tuple[dict, list[str]]:
    """Each backed-up table against its backup (capture.prove): the proof's figures, and what the
    tool lost or altered. A table whose only schema difference is that columns in
    `order_may_differ[table]` (plan said so before up) moved to its end is reported as such
    (differs_in) but is not a mismatch; any other column order is."""
    proof, mismatches = {}, []
    moves = order_may_differ or {}
    for rec in state.backups(conn, migration):
        result = capture.prove(conn, rec, frozenset(moves.get(rec.source, ())))
        proof[str(rec.source)] = result.figures
        if result.problem:
            mismatches.append(f"{rec.source} ({result.problem})")
    return proof, mismatches
