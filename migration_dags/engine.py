"""The five steps of a migration, up and down, on a live database. No Dagster in here.

    backup         up: copy each touched table (count + fingerprints)   down: prove the tables equal
                                                                         their backup, then drop it
    schema_change  up: validate, then every operation's start           down: every rollback, reversed
    backfill       up: key-range partitions in batches                  down: every unbackfill, reversed
    validation     up: parity checks (and suites, through a hook)       down: nothing to undo
    cutover        up: every operation's complete                       down: every uncomplete, reversed

Each step holds the database's migration lock, is a no-op when the state table says it is
already applied (up) or not applied (down), and is all-or-nothing: a failing up runs the
undo of its own operations before raising.
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import psycopg

from . import batches
from . import state
from .actions import Action, ActionResult, StepReport
from .backup import drop_backup, restore_table, take_backup
from .errors import (
    MigrationError,
    RollbackFailedError,
    SchemaValidationError,
    StepFailedError,
    ValidationFailedError,
)
from .fingerprint import (
    column_names,
    data_fingerprint,
    schema_description,
    schema_fingerprint,
    table_exists,
)
from .identifiers import TableName
from .operations.base import BackfillTask, OpContext, ParityCheck
from .state.saved_columns import read_saved_columns
from .db import ActionRunner, LockSettings, connect, migration_lock
from .schema_model import SchemaModel, read_schema
from .spec import Migration

Log = Callable[[str], None]


@dataclass
class CheckOutcome:
    name: str
    description: str
    passed: bool
    observed: int | str
    samples: list[str]
    suite: str | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name, "description": self.description, "passed": self.passed,
            "observed": self.observed, "samples": self.samples, "suite": self.suite,
        }


# Hook for suites (Great Expectations): (engine, conn) -> list of outcomes.
ExtraChecks = Callable[["MigrationEngine", psycopg.Connection, str | None], list[CheckOutcome]]


class MigrationEngine:
    def __init__(
        self,
        migration: Migration,
        database_url: str,
        run_id: str | None = None,
        log: Log = lambda _msg: None,
        extra_checks: ExtraChecks | None = None,
    ):
        self.migration = migration
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

    # -- context ---------------------------------------------------------------------------------
    def live_model(self, conn: psycopg.Connection) -> SchemaModel:
        # plus tables operations only reference (a foreign key's target), so validate can check them
        read_only = {t for op in self.migration.operations for t in op.read_tables()}
        return read_schema(conn, self.migration.touched_tables() | read_only)

    def validate(self, conn: psycopg.Connection) -> SchemaModel:
        """Check every operation against the live schema, in order. Changes nothing."""
        model = self.live_model(conn)
        for op in self.migration.operations:
            op.validate(model)
            op.apply(model)
        return model

    def context(self, conn: psycopg.Connection) -> OpContext:
        live = self.live_model(conn)
        keys: dict[TableName, list[str]] = {t: m.primary_key for t, m in live.tables.items()}
        columns = {t: list(m.columns) for t, m in live.tables.items()}
        backups: dict[TableName, TableName] = {}
        backup_columns: dict[TableName, list[str]] = {}
        for rec in state.backups(conn, self.migration.name):
            backups[rec.source] = rec.backup
            if not keys.get(rec.source):  # the table is gone, or lost its key: the backup's
                keys[rec.source] = rec.key_columns
            # the columns the table had before the migration: restores write only these
            backup_columns[rec.source] = column_names(conn, rec.backup)
        # column definitions drop_column saved before dropping them, for its undo
        saved = read_saved_columns(conn, self.migration.name)
        return OpContext(self.migration.name, backups, keys, columns, backup_columns, saved)

    def backfill_tasks(self, ctx: OpContext) -> list[BackfillTask]:
        return [t for op in self.migration.operations if (t := op.backfill(ctx)) is not None]

    # -- plan --------------------------------------------------------------------------------------
    def plan(self) -> dict[str, list[str]]:
        """The SQL each step would run, read from the live schema; changes nothing."""
        with self.connection("plan") as conn:
            has_state = table_exists(conn, TableName(state.STATE_SCHEMA, "applied_steps"))
            applied = state.applied_steps(conn, self.migration.name) if has_state else {}
            if "schema_change" not in applied:
                self.validate(conn)
            ctx = self.context(conn)
        ops = self.migration.operations
        out: dict[str, list[str]] = {
            "backup": [
                f"-- copy {t} into {state.BACKUP_SCHEMA} (REPEATABLE READ), count rows, fingerprint"
                for t in self.migration.existing_tables()
            ],
            "schema_change": [a.render() for op in ops for a in op.start(ctx)],
            "backfill": [
                f"-- {t.description}, in key-range batches of {self.migration.settings.batch_size}\n"
                + t.for_range("<key range>") + ";"
                for t in self.backfill_tasks(ctx)
            ],
            "validation": [
                f"-- {c.description}\n{c.count_sql};" for c in self.parity_checks(ctx)
            ],
            "cutover": [a.render() for op in ops for a in op.complete(ctx)],
        }
        for step in out:
            if step in applied:
                out[step].insert(0, f"-- already applied by run {applied[step]['run_id']}")
        return out

    # -- running actions -------------------------------------------------------------------------
    def _run_actions(
        self, conn: psycopg.Connection, actions: list[Action], report: StepReport,
        undo: Callable[[], list[Action]] | None = None,
    ) -> None:
        runner = ActionRunner(conn, self.lock_settings)
        try:
            for action in actions:
                self.log(f"{report.step} {report.direction}: {action.description}")
                report.results.append(runner.run(action))
        except Exception as exc:
            if undo is None:
                raise
            self.log(f"{report.step} failed ({exc}); undoing its partial work")
            undo_errors = self._undo_best_effort(runner, undo())
            if isinstance(exc, MigrationError) and not undo_errors:
                raise
            detail = f"; undo also failed: {undo_errors[0]}" if undo_errors else "; its partial work was undone"
            raise StepFailedError(
                f"{self.migration.name}: step {report.step} failed: {_one_line(exc)}{detail}"
            ) from exc

    def _undo_best_effort(self, runner: ActionRunner, actions: list[Action]) -> list[str]:
        errors = []
        for action in actions:
            try:
                runner.run(action)
            except Exception as exc:  # keep undoing the rest; report the first failure
                errors.append(f"{action.description}: {_one_line(exc)}")
        return errors

    def _skip(self, step: str, direction: str, reason: str) -> StepReport:
        self.log(f"{step} {direction}: {reason}")
        return StepReport(self.migration.name, step, direction, skipped_reason=reason)

    # -- steps: up ---------------------------------------------------------------------------------
    def up(self, step: str, partition: str | None = None) -> StepReport:
        return getattr(self, f"_{step}_up")(partition) if step == "backfill" else getattr(self, f"_{step}_up")()

    def down(self, step: str) -> StepReport:
        return getattr(self, f"_{step}_down")()

    def _backup_up(self) -> StepReport:
        name = self.migration.name
        with self.connection("validate") as conn:
            # Bad input changes nothing: validate before the lock and the state tables exist.
            has_state = state.state_exists(conn)
            if not (has_state and state.is_applied(conn, name, "backup")):
                self.validate(conn)
        with self.locked("backup") as conn:
            if state.is_applied(conn, name, "backup"):
                return self._skip("backup", "up", "already applied")
            self.validate(conn)
            report = StepReport(name, "backup", "up")
            tables = {}
            for table in self.migration.existing_tables():
                started = time.monotonic()
                rec = take_backup(conn, name, self.run_id, table)
                with conn.transaction():
                    state.record_backup(conn, name, self.run_id, rec)
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
            with conn.transaction():
                state.mark_applied(conn, name, "backup", self.run_id, {"tables": tables})
            return report

    def _schema_change_up(self) -> StepReport:
        name = self.migration.name
        with self.locked("schema_change") as conn:
            if state.is_applied(conn, name, "schema_change"):
                return self._skip("schema_change", "up", "already applied")
            self._require(conn, "backup")
            self.validate(conn)
            ctx = self.context(conn)
            report = StepReport(name, "schema_change", "up")
            actions = [a for op in self.migration.operations for a in op.start(ctx)]
            undo = lambda: [a for op in reversed(self.migration.operations) for a in op.rollback(ctx)]  # noqa: E731
            self._run_actions(conn, actions, report, undo)
            tasks = self.backfill_tasks(self.context(conn))
            partitions = batches.plan_partitions(
                conn, name, tasks, self.migration.settings.partition_rows
            )
            report.extra["partitions"] = partitions
            with conn.transaction():
                state.mark_applied(conn, name, "schema_change", self.run_id,
                                   {"partitions": len(partitions)})
            return report

    def partitions(self) -> list[str]:
        with self.connection("partitions") as conn:
            if not table_exists(conn, TableName(state.STATE_SCHEMA, "backfill_ranges")):
                return []
            return [k for k, _d, _n in batches.partitions_status(conn, self.migration.name)]

    def _backfill_up(self, partition: str | None = None) -> StepReport:
        name = self.migration.name
        with self.locked("backfill") as conn:
            if state.is_applied(conn, name, "backfill"):
                return self._skip("backfill", "up", "already applied")
            self._require(conn, "schema_change")
            ctx = self.context(conn)
            tasks = self.backfill_tasks(ctx)
            report = StepReport(name, "backfill", "up")
            status = batches.partitions_status(conn, name)
            if not status and tasks:
                # a plan lost or never made (e.g. state edited by hand): never count "no
                # partitions" as "all partitions done"
                batches.plan_partitions(conn, name, tasks, self.migration.settings.partition_rows)
                status = batches.partitions_status(conn, name)
            todo = [k for k, done, _n in status if not done and (partition is None or k == partition)]
            if partition is not None and partition not in {k for k, _d, _n in status}:
                raise StepFailedError(f"{name}: backfill partition {partition!r} is not planned")
            results = []
            for key in todo:
                result = batches.run_partition(
                    conn, name, key, tasks, self.migration.settings.batch_size,
                    self.lock_settings.lock_timeout_ms,
                    throttle=batches.throttle_for(self.migration.settings, self.database_url),
                    on_batch=batches.progress_logger(self.log),
                )
                results.append(result)
                report.results.append(ActionResult(
                    Action(f"backfill partition {key}", result.sample_sql or "-- nothing to do"),
                    True, result.rows, result.elapsed_s, 1 + result.retries, 0.0))
            remaining = [k for k, d, _n in batches.partitions_status(conn, name) if not d]
            report.extra.update({
                "partitions_done": len(status) - len(remaining),
                "partitions_total": len(status),
                "rows": sum(r.rows for r in results),
                "rows_per_s": round(sum(r.rows for r in results) / max(sum(r.elapsed_s for r in results), 1e-9), 1),
            })
            if not remaining:
                with conn.transaction():
                    state.mark_applied(conn, name, "backfill", self.run_id, report.extra)
            return report

    def parity_checks(self, ctx: OpContext) -> list[ParityCheck]:
        return [c for op in self.migration.operations for c in op.checks(ctx)]

    def run_checks(self, conn: psycopg.Connection, partition: str | None = None) -> list[CheckOutcome]:
        """Every parity check (row counts, operation checks) plus the suites hook. Changes nothing."""
        ctx = self.context(conn)
        outcomes: list[CheckOutcome] = []
        remaining = [k for k, d, _n in batches.partitions_status(conn, self.migration.name) if not d]
        outcomes.append(CheckOutcome(
            "backfill.complete", "every backfill partition is done", not remaining,
            len(remaining), remaining[:20]))
        for rec in state.backups(conn, self.migration.name):
            count = conn.execute(f"SELECT count(*) FROM {rec.source.sql}").fetchone()[0]
            rule = self.migration.validation.row_count
            passed = {"exact": count == rec.row_count, "grows": count >= rec.row_count, "any": True}[rule]
            outcomes.append(CheckOutcome(
                f"{rec.source.name}.row_count", f"row count of {rec.source} {rule} vs backup "
                f"({rec.row_count})", passed, count, []))
        for check in self.parity_checks(ctx):
            bad = conn.execute(check.count_sql).fetchone()[0]
            samples = []
            if bad and check.sample_sql:
                samples = [str(r[0]) for r in conn.execute(check.sample_sql).fetchall()]
            outcomes.append(CheckOutcome(check.name, check.description, bad == 0, bad, samples))
        if self.extra_checks is not None:
            outcomes.extend(self.extra_checks(self, conn, partition))
        return outcomes

    def _validation_up(self) -> StepReport:
        name = self.migration.name
        with self.locked("validation") as conn:
            if state.is_applied(conn, name, "validation"):
                return self._skip("validation", "up", "already applied")
            self._require(conn, "backfill")
            report = StepReport(name, "validation", "up")
            outcomes = self.run_checks(conn)
            report.extra["checks"] = [o.as_dict() for o in outcomes]
            failed = [o for o in outcomes if not o.passed]
            if failed:
                error = ValidationFailedError(
                    f"{name}: validation failed: " + "; ".join(
                        f"{o.name} (observed {o.observed}"
                        + (f", e.g. keys {', '.join(o.samples[:5])}" if o.samples else "") + ")"
                        for o in failed)
                )
                error.outcomes = outcomes  # every check, passed or not, for the Dagster checks
                raise error
            with conn.transaction():
                state.mark_applied(conn, name, "validation", self.run_id, {"checks": len(outcomes)})
            return report

    def _cutover_up(self) -> StepReport:
        name = self.migration.name
        with self.locked("cutover") as conn:
            if state.is_applied(conn, name, "cutover"):
                return self._skip("cutover", "up", "already applied")
            self._require(conn, "validation")
            ctx = self.context(conn)
            report = StepReport(name, "cutover", "up")
            actions = [a for op in self.migration.operations for a in op.complete(ctx)]
            undo = lambda: [a for op in reversed(self.migration.operations) for a in op.uncomplete(ctx)]  # noqa: E731
            self._run_actions(conn, actions, report, undo)
            with conn.transaction():
                state.mark_applied(conn, name, "cutover", self.run_id, {})
            return report

    def _require(self, conn: psycopg.Connection, step: str) -> None:
        if not state.is_applied(conn, self.migration.name, step):
            raise StepFailedError(
                f"{self.migration.name}: step {step} is not applied yet; run it first "
                f"(migration-dags up {self.migration.name})"
            )

    # -- steps: down -------------------------------------------------------------------------------
    def _cutover_down(self) -> StepReport:
        return self._undo_ops("cutover", lambda op, ctx: op.uncomplete(ctx))

    def _validation_down(self) -> StepReport:
        name = self.migration.name
        with self.locked("validation down") as conn:
            if not state.is_applied(conn, name, "validation"):
                return self._skip("validation", "down", "not applied")
            with conn.transaction():
                state.mark_undone(conn, name, "validation")
            return StepReport(name, "validation", "down")

    def _backfill_down(self) -> StepReport:
        name = self.migration.name
        with self.locked("backfill down") as conn:
            started = batches.partitions_status(conn, name)
            if not state.is_applied(conn, name, "backfill") and not any(n or d for _k, d, n in started):
                # keep the partition plan: it belongs to schema_change, whose down forgets it
                return self._skip("backfill", "down", "not applied")
            ctx = self.context(conn)
            report = StepReport(name, "backfill", "down")
            actions = [a for op in reversed(self.migration.operations) for a in op.unbackfill(ctx)]
            self._run_actions(conn, actions, report)
            with conn.transaction():
                state.reset_ranges(conn, name, [key for key, _d, _n in started])
                state.mark_undone(conn, name, "backfill")
            return report

    def _schema_change_down(self) -> StepReport:
        # the partition plan belongs to schema_change: forgotten with it, in the same transaction
        return self._undo_ops("schema_change", lambda op, ctx: op.rollback(ctx),
                              also=batches.forget_partitions)

    def _undo_ops(
        self, step: str, verb, also: Callable[[psycopg.Connection, str], None] | None = None
    ) -> StepReport:
        name = self.migration.name
        with self.locked(f"{step} down") as conn:
            if not state.is_applied(conn, name, step):
                if also is not None:  # leftovers of a step that never got recorded
                    with conn.transaction():
                        also(conn, name)
                return self._skip(step, "down", "not applied")
            ctx = self.context(conn)
            report = StepReport(name, step, "down")
            actions = [a for op in reversed(self.migration.operations) for a in verb(op, ctx)]
            self._run_actions(conn, actions, report)
            with conn.transaction():
                if also is not None:
                    also(conn, name)
                state.mark_undone(conn, name, step)
            return report

    def _backup_down(self) -> StepReport:
        """Prove every touched table equals its backup; only then drop the backups."""
        name = self.migration.name
        with self.locked("backup down") as conn:
            if not state.is_applied(conn, name, "backup"):
                return self._skip("backup", "down", "not applied")
            for later in ("cutover", "validation", "backfill", "schema_change"):
                if state.is_applied(conn, name, later):
                    raise RollbackFailedError(
                        f"{name}: cannot drop the backup while step {later} is still applied; "
                        f"run migration-dags down {name}")
            report = StepReport(name, "backup", "down")
            proof, mismatches = self.compare_with_backups(conn)
            report.extra["proof"] = proof
            if mismatches:
                raise RollbackFailedError(
                    f"{name}: rolled back, but {', '.join(mismatches)} differ from the pre-migration "
                    f"backup; the backups are kept in schema {state.BACKUP_SCHEMA}. Inspect them, then "
                    f"run `migration-dags restore {name}` to put the backed-up rows back exactly"
                )
            for rec in state.backups(conn, name):
                drop_backup(conn, rec)
            with conn.transaction():
                state.forget_backups(conn, name)
                state.mark_undone(conn, name, "backup")
            report.extra["tool_schemas_dropped"] = state.drop_state_if_unused(conn)
            return report

    def restore(self) -> StepReport:
        """Put every backed-up table's rows back exactly as the backup has them, then prove it and
        drop the backup (the backup step's down). For a rollback whose proof failed: it discards
        every write made to those tables since the backup, so it is never run automatically."""
        name = self.migration.name
        with self.locked("restore") as conn:
            if not state.is_applied(conn, name, "backup"):
                raise StepFailedError(f"{name}: there is no backup to restore (step backup not applied)")
            for later in ("cutover", "validation", "backfill", "schema_change"):
                if state.is_applied(conn, name, later):
                    raise StepFailedError(
                        f"{name}: step {later} is still applied; run migration-dags down {name} first")
            report = StepReport(name, "backup", "restore")
            for rec in state.backups(conn, name):
                started = time.monotonic()
                changed = restore_table(conn, rec)
                report.results.append(ActionResult(
                    Action(f"restore {rec.source} from {rec.backup}", f"-- rows put back by key from {rec.backup.sql}"),
                    True, changed, time.monotonic() - started, 1, 0.0))
        proof = self._backup_down()
        report.extra.update(proof.extra)
        return report

    def compare_with_backups(self, conn: psycopg.Connection) -> tuple[dict, list[str]]:
        proof, mismatches = {}, []
        for rec in state.backups(conn, self.migration.name):
            if not table_exists(conn, rec.source):
                proof[str(rec.source)] = {"exists": False}
                mismatches.append(f"{rec.source} (missing)")
                continue
            schema_now = schema_fingerprint(conn, rec.source)
            count, data_now = data_fingerprint(conn, rec.source)
            same = schema_now == rec.schema_fingerprint and data_now == rec.data_fingerprint
            proof[str(rec.source)] = {
                "schema_equal": schema_now == rec.schema_fingerprint,
                "data_equal": data_now == rec.data_fingerprint,
                "rows_before": rec.row_count, "rows_now": count,
            }
            if not same:
                what = "schema" if schema_now != rec.schema_fingerprint else "data"
                mismatches.append(f"{rec.source} ({what})")
        return proof, mismatches

    # -- status -----------------------------------------------------------------------------------
    def status(self) -> dict:
        with self.connection("status") as conn:
            if not table_exists(conn, TableName(state.STATE_SCHEMA, "applied_steps")):
                applied, parts = {}, []
            else:
                applied = state.applied_steps(conn, self.migration.name)
                parts = batches.partitions_status(conn, self.migration.name)
        return {
            "migration": self.migration.name,
            "steps": {
                s: ({"applied": True, "run_id": applied[s]["run_id"],
                     "applied_at": str(applied[s]["applied_at"])} if s in applied else {"applied": False})
                for s in state.STEPS
            },
            "backfill": {
                "partitions_total": len(parts),
                "partitions_done": sum(1 for _k, d, _n in parts if d),
                "rows_done": sum(n for _k, _d, n in parts),
            },
        }


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


__all__ = ["MigrationEngine", "CheckOutcome", "SchemaValidationError", "schema_description"]
