"""schema_change (expand): every operation's start, under lock_timeout with retries; then the
version schema showing the new shape as views, and the triggers counting writes in the old shape
(expand/); then the backfill's key-range partitions are planned (they belong to this step: its
down forgets them).

Before any change, a version schema of another migration over the same tables is dropped when
that migration is complete, and refuses this one while it is still expanded.

A failing start runs every operation's rollback, in reverse, before raising. The down drops the
version schema and the counters first (the views read the columns the rollback drops).
"""

from __future__ import annotations

from .. import batches, expand, state
from ..expand.version_schema import drop_other_actions, others_in_the_way
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
        completed = state.migrations_with_step(run.conn, "cutover")
        others = others_in_the_way(run.conn, run.migration, completed)  # may refuse: nothing ran
        ctx = run.op_context()
        report = run.report(self.name, "up")
        ops = run.migration.operations
        undo = lambda: [*_expansion_down(run), *down_actions(self.name, ops, ctx)]  # noqa: E731
        run.run_actions(drop_other_actions(others) + up_actions(self.name, ops, ctx), report,
                        undo=undo)
        started = run.op_context()  # the schema as start left it
        run.run_actions(_expansion_up(run, started), report, undo=undo)
        tasks = backfill_tasks(ops, started)
        partitions = batches.plan_partitions(
            run.conn, run.name, tasks, run.migration.settings.partition_rows)
        report.extra["partitions"] = partitions
        report.recorded = {"partitions": len(partitions)}
        return report

    def down(self, run: StepRun) -> StepReport:
        report = run.report(self.name, "down")
        run.run_actions([*_expansion_down(run),
                         *down_actions(self.name, run.migration.operations, run.op_context())],
                        report)
        return report

    def forget_unrecorded(self, run: StepRun) -> None:
        with run.conn.transaction():  # a partition plan whose step was never recorded
            state.forget_ranges(run.conn, run.name)

    def forget(self, run: StepRun) -> None:
        state.forget_ranges(run.conn, run.name)

    def plan(self, planning: Planning) -> list[str]:
        actions = [*up_actions(self.name, planning.migration.operations, planning.op_context),
                   *expand.create_actions(planning.migration, planning.op_context),
                   *expand.count_actions(planning.migration)]
        return [a.render() for a in actions]


def _expansion_up(run: StepRun, ctx) -> list:
    return [*expand.create_actions(run.migration, ctx), *expand.count_actions(run.migration)]


def _expansion_down(run: StepRun) -> list:
    return [*expand.drop_count_actions(run.migration), *expand.drop_actions(run.migration)]

