"""The automatic rollback: a sensor that launches <migration>__rollback after a migration's run
failed, whoever launched that run (the UI, an asset backfill, `dagster asset materialize`, the CLI).

Why a plain @sensor over the instance's run-failure records and not `run_failure_sensor`: the
latter skips in-process runs (the CLI's) and, with monitored_jobs, asset backfills, which run as
__ASSET_JOB (FACTS.md). The records see every run stored in the instance. Every failed blocking
check fails its run, so one stream of failures covers both triggers; the run's own check
evaluations then tell a failed validation from a failed step.

Per failed run the decision is rollback_policy.rollbacks_for_failed_run (the CLI's rule for a
failed validation, plus the rule for a failed step), given the run's check evaluations, its failed
steps and each migration's applied steps, read from its database. A request is launched only if

    the migration is in this code location,
    no rollback of it was launched since the failed run started, and no later run superseded the
    failure (a retry, or an `up` after a manual fix).

Exactly once: the cursor is the storage id of the last failure record read, and run_key is
"<migration>:<failed run id>", which Dagster never launches twice for one sensor. On first start
(no cursor) the cursor is set to the latest failure and nothing is launched: history is not replayed.

The CLI rolls a failed validation back itself, at once (exit 3). The sensor waits `cli_grace_s`
before it looks at a CLI run's failure, so it steps in only when the CLI was stopped before it
could roll back. A run that is not finished yet, or whose database cannot be read, stays pending
in the cursor and is looked at again on the next tick.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG  # not re-exported by `dagster`

from .audit import ROLLBACK_SUFFIX, migration_step_of_key, migrations_of_run
from ..errors import MigrationError
from ..spec import Migration
from .resources import MigrationDatabase
from .tagging import DATABASE_TAG, database_label
from .rollback_policy import (
    RollbackRequest,
    StepFailure,
    check_evaluations_for_run,
    rollbacks_for_failed_run,
)
from ..run_tags import code_version

SENSOR_NAME = "migration_auto_rollback"
INTERVAL_ENV = "MIGRATION_DAGS_ROLLBACK_SENSOR_INTERVAL_S"
DEFAULT_INTERVAL_S = 30
CLI_GRACE_S = 60
PAGE = 100  # failure records read per tick; the rest on the next ones
PENDING_AT_MOST_S = 24 * 3600  # a run still unfinished, or a database unreadable, after a day is dropped


def build_rollback_sensors(
    migrations: Iterable[Migration],
    rollback_jobs: Iterable[dg.JobDefinition],
    *,
    minimum_interval_seconds: int | None = None,
    cli_grace_s: float = CLI_GRACE_S,
) -> list[dg.SensorDefinition]:
    """One sensor watching every migration; none when there is no migration. It starts RUNNING,
    so a daemon runs it without a click. Its interval: the argument, else
    $MIGRATION_DAGS_ROLLBACK_SENSOR_INTERVAL_S, else 30 s."""
    by_name = {m.name: m for m in migrations}
    if not by_name:
        return []
    interval = minimum_interval_seconds or _interval_from_env()

    def migration_auto_rollback(
        context: dg.SensorEvaluationContext, migration_database: MigrationDatabase
    ) -> dg.SensorResult:
        return _Tick(context, by_name, migration_database, cli_grace_s).evaluate()

    with warnings.catch_warnings():
        # Dagster 1.13's @sensor passes `owners=None` to a beta parameter and warns about it.
        warnings.simplefilter("ignore", dg.BetaWarning)
        sensor = dg.sensor(
            name=SENSOR_NAME,
            jobs=list(rollback_jobs),
            minimum_interval_seconds=interval,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description="Roll a migration back (its <migration>__rollback job) when its validation "
            "or one of its steps failed, in a run launched from anywhere.",
        )(migration_auto_rollback)
    return [sensor]


def _interval_from_env() -> int:
    text = os.environ.get(INTERVAL_ENV) or str(DEFAULT_INTERVAL_S)
    if not text.strip().isdigit() or int(text) < 1:
        raise MigrationError(f"${INTERVAL_ENV}: {text!r} is not a whole number of seconds (>= 1)")
    return int(text)


@dataclass
class Cursor:
    after: int  # storage id of the last run-failure record read
    pending: dict[str, float] = field(default_factory=dict)  # run id -> when first seen

    def dump(self) -> str:
        return json.dumps({"after": self.after, "pending": self.pending}, sort_keys=True)

    @classmethod
    def load(cls, text: str) -> "Cursor":
        data = json.loads(text)
        if isinstance(data, int):  # a storage id set by hand (the UI lets one edit a cursor)
            return cls(data)
        return cls(int(data["after"]), {str(k): float(v) for k, v in data.get("pending", {}).items()})


def _failure_records(instance: dg.DagsterInstance, after: int | None, limit: int, ascending: bool):
    records_filter = dg.RunStatusChangeRecordsFilter(
        event_type=dg.DagsterEventType.RUN_FAILURE, after_storage_id=after
    )
    return instance.fetch_run_status_changes(records_filter, limit=limit, ascending=ascending).records


class _Wait(Exception):
    """Look at this run again on the next tick."""


class _Tick:
    def __init__(
        self, context: dg.SensorEvaluationContext, migrations: dict[str, Migration],
        database: MigrationDatabase, cli_grace_s: float,
    ):
        self.context, self.instance = context, context.instance
        self.migrations, self.database, self.cli_grace_s = migrations, database, cli_grace_s
        self.now = time.time()

    def evaluate(self) -> dg.SensorResult:
        if self.context.cursor is None:
            latest = _failure_records(self.instance, None, limit=1, ascending=False)
            start = latest[0].storage_id if latest else 0
            return dg.SensorResult(
                cursor=Cursor(start).dump(),
                skip_reason=f"first start: watching run failures after event {start}; "
                "earlier failures are history and are not rolled back",
            )
        cursor = Cursor.load(self.context.cursor)
        records = _failure_records(self.instance, cursor.after, limit=PAGE, ascending=True)
        candidates = dict(cursor.pending)
        for record in records:
            candidates.setdefault(record.event_log_entry.run_id, self.now)
        requests: dict[str, dg.RunRequest] = {}
        pending: dict[str, float] = {}
        notes: list[str] = []
        for run_id, first_seen in candidates.items():
            try:
                for request in self._requests_for(run_id, notes):
                    requests.setdefault(request.run_key, request)
            except _Wait as wait:
                if self.now - first_seen < PENDING_AT_MOST_S:
                    pending[run_id] = first_seen
                    notes.append(f"run {run_id[:8]}: {wait}")
                else:
                    notes.append(f"run {run_id[:8]}: {wait}; given up after a day, not rolled back")
        after = records[-1].storage_id if records else cursor.after
        new_cursor = Cursor(after, pending).dump()
        for note in notes:
            self.context.log.info(note)
        if requests:
            return dg.SensorResult(run_requests=list(requests.values()), cursor=new_cursor)
        return dg.SensorResult(
            cursor=new_cursor, skip_reason="; ".join(notes) or "no new failed migration run"
        )

    # -- one failed run ----------------------------------------------------------------------------
    def _requests_for(self, run_id: str, notes: list[str]) -> list[dg.RunRequest]:
        record = next(iter(self.instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))), None)
        if record is None:
            return []
        run = record.dagster_run
        if not run.is_finished:
            raise _Wait("not finished yet")
        if run.status != dg.DagsterRunStatus.FAILURE or run.tags.get(WILL_RETRY_TAG) == "true":
            return []  # Dagster retries it: the retry's outcome decides
        if run.job_name.endswith(ROLLBACK_SUFFIX) or run.tags.get("direction") == "down":
            return []  # a failed rollback is for a person (exit 4): never roll back a rollback
        from_cli = run.tags.get("source") == "cli"
        ended = record.end_time or self.now
        if from_cli and self.now - ended < self.cli_grace_s:
            raise _Wait("a CLI run: the CLI rolls back a failed validation itself; waiting")
        evaluations = check_evaluations_for_run(self.instance, run_id)
        failures = self._step_failures(run_id)
        involved = {ev.asset_key.path[0] for ev in evaluations} | {f.migration for f in failures}
        involved &= set(self.migrations)
        policy = rollbacks_for_failed_run(
            run_id, evaluations, failures, self._applied(involved), from_cli
        )
        if involved and not policy:
            notes.append(f"run {run_id[:8]}: {', '.join(sorted(involved))}: no rollback needed "
                         "(nothing applied, or a failure that asks to run again)")
        launched = []
        for request in policy:
            why_not = self._already_handled(request, record)
            if why_not:
                notes.append(f"run {run_id[:8]}: {request.migration}: {why_not}")
                continue
            launched.append(self._run_request(request))
        return launched

    def _step_failures(self, run_id: str) -> list[StepFailure]:
        failures = []
        records = self.instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        for record in records.records:
            event = record.event_log_entry.dagster_event
            # an asset's op is named after its key: <migration>__<step>
            ms = migration_step_of_key(dg.AssetKey((event.step_key or "").rsplit("__", 1)))
            if ms is None:
                continue
            errors, error = [], event.event_specific_data.error
            while error is not None:
                errors.append(error.cls_name)
                error = error.cause
            failures.append(StepFailure(ms[0], ms[1], tuple(errors)))
        return failures

    def _applied(self, names: set[str]) -> dict[str, set[str]]:
        applied = {}
        for name in sorted(names):
            migration = self.migrations[name]
            try:
                engine = self.database.engine(migration, f"sensor-{SENSOR_NAME}", self.context.log.info)
                status = engine.status()
            except Exception as exc:  # unreachable database, unset url_env: try again next tick
                raise _Wait(f"cannot read {name}'s state: {' '.join(str(exc).split())[:200]}") from exc
            applied[name] = status.applied_steps()
        return applied

    def _already_handled(self, request: RollbackRequest, failed: dg.RunRecord) -> str | None:
        if request.migration not in self.migrations:
            return "not in this code location"
        rollbacks = self.instance.get_run_records(
            dg.RunsFilter(job_name=request.job_name, created_after=failed.create_timestamp), limit=1
        )
        if rollbacks:
            return f"rollback run {rollbacks[0].dagster_run.run_id[:8]} was launched after it"
        ended = datetime.fromtimestamp(failed.end_time or self.now, tz=timezone.utc)
        for record in self.instance.get_run_records(dg.RunsFilter(created_after=ended), limit=200):
            if request.migration in migrations_of_run(record.dagster_run):
                return f"superseded by a later run {record.dagster_run.run_id[:8]}"
        return None

    def _run_request(self, request: RollbackRequest) -> dg.RunRequest:
        migration = self.migrations[request.migration]
        tags = {**request.tags, "actor": f"sensor:{SENSOR_NAME}", "source": "sensor",
                # at launch, so the queue's per-database limit (deploy/dagster.yaml) applies
                DATABASE_TAG: database_label(self.database.url_for(migration))}
        version = code_version(self.migrations[request.migration].file)
        if version:
            tags["code_version"] = version
        return dg.RunRequest(
            run_key=f"{request.migration}:{request.failed_run_id}", job_name=request.job_name, tags=tags
        )
