"""The one decision "validation failed -> roll the migration back", as data.

Both the CLI (launch.run_up, which runs the rollback in-process at once) and an automatic-rollback
sensor (which would turn each request into a RunRequest) call `rollbacks_for` with the check
evaluations they saw, read from the instance's event log by `check_evaluations_for_run` or by a
sensor's cursor over ASSET_CHECK_EVALUATION records.

The rollback sensor (sensors.py) asks `rollbacks_for_failed_run`, which applies `rollbacks_for`
first and adds the rule for a failed step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import dagster as dg

from ..errors import error_class
from ..steps import STEPS
from .jobs import rollback_job_name

VALIDATION_STEP = "validation"
# assets whose blocking checks gate cutover: validation's, and backfill's per-key-range suites
CHECKED_STEPS = frozenset({"backfill", "backfill_ranges", VALIDATION_STEP})


@dataclass(frozen=True)
class RollbackRequest:
    migration: str
    job_name: str
    failed_checks: tuple[str, ...]
    failed_run_id: str | None
    failed_step: str | None = None  # set when a step failed, not validation's checks

    @property
    def reason(self) -> str:
        return "step_failed" if self.failed_step and not self.failed_checks else "validation_failed"

    @property
    def tags(self) -> dict[str, str]:
        tags = {"reason": self.reason}
        if self.failed_checks:
            tags["failed_checks"] = ",".join(self.failed_checks)
        if self.failed_step:
            tags["failed_step"] = self.failed_step
        if self.failed_run_id:
            tags["triggered_by_run"] = self.failed_run_id
        return tags


def rollbacks_for(
    evaluations: Iterable[dg.AssetCheckEvaluation], failed_run_id: str | None = None
) -> list[RollbackRequest]:
    """One rollback per migration whose validation (or backfill) asset has a failed
    ERROR-severity check."""
    failed: dict[str, list[str]] = {}
    for ev in evaluations:
        path = ev.asset_key.path
        if len(path) != 2 or path[1] not in CHECKED_STEPS:
            continue
        if not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR:
            failed.setdefault(path[0], []).append(ev.check_name)
    return [
        RollbackRequest(m, rollback_job_name(m), tuple(sorted(names)), failed_run_id)
        for m, names in sorted(failed.items())
    ]


def check_evaluations_for_run(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    return [r.event_log_entry.dagster_event.event_specific_data for r in records]


def changed_nothing(errors: Iterable[str]) -> bool:
    """True when the failure's error (or a cause) is one of ours that changed nothing: a refusal
    or bad input (`ran` is False), or one that says "run again" (`retryable`: another run holds
    the migration lock, where rolling back would undo that run's work; a lock or the database
    was unavailable). A serialised error keeps only class names; errors.error_class maps them
    back to our classes, which carry the answer."""
    for name in errors:
        cls = error_class(name)
        if cls is not None and (cls.retryable or not cls.ran):
            return True
    return False


@dataclass(frozen=True)
class StepFailure:
    migration: str
    step: str
    errors: tuple[str, ...] = ()  # class names of the error and its causes


def rollbacks_for_failed_run(
    run_id: str,
    evaluations: Iterable[dg.AssetCheckEvaluation],
    step_failures: Iterable[StepFailure],
    applied: dict[str, set[str]],
    launched_by_cli: bool,
) -> list[RollbackRequest]:
    """What to roll back after run `run_id` failed; `applied` holds each migration's applied steps.

    Validation failed: roll back, as the CLI does at once. A step failed: roll back too, unless
    - the run is the CLI's: it reported the failure with its exit code and leaves the migration
      to resume (`up`) or roll back (`down`); a half-done backfill is resumable;
    - the error says it changed nothing (changed_nothing: a refusal, or "run again");
    - a step before it is not applied: the step was refused (run out of order, or validation
      before every backfill partition is done) and ran nothing.
    Never for a migration with no step applied: there is nothing to roll back.
    """
    requests = [r for r in rollbacks_for(evaluations, run_id) if applied.get(r.migration)]
    if launched_by_cli:
        return requests
    chosen = {r.migration for r in requests}
    for failure in step_failures:
        done = applied.get(failure.migration, set())
        if failure.migration in chosen or failure.step not in STEPS or not done:
            continue
        if changed_nothing(failure.errors):
            continue
        if any(step not in done for step in STEPS[: STEPS.index(failure.step)]):
            continue
        chosen.add(failure.migration)
        requests.append(RollbackRequest(
            failure.migration, rollback_job_name(failure.migration), (), run_id, failure.step
        ))
    return requests
