"""Off-peak backfill schedules: a migration that declares `schedule:` gets a Dagster schedule that
backfills its missing key ranges only inside the window, a few per tick.

    schedule: {cron: "0 1 * * *", timezone: Europe/Berlin, window_minutes: 240,
               max_partitions_per_tick: 4}
    auto_complete: true        # validation and cutover then run by themselves

`<migration>__offpeak_backfill` ticks every five minutes (TICK_CRON). A tick inside a window
(opened by the latest `cron` time, open `window_minutes`) launches one run over the next
contiguous key ranges not done yet, at most `max_partitions_per_tick`, tagged with the window's
end: the backfill asset starts no key range after it (assets.py), so no batch starts outside the
window. A tick launches nothing while a run of the same migration is queued or running, nor
before a person has run backup and schema_change (they change the schema: not for a timer).

With `auto_complete: true`, `<migration>__offpeak_complete` runs validation and cutover, inside
a window too, once every key range is done; without it they wait for a person.

Runs carry the tag `migration_dags/database` (host:port/dbname, never a password). With the
queued run coordinator of deploy/dagster.yaml, its tag concurrency limit (one per unique value)
keeps two runs from ever working on one database at once; the migration lock would refuse the
second anyway, but it would fail instead of waiting its turn.

Both schedules are STOPPED when first loaded: turning one on is a decision (UI or
`dagster schedule start`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import dagster as dg
# Not re-exported by `dagster`: the cron walk Dagster itself uses, and the tags a single-run
# backfill of a partition range is launched with.
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._utils.schedules import cron_string_iterator

from .. import state
from ..engine import MigrationEngine
from ..spec import Migration
from ..spec.migration import BackfillSchedule
from . import partitions
from .assets import step_key
from .resources import RESOURCE_KEY, MigrationDatabase
from .tagging import DATABASE_TAG, RANGES_STEP, database_label

TICK_CRON = "*/5 * * * *"
WINDOW_END_TAG = "migration_dags/window_end"
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
             dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def current_window(schedule: BackfillSchedule, now: datetime) -> tuple[datetime, datetime] | None:
    """(opened, closes) of the window `now` falls in, or None outside every window."""
    opened = next(cron_string_iterator(now.timestamp(), schedule.cron, schedule.timezone,
                                       ascending=False))
    closes = opened + timedelta(minutes=schedule.window_minutes)
    return (opened, closes) if opened <= now < closes else None


def window_closed(tags: dict[str, str], now: datetime | None = None) -> datetime | None:
    """The end of the run's window when it has passed (None: no window, or still open)."""
    end = tags.get(WINDOW_END_TAG)
    if not end:
        return None
    closes = datetime.fromisoformat(end)
    return closes if (now or datetime.now(timezone.utc)) >= closes else None


def build_schedules(
    migrations: list[Migration], database: MigrationDatabase
) -> tuple[list[dg.ScheduleDefinition], list[dg.UnresolvedAssetJobDefinition]]:
    schedules, jobs = [], []
    for m in migrations:
        if m.schedule is None:
            continue
        backfill_job = dg.define_asset_job(
            f"{m.name}__offpeak_backfill_job", selection=[step_key(m.name, RANGES_STEP)],
            tags=_job_tags(m, "backfill"),
            description=f"{m.name}: backfill key ranges (launched by the off-peak schedule)")
        jobs.append(backfill_job)
        schedules.append(_backfill_schedule(m, backfill_job))
        if m.auto_complete:
            complete_job = dg.define_asset_job(
                f"{m.name}__offpeak_complete_job",
                selection=[step_key(m.name, "validation"), step_key(m.name, "cutover")],
                tags=_job_tags(m, "validation,cutover"),
                description=f"{m.name}: validation, then cutover (auto_complete)")
            jobs.append(complete_job)
            schedules.append(_complete_schedule(m, complete_job))
    return schedules, jobs


def _backfill_schedule(m: Migration, job) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{m.name}__offpeak_backfill", cron_schedule=TICK_CRON, job=job,
        execution_timezone=m.schedule.timezone, required_resource_keys={RESOURCE_KEY},
        description=f"Backfill {m.name} inside its window: {_window_words(m.schedule)}",
    )
    def offpeak_backfill(context: dg.ScheduleEvaluationContext):
        yield from _backfill_requests(context, m)

    return offpeak_backfill


