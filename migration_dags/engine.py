"""The engine: runs one step of a migration, up or down, on a live database. No Dagster in here.

It owns what every step shares and nothing else: the migration lock around each step, the state
record (a step already applied is a no-op up; one not applied is a no-op down), the order (an up
whose earlier step is not applied is refused), and the reports. What each step does is in
steps/, one module per step; which operation verbs a step calls is steps/verbs.py.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Callable, Iterator

import psycopg

from . import drift, state
from .db import LockSettings, connect, migration_lock
from .errors import RefusedError
from .operations.base import BackfillTask, OpContext
from .operations.common.user_triggers import plan_notes as user_trigger_notes
from .run_tags import target_text
from .reports import BackfillProgress, CheckOutcome, MigrationStatus, StepReport, StepState
from .spec import Migration
from .steps import STEP_TYPES, STEPS, Planning, StepRun, context
from .steps.backup import restore as restore_backup
from .steps.validation import run_checks
from .steps.verbs import backfill_tasks

Log = Callable[[str], None]

# Hook for suites (Great Expectations): (engine, conn, partition) -> list of outcomes.
ExtraChecks = Callable[["MigrationEngine", psycopg.Connection, str | None], list[CheckOutcome]]


class MigrationEngine:
    def __init__(
        self,
        migration: Migration,
        database_url: str,
        run_id: str | None = None,
        log: Log = lambda _msg: None,
        extra_checks: ExtraChecks | None = None,
        allow_changed: bool = False,
    ):
        self.migration = migration
        # go on although the file changed since it was applied (drift.py); the report says how
        self.allow_changed = allow_changed
        self.database_url = database_url
        self.run_id = run_id or uuid.uuid4().hex
        self.log = log
        self.extra_checks = extra_checks
        s = migration.settings
        self.lock_settings = LockSettings(lock_timeout_ms=s.lock_timeout_ms, retries=s.retries)

    # -- connections ---------------------------------------------------------------------------
    @contextmanager
    def connection(self, purpose: str) -> Iterator[psycopg.Connection]:
        app = f"migration-dags {self.migration.name} {purpose} run {self.run_id[:8]}"
        conn = connect(self.database_url, app)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def locked(self, purpose: str) -> Iterator[psycopg.Connection]:
        with self.connection(purpose) as conn:
            with migration_lock(conn):
                state.ensure_state_tables(conn)
                yield conn

    # -- what the operations see -------------------------------------------------------------------
    def context(self, conn: psycopg.Connection) -> OpContext:
        return context.live_op_context(conn, self.migration)

    def backfill_tasks(self, ctx: OpContext) -> list[BackfillTask]:
        return backfill_tasks(self.migration.operations, ctx)

    def run_checks(self, conn: psycopg.Connection, partition: str | None = None) -> list[CheckOutcome]:
        """Every validation check (see steps/validation.py). Changes nothing."""
        return run_checks(self, conn, partition)

    # -- steps ---------------------------------------------------------------------------------------
    def up(self, step: str, partition: str | None = None) -> StepReport:
        impl = STEP_TYPES[step]
        name = self.migration.name
        if impl.validate_before_lock:
            with self.connection("validate") as conn:
                if not (state.state_exists(conn) and state.is_applied(conn, name, step)):
                    context.validate(conn, self.migration)
        with self.locked(step) as conn:
            if state.is_applied(conn, name, step):
                return self._skip(step, "up", "already applied")
            self._require_earlier_steps(conn, step)
            change = drift.check(conn, name, self.migration.file, "up", self.allow_changed)
            report = impl.up(StepRun(self, conn), partition)
            report.extra.update(self._recorded_with_run())
            if change is not None:
                report.extra["file_changed"] = change
            if report.complete:
                with conn.transaction():
                    state.mark_applied(conn, name, step, self.run_id, report.recorded)
                    drift.record(conn, name, self.migration.file)
            return report

    def down(self, step: str) -> StepReport:
        impl = STEP_TYPES[step]
        with self.locked(f"{step} down") as conn:
            run = StepRun(self, conn)
            if not impl.has_applied_work(run):
                impl.forget_unrecorded(run)
                return self._skip(step, "down", "not applied")
            name = self.migration.name
            change = drift.check(conn, name, self.migration.file, "down", self.allow_changed)
            report = impl.down(run)
            report.extra.update(self._recorded_with_run())
            if change is not None:
                report.extra["file_changed"] = change
            with conn.transaction():
                impl.forget(run)
                state.mark_undone(conn, name, step)
                if not state.applied_steps(conn, name):
                    state.forget_file(conn, name)
                elif change is not None:
                    drift.record(conn, name, self.migration.file)
            impl.after_down(run, report)
            return report

    def restore(self, **options) -> StepReport:
        """Put the backed-up rows back exactly (steps/backup.py), then the backup step's down:
        the proof, and the backups dropped. `options` go to steps/backup.py's restore as given."""
        with self.locked("restore") as conn:
            drift.check(conn, self.migration.name, self.migration.file, "restore", self.allow_changed)
            report = restore_backup(StepRun(self, conn), **options)
            report.extra.update(self._recorded_with_run())
        report.extra.update(self.down("backup").extra)
        return report

    def _recorded_with_run(self) -> dict[str, str]:
        """What every run records: the target database (never its password) and the file."""
        return {"target_database": target_text(self.database_url),
                "file_checksum": drift.checksum(self.migration.file)}

    def _require_earlier_steps(self, conn: psycopg.Connection, step: str) -> None:
        index = STEPS.index(step)
        if index and not state.is_applied(conn, self.migration.name, STEPS[index - 1]):
            earlier = STEPS[index - 1]
            raise RefusedError(
                f"{self.migration.name}: step {earlier} is not applied yet; run it first "
                f"(migration-dags up {self.migration.name})"
            )

    def _skip(self, step: str, direction: str, reason: str) -> StepReport:
        self.log(f"{step} {direction}: {reason}")
        return StepReport(self.migration.name, step, direction, skipped_reason=reason)

    # -- reading ------------------------------------------------------------------------------------
    def plan(self, offline: bool = False) -> dict[str, list[str]]:
        """The SQL each step would run, and under "notes" what plan must say before up (column
        order a down cannot keep, user triggers on written tables); changes nothing. Offline, from the file alone: no
        database, placeholders where only the live catalog knows (keys, a table's columns), and
        no validation against the live schema."""
        notes = [n for op in self.migration.operations if (n := op.column_order_note())]
        if offline:
            planning = Planning(self.migration, context.offline_op_context(self.migration), True)
        else:
            with self.connection("plan") as conn:
                has_state = state.state_exists(conn)
                applied = state.applied_steps(conn, self.migration.name) if has_state else {}
                if "schema_change" not in applied:
                    context.validate(conn, self.migration)
                planning = Planning(self.migration, self.context(conn), False, applied)
                notes += user_trigger_notes(conn, self.backfill_tasks(planning.op_context))
        out = {step: impl.plan(planning) for step, impl in STEP_TYPES.items()}
        if notes:  # said before up: what the round trip will not keep, which triggers fire
            out["notes"] = [f"-- note: {n}" for n in notes]
        for step, applied in planning.applied.items():
            if step in out:
                out[step].insert(0, f"-- already applied by run {applied['run_id']}")
        return out

    def partitions(self) -> list[str]:
        with self.connection("partitions") as conn:
            if not state.state_exists(conn):
                return []
            return [k for k, _d, _n in state.ranges_status(conn, self.migration.name)]

    def status(self) -> MigrationStatus:
        with self.connection("status") as conn:
            if not state.state_exists(conn):
                applied, parts, changed = {}, [], None
            else:
                applied = state.applied_steps(conn, self.migration.name)
                parts = state.ranges_status(conn, self.migration.name)
                changed = drift.changed_since_applied(conn, self.migration.name, self.migration.file)
        steps = {
            s: StepState(True, applied[s]["run_id"], str(applied[s]["applied_at"]))
            if s in applied else StepState(False)
            for s in STEPS
        }
        progress = BackfillProgress(
            partitions_total=len(parts),
            partitions_done=sum(1 for _k, d, _n in parts if d),
            rows_done=sum(n for _k, _d, n in parts),
        )
        return MigrationStatus(self.migration.name, steps, progress, changed)


__all__ = ["MigrationEngine", "ExtraChecks"]
