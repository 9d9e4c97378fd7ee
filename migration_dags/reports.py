"""What the core tells the Dagster layer and the CLI, as types: a step's report, the outcome of one
validation check, and a migration's status. No Dagster in here.

    StepReport      what one step did (its actions' results) or why it did nothing
    CheckOutcome    one validation check: passed or not, what was observed, sample keys,
                    and its CheckFamily (which blocking Dagster check it belongs to)
    MigrationStatus which steps are applied, by which run and when; backfill progress
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

from .actions import ActionResult


@dataclass
class StepReport:
    """What one step did: the runner fills it, the Dagster layer turns it into metadata.

    `complete` is False when the step did part of its work and must be run again (a backfill
    with partitions left): the engine then does not record the step as applied."""

    migration: str
    step: str
    direction: str
    results: list[ActionResult] = field(default_factory=list)
    skipped_reason: str | None = None
    extra: dict = field(default_factory=dict)
    complete: bool = True
    # what the engine records with the step's state when it marks the step applied
    recorded: dict = field(default_factory=dict)

    @property
    def sql(self) -> str:
        return "\n\n".join(r.action.render() for r in self.results if r.ran)

    @property
    def rows(self) -> int:
        return sum(max(r.rowcount, 0) for r in self.results)

    @property
    def retries(self) -> int:
        return sum(r.attempts - 1 for r in self.results)

    @property
    def lock_wait_s(self) -> float:
        return sum(r.lock_wait_s for r in self.results)

    @property
    def duration_s(self) -> float:
        return sum(r.duration_s for r in self.results)


class CheckFamily(str, Enum):
    """The blocking Dagster check an outcome is reported under (orchestration/checks.py)."""

    BACKFILL_COMPLETE = "backfill_complete"  # every backfill partition is done
    ROW_COUNTS = "row_counts"                # each backed-up table's row count vs its backup
    PARITY = "parity"                        # the operations' own checks
    SUITE = "suite"                          # a Great Expectations suite (`suite` names it)


@dataclass
class CheckOutcome:
    name: str
    description: str
    passed: bool
    observed: int | str
    samples: list[str]
    family: CheckFamily = CheckFamily.PARITY
    suite: str | None = None
    note: str | None = None  # why it failed, when the check can tell (ParityCheck.explain_sql)

    def __post_init__(self) -> None:
        self.family = CheckFamily(self.family)  # also accepts the value, as read back from JSON
        if (self.family is CheckFamily.SUITE) != (self.suite is not None):
            raise ValueError(f"check {self.name}: a suite outcome names its suite, no other does")

    def as_dict(self) -> dict:
        return {
            "name": self.name, "description": self.description, "passed": self.passed,
            "observed": self.observed, "samples": self.samples, "family": self.family.value,
            "suite": self.suite, **({"note": self.note} if self.note else {}),
        }


@dataclass(frozen=True)
class StepState:
    applied: bool
    run_id: str | None = None
    applied_at: str | None = None
    # not applied, but a run stopped inside it (a kill, a lost connection): up resumes it,
    # down undoes it
    started: bool = False

    def as_dict(self) -> dict:
        if not self.applied:
            return {"applied": False, "started": True} if self.started else {"applied": False}
        return {"applied": True, "run_id": self.run_id, "applied_at": self.applied_at}


@dataclass(frozen=True)
class BackfillProgress:
    partitions_total: int = 0
    partitions_done: int = 0
    rows_done: int = 0

    @property
    def remaining(self) -> int:
        return self.partitions_total - self.partitions_done


@dataclass(frozen=True)
class MigrationStatus:
    migration: str
    steps: dict[str, StepState]
    backfill: BackfillProgress
    # how the file differs from the one the migration was applied from (drift.py); None: it does not
    file_changed: str | None = None
    # writes in the old shape the counters saw (expand/old_shape_writes.py), as_dict() of it
    old_shape_writes: dict | None = None
    # the schemas holding the new shape as views while expanded (and after complete)
    version_schemas: list[str] = field(default_factory=list)

    def applied_steps(self) -> set[str]:
        return {name for name, s in self.steps.items() if s.applied}

    @property
    def state(self) -> str:
        """not applied | in progress | expanded | complete"""
        if self.steps["cutover"].applied:
            return "complete"
        if self.steps["validation"].applied:
            return "expanded"
        if any(s.applied or s.started for s in self.steps.values()):
            return "in progress"
        return "not applied"

    @property
    def state_since(self) -> str | None:
        """When the state began: cutover's time when complete, validation's when expanded."""
        step = {"complete": "cutover", "expanded": "validation"}.get(self.state)
        return self.steps[step].applied_at if step else None

    def is_applied(self, step: str) -> bool:
        return self.steps[step].applied

    def as_dict(self) -> dict:
        """The shape `migration-dags status --json` prints."""
        return {
            "migration": self.migration,
            "steps": {name: s.as_dict() for name, s in self.steps.items()},
            "backfill": asdict(self.backfill),
            "file_changed": self.file_changed,
            "state": self.state,
            "state_since": self.state_since,
            "old_shape_writes": self.old_shape_writes,
            "version_schemas": self.version_schemas,
        }
