"""The engine: runs one step of a migration, up or down, on a live database. No Dagster in here.

It owns what every step shares and nothing else: the migration lock around each step, the state
record (a step already applied is a no-op up; one not applied is a no-op down), the order (an up
whose earlier step is not applied is refused), and the reports. What each step does is in
steps/, one module per step; which operation verbs a step calls is steps/verbs.py.

Crash safety: a step is recorded started (committed) before its first change, and the record
goes in the transaction that records it applied or undone. A started step found by the next run
is resumed by `up` (its actions are idempotent; the run is told it is resuming) and undone by
`down`, like an applied one. A connection lost inside a step is a ConnectionLostError (exit 5)
naming the step. The lock is the command's lease when the command holds one (db/lease.py).
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Callable, Iterator

import psycopg

from . import drift, state
from .db import LockSettings, command_lock, connect, is_connection_lost
from .db.faults import checkpoint
from .expand import CompleteOptions, read_old_shape_writes, version_schemas_of
from .errors import ConnectionLostError, MigrationError, RefusedError
from .operations.base import BackfillTask, OpContext
from .operations.common.dependent_views import plan_notes as carried_view_notes
from .batches.wal import plan_notes as wal_notes
from .operations.common.user_triggers import plan_notes as user_trigger_notes
from .run_tags import target_text
from .reports import BackfillProgress, CheckOutcome, MigrationStatus, StepReport, StepState
from .spec import Migration
from .steps import DOWN_ORDER, STEP_TYPES, STEPS, Planning, StepRun, context
from .steps.backup import restore as restore_backup
from .steps.recovery import clear_leftovers
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
        complete_options: CompleteOptions | None = None,
    ):
        self.migration = migration
        # how cutover (complete) decides the old release has stopped (expand/old_shape_writes.py)
        self.complete_options = complete_options or CompleteOptions()
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
        """A connection under the migration lock: the command's lease when it holds one, else a
        lease of this step's own."""
        app = f"migration-dags {self.migration.name} {purpose} run {self.run_id[:8]} (lock)"
        with command_lock(self.database_url, app):
            with self.connection(purpose) as conn:
                state.ensure_state_tables(conn)
                yield conn

    @contextmanager
    def _step(self, step: str, direction: str) -> Iterator[None]:
        """A lost connection inside a step is a ConnectionLostError naming it (exit 5)."""
        try:
            yield
        except psycopg.OperationalError as exc:
            if not is_connection_lost(exc):
                raise
            raise ConnectionLostError(
                self.migration.name, step, direction, " ".join(str(exc).split()) or "closed"
            ) from exc

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
        with self._step(step, "up"):
            return self._up(step, partition)

    def _up(self, step: str, partition: str | None) -> StepReport:
        impl = STEP_TYPES[step]
        name = self.migration.name
        if impl.validate_before_lock:
            with self.connection("validate") as conn:
                if not (state.state_exists(conn) and (state.is_applied(conn, name, step)
                                                      or state.is_started(conn, name, step))):
                    context.validate(conn, self.migration)
        with self.locked(step) as conn:
            if state.is_applied(conn, name, step):
                return self._skip(step, "up", "already applied")
            self._require_earlier_steps(conn, step)
            # a changed file stops before the step is recorded started: nothing ran
            change = drift.check(conn, name, self.migration.file, "up", self.allow_changed)
            started = state.started_steps(conn, name).get(step)
            if started:
                self.log(f"{step} up: resuming the run that stopped inside it")
                clear_leftovers(StepRun(self, conn), step, started)
            with conn.transaction():
                state.mark_started(conn, name, step, self.run_id)
            checkpoint(f"{step} recorded started")
            try:
                report = impl.up(StepRun(self, conn, resuming=bool(started)), partition)
            except MigrationError as exc:
                if not exc.ran and not started:  # refused before changing anything
                    with conn.transaction():
                        state.forget_started(conn, name, step)
                raise
            report.extra.update(self._recorded_with_run())
            if change is not None:
                report.extra["file_changed"] = change
            checkpoint(f"{step} about to be recorded applied")
            if report.complete:
                with conn.transaction():
                    state.mark_applied(conn, name, step, self.run_id, report.recorded)
                    state.forget_started(conn, name, step)
                    drift.record(conn, name, self.migration.file)
                checkpoint(f"{step} recorded applied")
            return report

    def down(self, step: str) -> StepReport:
        with self._step(step, "down"):
            return self._down(step)

    def _down(self, step: str) -> StepReport:
        impl = STEP_TYPES[step]
        with self.locked(f"{step} down") as conn:
            run = StepRun(self, conn)
            started = state.started_steps(conn, self.migration.name).get(step)
            if not started and not impl.has_applied_work(run):
                impl.forget_unrecorded(run)
                return self._skip(step, "down", "not applied")
            name = self.migration.name
            change = drift.check(conn, name, self.migration.file, "down", self.allow_changed)
            report = impl.down(run)
            report.extra.update(self._recorded_with_run())
            if change is not None:
                report.extra["file_changed"] = change
            if started:  # what a run that died inside the step left beyond its records
                clear_leftovers(run, step, started)
            checkpoint(f"{step} about to be recorded undone")
            with conn.transaction():
                impl.forget(run)
                state.mark_undone(conn, name, step)
                state.forget_started(conn, name, step)
                if not state.applied_steps(conn, name):
                    state.forget_file(conn, name)
                elif change is not None:
                    drift.record(conn, name, self.migration.file)
            checkpoint(f"{step} recorded undone")
            impl.after_down(run, report)
            return report

    def restore(self, discard_application_writes: bool = False) -> StepReport:
        """Put back the rows the migration changed and the application did not write since the
        backup (steps/backup.py; rows both changed are listed in report.extra["conflicts"]), then
        the backup step's down: the proof, and the backups dropped. discard_application_writes:
        every backed-up row exactly as the backup has it, losing every write since the backup.
        Later steps a run died inside are undone first, so a restore can always make progress
        from whatever state `down` left."""
        if discard_application_writes:
            self.log("restore: discarding every application write since the backup, as asked")
        app = f"migration-dags {self.migration.name} restore run {self.run_id[:8]} (lock)"
        with self._step("backup", "restore"), command_lock(self.database_url, app):
            with self.connection("restore") as conn:
                started = state.started_steps(conn, self.migration.name)
            for step in DOWN_ORDER:
                if step != "backup" and step in started:
                    self.down(step)
            with self.connection("restore") as conn:
                backup_applied = state.is_applied(conn, self.migration.name, "backup")
            if "backup" in started and not backup_applied:
                # a backup that never finished: no later step ran, the tables are untouched;
                # what is left is its copies, which its down drops
                return self.down("backup")
            with self.locked("restore") as conn:
                drift.check(conn, self.migration.name, self.migration.file, "restore",
                            self.allow_changed)
                report = restore_backup(StepRun(self, conn), discard_application_writes)
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
                started = state.started_steps(conn, self.migration.name)
                # a started schema_change may have changed the schema validate would read
                if "schema_change" not in applied and "schema_change" not in started:
                    context.validate(conn, self.migration)
                planning = Planning(self.migration, self.context(conn), False, applied)
                tasks = self.backfill_tasks(planning.op_context)
                notes += user_trigger_notes(conn, tasks)
                notes += wal_notes(conn, tasks)
                notes += carried_view_notes(conn, self.migration.operations)
                notes += [n for op in self.migration.operations if (n := op.expansion_note())]
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

    def started_steps(self) -> list[str]:
        """Steps a run died inside (recorded started, neither applied nor undone since)."""
        with self.connection("status") as conn:
            return list(state.started_steps(conn, self.migration.name))

    def status(self) -> MigrationStatus:
        with self.connection("status") as conn:
            if not state.state_exists(conn):
                applied, parts, started, changed = {}, [], {}, None
            else:
                applied = state.applied_steps(conn, self.migration.name)
                parts = state.ranges_status(conn, self.migration.name)
                started = state.started_steps(conn, self.migration.name)
                changed = drift.changed_since_applied(conn, self.migration.name, self.migration.file)
            seen = read_old_shape_writes(conn, self.migration.name)
            schemas = sorted(vs.schema for vs in version_schemas_of(conn)
                             if vs.migration == self.migration.name)
        steps = {
            s: StepState(True, applied[s]["run_id"], str(applied[s]["applied_at"]))
            if s in applied else StepState(False, started=s in started)
            for s in STEPS
        }
        progress = BackfillProgress(
            partitions_total=len(parts),
            partitions_done=sum(1 for _k, d, _n in parts if d),
            rows_done=sum(n for _k, _d, n in parts),
        )
        return MigrationStatus(self.migration.name, steps, progress, changed,
                               seen.as_dict() if seen else None, schemas)


__all__ = ["MigrationEngine", "ExtraChecks"]
