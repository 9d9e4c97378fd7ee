"""cutover (contract): every operation's complete, the switch that makes the new shape the only
one. `up` stops before it (the expanded state); `complete` runs it.

First the proof that the old release has stopped (expand/old_shape_writes.py): while writes in the
old shape were seen within the quiet period, it refuses (exit 10) and changes nothing, unless
forced. A resumed cutover (a run died inside it) goes on without asking again.

A failing complete runs every operation's uncomplete, in reverse, before raising. After the
contract the old-shape counters go; the version schema stays, so the new release keeps working.
The down is every uncomplete, then the counters again (back to the expanded state)."""

from __future__ import annotations

from .. import expand
from ..reports import StepReport
from .base import Planning, Step, StepRun
from .verbs import down_actions, up_actions


class CutoverStep(Step):
    name = "cutover"
    description = "Contract: the switch that makes the new shape the only one."

    def up(self, run: StepRun, partition: str | None = None) -> StepReport:
        report = run.report(self.name, "up")
        options = run.engine.complete_options
        if not run.resuming:
            seen = expand.require_quiet(run.conn, run.migration, options)  # may refuse
            if seen is not None:
                report.extra["old_shape_writes"] = seen.as_dict()
            if options.force:
                report.extra["forced"] = True
        ctx = run.op_context()
        ops = run.migration.operations
        run.run_actions(up_actions(self.name, ops, ctx), report,
                        undo=lambda: down_actions(self.name, ops, ctx))
        run.run_actions(expand.drop_count_actions(run.migration, keep_counts=True), report)
        report.extra["migration_state"] = "complete: the new shape is the only one"
        return report

    def down(self, run: StepRun) -> StepReport:
        report = run.report(self.name, "down")
        run.run_actions([*down_actions(self.name, run.migration.operations, run.op_context()),
                         *expand.count_actions(run.migration)], report)
        return report

    def plan(self, planning: Planning) -> list[str]:
        actions = [*up_actions(self.name, planning.migration.operations, planning.op_context),
                   *expand.drop_count_actions(planning.migration, keep_counts=True)]
        return [a.render() for a in actions]
