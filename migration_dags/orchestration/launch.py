"""Running a migration's steps from the CLI *through a Dagster instance*, so every CLI run is in
the run history next to the runs launched from the UI.

`run_up` runs the steps not applied yet (backup, schema_change, backfill, validation, and with
--complete cutover) as two in-process runs (run_groups): the steps before the backfill, then the
backfill with the steps after it; `backfill` runs every key range not done yet (each recorded as a
partition of the key-range asset). Each run is tagged migration/step/direction/actor/
code_version, its `step` tag naming its steps (`backup,schema_change`); a failed step is retried
by the next `up`, which starts at it.

A failed validation is not an error to raise: `run_up` asks rollback_policy what to do, runs the
rollback job, and returns VALIDATION_FAILED_ROLLED_BACK (exit 3) or, if the rollback itself
failed, VALIDATION_FAILED_ROLLBACK_FAILED (exit 4). Every other failure raises the step's own
error (a MigrationError subclass with its exit code).

DAGSTER_HOME comes from settings.dagster_home(); run logs stay in the instance, not the console.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterator, Sequence

import dagster as dg

from .. import settings
from ..db import command_lock
from ..engine import MigrationEngine
from ..errors import (
    MigrationError, MigrationLockedError, RefusedError, RollbackFailedError, ValidationFailedError,
)
from ..migration_set import MigrationSet
from ..spec import Migration
from ..steps import STEPS
from . import partitions
from .assets import step_key
from .metadata import step_metadata
from .definitions import definitions_for
from .jobs import DOWN_ORDER, rollback_job_name
from .resources import MigrationDatabase
from .rollback_policy import (
    CHECKED_STEPS, RollbackRequest, check_evaluations_for_run, rollbacks_for,
)
from ..run_tags import actor as resolve_actor
from ..run_tags import ALLOW_CHANGED_TAG, base_tags, complete_tags
from ..target_database import database_url_for

Progress = Callable[[str], None]


class UpOutcome(str, Enum):
    APPLIED = "applied"
    NOTHING_TO_DO = "nothing_to_do"
    VALIDATION_FAILED_ROLLED_BACK = "validation_failed_rolled_back"
    VALIDATION_FAILED_ROLLBACK_FAILED = "validation_failed_rollback_failed"


EXIT_CODES = {
    UpOutcome.APPLIED: 0,
    UpOutcome.NOTHING_TO_DO: 0,
    UpOutcome.VALIDATION_FAILED_ROLLED_BACK: ValidationFailedError.exit_code,
    UpOutcome.VALIDATION_FAILED_ROLLBACK_FAILED: RollbackFailedError.exit_code,
}


@dataclass
class StepRun:
    step: str
    direction: str
    run_id: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        md = self.metadata
        if "skipped" in md:
            return f"nothing to do ({md['skipped']})"
        parts = [f"{md.get('rows_affected', 0)} rows", f"{md.get('duration_s', 0)} s"]
        if "rows_per_s" in md:
            parts.append(f"{md['rows_per_s']:,.0f} rows/s, partitions {md.get('partitions_done')}"
                         f"/{md.get('partitions_total')}")
        if md.get("retries"):
            parts.append(f"{md['retries']} lock retries")
        return ", ".join(parts)


@dataclass
class UpResult:
    migration: str
    outcome: UpOutcome
    runs: list[StepRun] = field(default_factory=list)
    message: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


@dataclass
class DownResult:
    migration: str
    run_id: str | None
    steps: list[StepRun] = field(default_factory=list)


class Launcher:
    """One migration's runs, in-process, recorded in `instance`."""

    def __init__(
        self, migration: Migration, instance: dg.DagsterInstance, database_url: str,
        actor: str | None = None, progress: Progress = lambda _line: None, verbose: bool = False,
        allow_changed: bool = False,
    ):
        self.migration = migration
        self.name = migration.name
        self.instance = instance
        self.progress = progress
        self.tags = base_tags(migration, resolve_actor(actor), database_url)
        if allow_changed:
            self.tags[ALLOW_CHANGED_TAG] = "true"
        self.engine = MigrationEngine(migration, database_url, allow_changed=allow_changed)
        self.defs = definitions_for([migration], MigrationDatabase(database_url=database_url))
        level = "INFO" if verbose else "CRITICAL"
        self.run_config = {"loggers": {"console": {"config": {"log_level": level}}}}

    # -- up ------------------------------------------------------------------------------------
    def up(self, complete: bool = False) -> UpResult:
        """Every step not applied yet up to validation: the migration is then expanded (both
        shapes work; expand/). With `complete`, cutover too (a database no application writes)."""
        with self._command_lock("up"):  # one lock across every step's run (db/lease.py)
            return self._up(STEPS if complete else STEPS[:-1])

    def complete(self, quiet_seconds: float | None = None, force: bool = False) -> UpResult:
        """The cutover step of an expanded migration, refused (exit 10) while writes in the old
        shape were seen within the quiet period, unless forced (the run's tags record both)."""
        self.tags.update(complete_tags(quiet_seconds, force))
        with self._command_lock("complete"):
            status = self.engine.status()
            if status.is_applied("cutover"):
                self.progress(f"{self.name}: already complete; nothing to do")
                return UpResult(self.name, UpOutcome.NOTHING_TO_DO)
            if not status.is_applied("validation"):
                raise RefusedError(
                    f"{self.name}: not expanded yet (validation is not applied); run "
                    f"`migration-dags up {self.name}` first")
            return self._up(STEPS)

    @contextmanager
    def _command_lock(self, command: str) -> Iterator[None]:
        """The lock for the whole command. When another run holds it, go on unlocked: the
        first step's run is refused the same way (exit 6, naming the holder) and stays in the
        run history, so the history shows who tried."""
        app = f"migration-dags {self.name} {command} (command lock)"
        with ExitStack() as stack:
            try:
                stack.enter_context(command_lock(self.engine.database_url, app))
            except MigrationLockedError:
                pass
            yield

    def _up(self, steps: Sequence[str]) -> UpResult:
        applied = self.engine.status().applied_steps()
        todo = [s for s in steps if s not in applied]
        if not todo:
            upto = "" if steps[-1] == STEPS[-1] else f" up to {steps[-1]} (expanded)"
            self.progress(f"{self.name}: every step{upto} is already applied; nothing to do")
            return UpResult(self.name, UpOutcome.NOTHING_TO_DO)
        result = UpResult(self.name, UpOutcome.APPLIED)
        for group in run_groups(todo):
            run_id = str(uuid.uuid4())
            try:
                result.runs.extend(self._run_steps(group, run_id))
            except Exception:
                requests = rollbacks_for(check_evaluations_for_run(self.instance, run_id), run_id)
                # blocking checks live on validation and, per backfilled key range, on backfill
                if not CHECKED_STEPS.intersection(group) or not requests:
                    raise
                return self._roll_back_failed_validation(result, requests[0], run_id)
        return result

    def _run_steps(self, steps: list[str], run_id: str) -> list[StepRun]:
        """One run materializing `steps` (their assets, in order); a StepRun per step."""
        tags = {**self.tags, "step": ",".join(steps), "direction": "up"}
        what = f"{', '.join(steps)} up: run {run_id[:8]}"
        if "backfill" in steps:  # the asset runs every key range not done yet
            keys = partitions.sync(self.instance, self.name, partitions.planned_keys(self.engine))
            if keys:
                what += f", {len(keys)} backfill key ranges"
        self.progress(f"{self.name}: {what}")
        job = self.defs.resolve_implicit_global_asset_job_def()
        job.execute_in_process(
            instance=self.instance, asset_selection=[step_key(self.name, s) for s in steps],
            tags=tags, run_config=self.run_config, run_id=run_id,
        )
        runs = []
        for step in steps:
            run = StepRun(step, "up", run_id, self._materialization_metadata(run_id, step))
            self.progress(f"{self.name}: {step} up: done, {run.summary()}")
            runs.append(run)
        return runs

    def _roll_back_failed_validation(
        self, result: UpResult, request: RollbackRequest, failed_run_id: str
    ) -> UpResult:
        failure = self._materialization_metadata(failed_run_id)
        reason = failure.get("error") or f"{self.name}: validation failed: {', '.join(request.failed_checks)}"
        self.progress(f"{self.name}: validation failed ({', '.join(request.failed_checks)}); "
                      f"rolling back with {request.job_name}")
        try:
            down = self.down(extra_tags=request.tags)
        except Exception as exc:
            detail = exc.one_line() if isinstance(exc, MigrationError) else " ".join(str(exc).split())
            result.outcome = UpOutcome.VALIDATION_FAILED_ROLLBACK_FAILED
            result.message = f"{reason}; the rollback failed too: {detail}"
            return result
        result.outcome = UpOutcome.VALIDATION_FAILED_ROLLED_BACK
        result.message = f"{reason}; rolled back to the pre-migration state (run {down.run_id[:8]})"
        return result

    # -- down ----------------------------------------------------------------------------------
    def down(self, extra_tags: dict[str, str] | None = None) -> DownResult:
        with self._command_lock("down"):
            return self._down(extra_tags)

    def _down(self, extra_tags: dict[str, str] | None) -> DownResult:
        # a step a run died inside is not applied, yet has partial work to undo
        if not self.engine.status().applied_steps() and not self.engine.started_steps():
            self.progress(f"{self.name}: no step is applied; nothing to roll back")
            return DownResult(self.name, None)
        run_id = str(uuid.uuid4())
        tags = {**self.tags, "step": "all", "direction": "down", **(extra_tags or {})}
        self.progress(f"{self.name}: rollback: run {run_id[:8]} ({', '.join(DOWN_ORDER)})")
        job = self.defs.get_job_def(rollback_job_name(self.name))
        try:
            job.execute_in_process(
                instance=self.instance, tags=tags, run_config=self.run_config, run_id=run_id
            )
        finally:
            steps = self._observations(run_id)
            for run in steps:
                self.progress(f"{self.name}: {run.step} down: done, {run.summary()}")
        return DownResult(self.name, run_id, steps)

    # -- restore ---------------------------------------------------------------------------------
    def restore(self, **options: Any) -> StepRun:
        """`engine.restore(**options)` as a run of its own (job `<migration>__restore`), so the
        rows it overwrites are in the run history like every other change; `options` are passed
        to the engine untouched."""
        run_id = str(uuid.uuid4())
        tags = {**self.tags, "step": "restore", "direction": "restore"}
        if options.get("discard_application_writes"):  # the audit shows who threw writes away
            tags["discard_application_writes"] = "true"
        self.progress(f"{self.name}: restore: run {run_id[:8]}")
        engine, key = self.engine, step_key(self.name, "backup")

        @dg.op(name=f"{self.name}__restore", description="put the backed-up rows back, then prove it",
               out=dg.Out(dg.Nothing))
        def restore_op(context):  # no annotation: launch.py has postponed annotations
            started = time.monotonic()
            engine.run_id = context.run.run_id
            report = engine.restore(**options)
            metadata = step_metadata(report, time.monotonic() - started)
            context.log_event(dg.AssetObservation(asset_key=key, metadata=metadata))

        @dg.job(name=f"{self.name}__restore")
        def restore_job():
            restore_op()

        job = restore_job
        job.execute_in_process(instance=self.instance, tags=tags, run_config=self.run_config,
                               run_id=run_id)
        return StepRun("restore", "restore", run_id, {
            k: v.value for r in self._records(run_id, dg.DagsterEventType.ASSET_OBSERVATION)
            for k, v in r.event_log_entry.dagster_event.event_specific_data.asset_observation.metadata.items()})

    # -- reading a run's events back -------------------------------------------------------------
    def _records(self, run_id: str, of_type: dg.DagsterEventType):
        return self.instance.get_records_for_run(run_id, of_type=of_type).records

    def _materialization_metadata(self, run_id: str, step: str | None = None) -> dict[str, Any]:
        """What the run's materializations recorded (only `step`'s asset, when given)."""
        merged: dict[str, Any] = {}
        for record in self._records(run_id, dg.DagsterEventType.ASSET_MATERIALIZATION):
            event = record.event_log_entry.dagster_event.event_specific_data
            if step is None or event.materialization.asset_key.path[-1] == step:
                merged.update({k: v.value for k, v in event.materialization.metadata.items()})
        return merged

    def _observations(self, run_id: str) -> list[StepRun]:
        """The rollback's steps in order: a materialization (status rolled_back) per step whose
        down ran, an observation per step with nothing to undo (jobs.record_rolled_back)."""
        records = sorted(self._records(run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)
                         + self._records(run_id, dg.DagsterEventType.ASSET_OBSERVATION),
                         key=lambda r: r.storage_id)
        runs = []
        for record in records:
            data = record.event_log_entry.dagster_event.event_specific_data
            event = getattr(data, "materialization", None) or data.asset_observation
            metadata = {k: v.value for k, v in event.metadata.items()}
            runs.append(StepRun(event.asset_key.path[-1], "down", run_id, metadata))
        return runs


