"""backup: copy every table the migration touches before anything changes; its down proves the
tables equal their copies and only then drops them.

    up       per existing touched table: a copy in migration_dags_backup taken in one REPEATABLE
             READ snapshot, with its row count and fingerprints, recorded in state
    down     refused while a later step is applied; compares each table with its backup (schema
             and data fingerprints): equal, the backups are dropped; different, RollbackFailedError
             (exit 4) and the backups are kept for `restore`
    restore  (a command, not a step) puts the backed-up rows back exactly, then runs down
"""

from __future__ import annotations

import time

import psycopg

from .. import state
from ..actions import Action, ActionResult
from ..backup_tables import drop_backup, restore_table, take_backup
from ..errors import RefusedError, RollbackFailedError
from ..fingerprint import compare_schema, data_fingerprint, schema_fingerprint, table_exists
from ..reports import StepReport
from .base import Planning, Step, StepRun
from .context import validate

LATER_STEPS = ("cutover", "validation", "backfill", "schema_change")


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
            rec = take_backup(run.conn, run.name, run.engine.run_id, table)
            with run.conn.transaction():
                state.record_backup(run.conn, run.name, run.engine.run_id, rec)
            tables[str(table)] = {
                "backup_table": str(rec.backup), "row_count": rec.row_count,
                "data_fingerprint": rec.data_fingerprint,
                "schema_fingerprint": rec.schema_fingerprint,
                "duration_s": round(time.monotonic() - started, 3),
            }
            report.results.append(ActionResult(
                Action(f"back up {table}", f"CREATE TABLE {rec.backup.sql} AS SELECT * FROM {table.sql}"),
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
        announced = {op.table for op in run.migration.operations if op.column_order_note()}
        proof, mismatches = compare_with_backups(run.conn, run.name, announced)
        report.extra["proof"] = proof
        if mismatches:
            raise RollbackFailedError(
                f"{run.name}: rolled back, but {', '.join(mismatches)} differ from the pre-migration "
                f"backup; the backups are kept in schema {state.BACKUP_SCHEMA}. Inspect them, then "
                f"run `migration-dags restore {run.name}` to put the backed-up rows back exactly"
            )
        for rec in state.backups(run.conn, run.name):
            drop_backup(run.conn, rec)
        return report

    def forget(self, run: StepRun) -> None:
        state.forget_backups(run.conn, run.name)

    def after_down(self, run: StepRun, report: StepReport) -> None:
        report.extra["tool_schemas_dropped"] = state.drop_state_if_unused(run.conn)

    def plan(self, planning: Planning) -> list[str]:
        return [
            f"-- copy {t} into {state.BACKUP_SCHEMA} (REPEATABLE READ), count rows, fingerprint"
            for t in planning.migration.existing_tables()
        ]


def restore(run: StepRun) -> StepReport:
    """Put every backed-up table's rows back exactly as the backup has them. For a rollback whose
    proof failed: it discards every write made to those tables since the backup, so it is never
    run automatically. The caller then runs the backup step's down (the proof)."""
    if not state.is_applied(run.conn, run.name, "backup"):
        raise RefusedError(f"{run.name}: there is no backup to restore (step backup not applied)")
    for later in LATER_STEPS:
        if state.is_applied(run.conn, run.name, later):
            raise RefusedError(
                f"{run.name}: step {later} is still applied; run migration-dags down {run.name} first")
    report = run.report("backup", "restore")
    for rec in state.backups(run.conn, run.name):
        started = time.monotonic()
        changed = restore_table(run.conn, rec)
        report.results.append(ActionResult(
            Action(f"restore {rec.source} from {rec.backup}", f"-- rows put back by key from {rec.backup.sql}"),
            True, changed, time.monotonic() - started, 1, 0.0))
    return report


def compare_with_backups(
    conn: psycopg.Connection, migration: str, order_may_differ: set = frozenset()
) -> tuple[dict, list[str]]:
    """Each backed-up table against its backup: the proof's figures, and what differs. A table in
    `order_may_differ` (plan said so before up) whose only difference is its column order is
    reported as such (schema_equal false, differs_in "column order") but is not a mismatch."""
    proof, mismatches = {}, []
    for rec in state.backups(conn, migration):
        if not table_exists(conn, rec.source):
            proof[str(rec.source)] = {"exists": False}
            mismatches.append(f"{rec.source} (missing)")
            continue
        schema_now = schema_fingerprint(conn, rec.source)
        count, data_now = data_fingerprint(conn, rec.source)
        difference = compare_schema(rec.schema_fingerprint, schema_now)
        proof[str(rec.source)] = {
            "schema_equal": difference is None,
            "data_equal": data_now == rec.data_fingerprint,
            "rows_before": rec.row_count, "rows_now": count,
        }
        if difference == "column order" and rec.source in order_may_differ:
            proof[str(rec.source)]["differs_in"] = "column order (announced by plan)"
        elif difference is not None:
            mismatches.append(f"{rec.source} ({difference})")
        elif data_now != rec.data_fingerprint:
            mismatches.append(f"{rec.source} (data)")
    return proof, mismatches
