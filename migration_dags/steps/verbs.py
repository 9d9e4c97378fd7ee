"""The one table that says which operation verbs each step calls, used by the engine, `plan` and
the lifecycle harness alike (pgroll's start/complete/rollback, plus our backfill and checks).

    step           up verb      down verb
    backup         -            -            (the step copies tables; operations are not asked)
    schema_change  start        rollback
    backfill       backfill     unbackfill   (backfill gives one BackfillTask, not actions)
    validation     checks       -            (parity checks, not actions)
    cutover        complete     uncomplete

Downs run the operations in reverse order, so an operation's undo sees what later ones left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ..actions import Action

if TYPE_CHECKING:
    from ..operations.base import BackfillTask, OpContext, Operation, ParityCheck


@dataclass(frozen=True)
class StepVerbs:
    up: str | None
    down: str | None


STEP_VERBS: dict[str, StepVerbs] = {
    "backup": StepVerbs(None, None),
    "schema_change": StepVerbs("start", "rollback"),
    "backfill": StepVerbs("backfill", "unbackfill"),
    "validation": StepVerbs("checks", None),
    "cutover": StepVerbs("complete", "uncomplete"),
}


def up_actions(step: str, operations: Sequence["Operation"], ctx: "OpContext") -> list[Action]:
    """Every action of the step's up verb, operations in file order."""
    verb = STEP_VERBS[step].up
    return [a for op in operations for a in getattr(op, verb)(ctx)] if verb else []


def down_actions(step: str, operations: Sequence["Operation"], ctx: "OpContext") -> list[Action]:
    """Every action of the step's down verb, operations in reverse order."""
    verb = STEP_VERBS[step].down
    return [a for op in reversed(operations) for a in getattr(op, verb)(ctx)] if verb else []


def backfill_tasks(operations: Sequence["Operation"], ctx: "OpContext") -> list["BackfillTask"]:
    return [t for op in operations if (t := op.backfill(ctx)) is not None]


def parity_checks(operations: Sequence["Operation"], ctx: "OpContext") -> list["ParityCheck"]:
    return [c for op in operations for c in op.checks(ctx)]