def _complete_schedule(m: Migration, job) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{m.name}__offpeak_complete", cron_schedule=TICK_CRON, job=job,
        execution_timezone=m.schedule.timezone, required_resource_keys={RESOURCE_KEY},
        description=f"Validate and cut {m.name} over once backfilled, inside its window",
    )
    def offpeak_complete(context: dg.ScheduleEvaluationContext):
        yield from _complete_requests(context, m)

    return offpeak_complete


def _backfill_requests(context: dg.ScheduleEvaluationContext, m: Migration) -> Iterator:
    engine, why_not = _ready(context, m)
    if why_not:
        yield dg.SkipReason(why_not)
        return
    status = engine.status()
    if not status.is_applied("schema_change"):
        yield dg.SkipReason(f"{m.name}: schema_change is not applied; start the migration first "
                            f"(backup and schema_change), the schedule backfills after it")
        return
    if status.is_applied("backfill"):
        yield dg.SkipReason(f"{m.name}: every key range is backfilled")
        return
    keys = partitions.sync(context.instance, m.name, partitions.planned_keys(engine))
    with engine.connection("schedule") as conn:
        done = {k for k, finished, _rows in state.ranges_status(conn, m.name) if finished}
    batch = _next_contiguous(keys, done, m.schedule.max_partitions_per_tick)
    if not batch:
        yield dg.SkipReason(f"{m.name}: no key range left to start")
        return
    _opened, closes = current_window(m.schedule, _now(context))
    yield dg.RunRequest(
        run_key=f"{m.name}:{batch[0]}:{closes.isoformat()}",
        tags={**_tags(m, engine, closes, "backfill"),
              ASSET_PARTITION_RANGE_START_TAG: batch[0], ASSET_PARTITION_RANGE_END_TAG: batch[-1]},
    )


def _complete_requests(context: dg.ScheduleEvaluationContext, m: Migration) -> Iterator:
    engine, why_not = _ready(context, m)
    if why_not:
        yield dg.SkipReason(why_not)
        return
    status = engine.status()
    if not status.is_applied("backfill"):
        yield dg.SkipReason(f"{m.name}: the backfill is not done ({status.backfill.partitions_done}"
                            f" of {status.backfill.partitions_total} key ranges)")
        return
    if status.is_applied("cutover"):
        yield dg.SkipReason(f"{m.name}: already cut over")
        return
    _opened, closes = current_window(m.schedule, _now(context))
    yield dg.RunRequest(run_key=f"{m.name}:complete:{closes.isoformat()}",
                        tags=_tags(m, engine, closes, "validation,cutover"))


def _ready(context: dg.ScheduleEvaluationContext, m: Migration) -> tuple[MigrationEngine | None, str]:
    """The engine, or why this tick launches nothing: outside the window, or a run in flight."""
    now = _now(context)
    if current_window(m.schedule, now) is None:
        return None, f"{m.name}: outside the off-peak window ({_window_words(m.schedule)})"
    in_flight = context.instance.get_run_records(
        dg.RunsFilter(tags={"migration": m.name}, statuses=IN_FLIGHT), limit=1)
    if in_flight:
        return None, (f"{m.name}: run {in_flight[0].dagster_run.run_id[:8]} is still queued or "
                      "running")
    database: MigrationDatabase = getattr(context.resources, RESOURCE_KEY)
    return database.engine(m, f"schedule-{m.name}", context.log.info), ""


def _next_contiguous(keys: list[str], done: set[str], most: int) -> list[str]:
    """The first key not done, and the keys right after it that are not done either."""
    batch: list[str] = []
    for key in keys:
        if partitions.engine_partition(key) in done:
            if batch:
                break
            continue
        batch.append(key)
        if len(batch) == most:
            break
    return batch


def _tags(m: Migration, engine: MigrationEngine, closes: datetime, step: str) -> dict[str, str]:
    return {"migration": m.name, "step": step, "direction": "up", "source": "schedule",
            "actor": "schedule", WINDOW_END_TAG: closes.isoformat(),
            DATABASE_TAG: database_label(engine.database_url)}


def _job_tags(m: Migration, step: str) -> dict[str, str]:
    """Tags of the job itself, so a launch from the UI's Jobs page carries them too."""
    return {"migration": m.name, "step": step, "direction": "up"}


def _now(context: dg.ScheduleEvaluationContext) -> datetime:
    when = context.scheduled_execution_time or datetime.now(timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _window_words(s: BackfillSchedule) -> str:
    return f"opens at cron '{s.cron}' {s.timezone}, open {s.window_minutes} min"