def run_groups(todo: list[str]) -> list[list[str]]:
    """The steps `up` still has to run, as few runs as the run history stays readable in: each run
    costs ~0.3-0.5 s of Dagster's own (run record, snapshots, a dozen events), which was most of a
    small migration's `up`. The steps before the backfill are one run and the backfill with the
    steps after it another (the backfill runs the key ranges schema_change planned); in that run
    validation's blocking checks stop cutover, as in a UI run of the whole graph."""
    if "backfill" not in todo:
        return [todo] if todo else []
    cut = todo.index("backfill")
    return [group for group in (todo[:cut], todo[cut:]) if group]


def quiet_console(verbose: bool) -> None:
    """Unless verbose: Dagster's own console logging off (the runs' logs stay in the instance)
    and its API-stability notices (beta, preview, superseded), which are for our code's authors,
    not for users, silenced."""
    if verbose:
        return
    logging.getLogger("dagster").setLevel(logging.ERROR)
    for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)


def telemetry_notice_first() -> None:
    """Dagster prints its telemetry notice ("Welcome to Dagster!") the first time it writes an
    instance id into a DAGSTER_HOME whose dagster.yaml leaves telemetry on, which happens during
    the first run: between two of our progress lines. Have it written now, before our first
    line, so the notice (which is the user's to read, we do not hide it) comes first and whole.
    A home we create turns telemetry off (settings.dagster_home), so there it never shows."""
    from dagster_shared.telemetry import get_or_set_instance_id, get_telemetry_enabled_from_dagster_yaml

    if get_telemetry_enabled_from_dagster_yaml():
        get_or_set_instance_id()


