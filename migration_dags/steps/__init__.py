"""The five steps of a migration, one module each, in the order they run:

    backup         copy what the migration touches; its down proves the tables equal the copy
    schema_change  expand: every operation's start (new columns, triggers, NOT VALID constraints)
    backfill       key-range partitions of every operation's backfill task, in batches
    validation     blocking checks: backfill complete, row counts, parity, suites
    cutover        contract: every operation's complete

verbs.py is the one table of which operation verbs each step calls.
"""

from __future__ import annotations

from .backfill import BackfillStep
from .backup import BackupStep
from .base import Planning, Step, StepRun
from .cutover import CutoverStep
from .schema_change import SchemaChangeStep
from .validation import ValidationStep
from .verbs import STEP_VERBS

STEP_TYPES: dict[str, Step] = {
    s.name: s
    for s in (BackupStep(), SchemaChangeStep(), BackfillStep(), ValidationStep(), CutoverStep())
}
STEPS: tuple[str, ...] = tuple(STEP_TYPES)
DOWN_ORDER: tuple[str, ...] = tuple(reversed(STEPS))

__all__ = ["STEP_TYPES", "STEPS", "DOWN_ORDER", "STEP_VERBS", "Planning", "Step", "StepRun"]
