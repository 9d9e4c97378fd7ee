"""backfill: every operation's BackfillTask, run over key-range partitions in batches
(migration_dags.batches does the batching), then, once every partition is done, the indexes
deferred from schema_change (verbs.deferred_indexes). The step is recorded as applied only once
every partition is done; a run of some partitions leaves it open. Its down runs every operation's
unbackfill (in reverse) and resets the partitions' progress; the partition plan itself belongs to
schema_change.
"""

from __future__ import annotations

import psycopg

from .. import batches, state
from ..db.faults import checkpoint
from ..actions import Action, ActionResult
from ..errors import RefusedError
from ..reports import StepReport
from ..settings import terminal_progress_wanted
from .base import Planning, Step, StepRun
from .backfill_failure import batch_failure
from .verbs import after_backfill_actions, backfill_tasks, down_actions

# errors a batch's data causes (an expression, a cast, a constraint, a user trigger raising);
# connection loss and lock timeouts are not among them
DATA_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError,
               psycopg.errors.ProgrammingError, psycopg.errors.InternalError)


class BackfillStep(Step):
    name = "backfill"
    description = "Fill existing rows in key-range batches; one partition per key range."

    def up(self, run: StepRun, partition: str | None = None) -> StepReport:
        settings = run.migration.settings
        tasks = backfill_tasks(run.migration.operations, run.op_context())
        report = run.report(self.name, "up")
        status = state.ranges_status(run.conn, run.name)
        if not status and tasks:
            # a plan lost or never made (e.g. state edited by hand): never count "no
            # partitions" as "all partitions done"
            batches.plan_partitions(run.conn, run.name, tasks, settings.partition_rows)
            status = state.ranges_status(run.conn, run.name)
        if partition is not None and partition not in {k for k, _d, _n in status}:
            raise RefusedError(f"{run.name}: backfill partition {partition!r} is not planned")
        todo = [k for k, done, _n in status if not done and partition in (None, k)]
        results = []
        throttle = batches.throttle_for(settings)
        on_batch = batches.both(
            batches.progress_logger(run.log),
            batches.terminal_progress() if terminal_progress_wanted() else None)
        rows_before = {k: n for k, _d, n in status}
        for key in todo:
            try:
                result = batches.run_partition(
                    run.conn, run.name, key, tasks, settings.batch_size,
                    batches.BATCH_LOCK_TIMEOUT_MS, throttle=throttle,
                    on_batch=_with_checkpoint(on_batch),
                )
            except DATA_ERRORS as exc:  # a batch failed on the data: say where, and how to go on
                rows_now = {k: n for k, _d, n in state.ranges_status(run.conn, run.name)}
                committed = sum(r.rows for r in results) + rows_now.get(key, 0) - rows_before.get(key, 0)
                task = tasks[state.read_range(run.conn, run.name, key).task_index]
                raise batch_failure(run.conn, run.name, key, task, exc, committed,
                                    batches.BATCH_LOCK_TIMEOUT_MS) from exc
            results.append(result)
            report.results.append(ActionResult(
                Action(f"backfill partition {key}", result.sample_sql or "-- nothing to do"),
                True, result.rows, result.elapsed_s, 1 + result.retries, 0.0))
        if todo:
            # the batches committed asynchronously: one synchronous commit flushes them all
            batches.make_durable(run.conn, run.name)
        remaining = [k for k, d, _n in state.ranges_status(run.conn, run.name) if not d]
        if not remaining:  # idempotent: a resumed run builds what a killed one did not
            run.run_actions(after_backfill_actions(run.migration.operations, run.op_context()),
                            report)
        rows = sum(r.rows for r in results)
        report.extra.update({
            "partitions_done": len(status) - len(remaining),
            "partitions_total": len(status),
            "rows": rows,
            "rows_per_s": round(rows / max(sum(r.elapsed_s for r in results), 1e-9), 1),
            "batches": sum(r.batches for r in results),
            "lock_retries": sum(r.retries for r in results),
            "paused_s": round(sum(r.paused_s for r in results), 3),
        })
        report.complete = not remaining
        report.recorded = dict(report.extra)
        return report

    def has_applied_work(self, run: StepRun) -> bool:
        # a partly done backfill is not recorded as applied, yet has rows to undo
        started = state.ranges_status(run.conn, run.name)
        return super().has_applied_work(run) or any(n or d for _k, d, n in started)

    def down(self, run: StepRun) -> StepReport:
        report = run.report(self.name, "down")
        run.run_actions(down_actions(self.name, run.migration.operations, run.op_context()), report)
        return report

    def forget(self, run: StepRun) -> None:
        # keep the partition plan (schema_change's down forgets it); forget the progress
        keys = [k for k, _d, _n in state.ranges_status(run.conn, run.name)]
        state.reset_ranges(run.conn, run.name, keys)

    def plan(self, planning: Planning) -> list[str]:
        batch_size = planning.migration.settings.batch_size
        ops, ctx = planning.migration.operations, planning.op_context
        return [
            f"-- {t.description}, in key-range batches of {batch_size}\n"
            + t.for_range("<key range>") + ";"
            for t in backfill_tasks(ops, ctx)
        ] + [f"-- once every key range is done:\n{a.render()}"
             for a in after_backfill_actions(ops, ctx)]


def _with_checkpoint(on_batch):
    """A crash-test checkpoint after each committed batch (db/faults.py; inert in production)."""
    def call(*args, **kwargs):
        on_batch(*args, **kwargs)
        checkpoint("backfill: batch committed")
    return call
