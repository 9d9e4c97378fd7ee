"""schema_change (expand): every operation's start, under lock_timeout with retries; then the
backfill's key-range partitions are planned (they belong to this step: its down forgets them).

A failing start runs every operation's rollback, in reverse, before raising.
"""

from __future__ import annotations

from .. import batches, state
from ..reports import StepReport
from .base import Planning, Step, StepRun
from .context import validate
from .verbs import backfill_tasks, down_actions, up_actions


class SchemaChangeStep(Step):
    name = "schema_change"
    description = ("Expand: new columns, triggers, NOT VALID constraints; plans the backfill's "
                   "key-range partitions.")

    def up(self, run: StepRun, partition: str | None = None) -> StepReport:
        if not run.resuming:
            # a resumed run would be checked against the schema its own start changed (the
            # column it added "already exists"): its start actions are idempotent instead
            validate(run.conn, run.migration)
        ctx = run.op_context()
        report = run.report(self.name, "up")
        ops = run.migration.operations
        run.run_actions(up_actions(self.name, ops, ctx), report,
                        undo=lambda: down_actions(self.name, ops, ctx))
        tasks = backfill_tasks(ops, run.op_context())  # the schema as start left it
        partitions = batches.plan_partitions(
            run.conn, run.name, tasks, run.migration.settings.partition_rows)
        report.extra["partitions"] = partitions
        report.recorded = {"partitions": len(partitions)}
        return report

    def down(self, run: StepRun) -> StepReport:
        report = run.report(self.name, "down")
        run.run_actions(down_actions(self.name, run.migration.operations, run.op_context()), report)
        return report

    def forget_unrecorded(self, run: StepRun) -> None:
        with run.conn.transaction():  # a partition plan whose step was never recorded
            state.forget_ranges(run.conn, run.name)

    def forget(self, run: StepRun) -> None:
        state.forget_ranges(run.conn, run.name)

    def plan(self, planning: Planning) -> list[str]:
        return [a.render() for a in up_actions(self.name, planning.migration.operations,
                                               planning.op_context)]