@contextmanager
def launcher(
    name: str, *, migrations_dir: str | os.PathLike | None = None, database_url: str | None = None,
    actor: str | None = None, progress: Progress = lambda _line: None, verbose: bool = False,
    allow_changed: bool = False,
) -> Iterator[Launcher]:
    migration = MigrationSet.load(settings.migrations_dir(migrations_dir)).get(name)
    url = database_url_for(migration, database_url)
    settings.dagster_home()
    telemetry_notice_first()
    with dg.DagsterInstance.get() as instance:
        yield Launcher(migration, instance, url, actor=actor, progress=progress, verbose=verbose,
                       allow_changed=allow_changed)


def run_up(name: str, complete: bool = False, **options: Any) -> UpResult:
    with launcher(name, **options) as runs:
        return runs.up(complete=complete)


def run_complete(name: str, quiet_seconds: float | None = None, force: bool = False,
                 **options: Any) -> UpResult:
    with launcher(name, **options) as runs:
        return runs.complete(quiet_seconds=quiet_seconds, force=force)


def run_down(name: str, **options: Any) -> DownResult:
    with launcher(name, **options) as runs:
        return runs.down()


def run_restore(name: str, restore_options: dict[str, Any] | None = None, **options: Any) -> StepRun:
    with launcher(name, **options) as runs:
        return runs.restore(**(restore_options or {}))
