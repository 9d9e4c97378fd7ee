"""What every step shares: the step contract, and running a step's actions all-or-nothing.

A step is one of the five stages of a migration (backup, schema_change, backfill, validation,
cutover), with an up, a down and a plan. The engine (engine.py) holds the migration lock around
each call, skips an up already applied or a down not applied, refuses an up whose earlier step is
not applied, records the step started before it runs and applied or undone after; the step does
its own work only, and must be safe to re-run (`run.resuming`) or undo after a kill at any point.

    up(run, partition)   the step's work; a report whose `complete` says whether to record
                         the step applied (a backfill with partitions left is not)
    down(run)            the undo of up
    plan(planning)       the SQL up would run, as text; changes nothing
    has_applied_work     whether down has anything to undo (default: the step is recorded)
    forget(run)          state to drop with the step's record, in the same transaction
    after_down(run, r)   once the step is recorded undone (backup: drop the tool's schemas)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar

import psycopg

from .. import state
from ..actions import Action
from ..db import ActionRunner
from ..errors import MigrationError, StepFailedError
from ..operations.base import OpContext
from ..reports import StepReport
from ..spec import Migration
from . import context

if TYPE_CHECKING:
    from ..engine import MigrationEngine


@dataclass
class StepRun:
    """One call of a step: the engine that called it and the locked connection. `resuming`: an
    earlier run was recorded started in this step and died inside it (state/started.py)."""

    engine: "MigrationEngine"
    conn: psycopg.Connection
    resuming: bool = False

    @property
    def migration(self) -> Migration:
        return self.engine.migration

    @property
    def name(self) -> str:
        return self.engine.migration.name

    def log(self, line: str) -> None:
        self.engine.log(line)

    def op_context(self) -> OpContext:
        return context.live_op_context(self.conn, self.migration)

    def report(self, step: str, direction: str) -> StepReport:
        return StepReport(self.name, step, direction)

    def run_actions(
        self, actions: list[Action], report: StepReport,
        undo: Callable[[], list[Action]] | None = None,
    ) -> None:
        """Run `actions` in order, each result into `report`. When one fails and `undo` is given,
        run every undo action (best effort, all of them), then raise: the step's own error when
        the undo succeeded and it is ours, else StepFailedError saying what the undo did."""
        runner = ActionRunner(self.conn, self.engine.lock_settings)
        try:
            for action in actions:
                result = runner.run(action)
                report.results.append(result)
                if result.ran:  # an action whose `only_if` said no did nothing: not logged
                    self.log(f"{report.step} {report.direction}: {action.description} "
                             f"({result.duration_s:.2f} s)")
        except Exception as exc:
            if undo is None:
                raise
            self.log(f"{report.step} failed ({exc}); undoing its partial work")
            undo_errors = _undo_best_effort(runner, undo())
            if isinstance(exc, MigrationError) and not undo_errors:
                raise
            detail = (f"; undo also failed: {undo_errors[0]}" if undo_errors
                      else "; its partial work was undone")
            raise StepFailedError(
                f"{self.name}: step {report.step} failed: {one_line(exc)}{detail}"
            ) from exc


@dataclass
class Planning:
    """What `plan` renders a step against: the live catalog's context, or the file's alone."""

    migration: Migration
    op_context: OpContext
    offline: bool = False
    applied: dict[str, dict] = field(default_factory=dict)


class Step:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # validate the migration against the live schema before the lock and the tool's state tables
    # exist, so that bad input changes nothing (the first step only)
    validate_before_lock: ClassVar[bool] = False

    def up(self, run: StepRun, partition: str | None = None) -> StepReport:
        raise NotImplementedError

    def down(self, run: StepRun) -> StepReport:
        raise NotImplementedError

    def plan(self, planning: Planning) -> list[str]:
        raise NotImplementedError

    def has_applied_work(self, run: StepRun) -> bool:
        return state.is_applied(run.conn, run.name, self.name)

    def forget_unrecorded(self, run: StepRun) -> None:
        """Leftovers of a step that never got recorded as applied (nothing by default)."""

    def forget(self, run: StepRun) -> None:
        """State dropped in the transaction that records the step undone (nothing by default)."""

    def after_down(self, run: StepRun, report: StepReport) -> None:
        """After the step is recorded undone (nothing by default)."""


def _undo_best_effort(runner: ActionRunner, actions: list[Action]) -> list[str]:
    errors = []
    for action in actions:
        try:
            runner.run(action)
        except Exception as exc:  # keep undoing the rest; report the first failure
            errors.append(f"{action.description}: {one_line(exc)}")
    return errors


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
