"""cutover (contract): every operation's complete, the switch that makes the new shape the only
one. A failing complete runs every operation's uncomplete, in reverse, before raising; the down
is every uncomplete."""

from __future__ import annotations

from ..reports import StepReport
from .base import Planning, Step, StepRun
from .verbs import down_actions, up_actions


class CutoverStep(Step):
    name = "cutover"
    description = "Contract: the switch that makes the new shape the only one."

    def up(self, run: StepRun, partition: str | None = None) -> StepReport:
        ctx = run.op_context()
        ops = run.migration.operations
        report = run.report(self.name, "up")
        run.run_actions(up_actions(self.name, ops, ctx), report,
                        undo=lambda: down_actions(self.name, ops, ctx))
        return report

    def down(self, run: StepRun) -> StepReport:
        report = run.report(self.name, "down")
        run.run_actions(down_actions(self.name, run.migration.operations, run.op_context()), report)
        return report

    def plan(self, planning: Planning) -> list[str]:
        return [a.render() for a in up_actions(self.name, planning.migration.operations,
                                               planning.op_context)]
