"""Off-peak schedules: ticks outside the window launch nothing, ticks inside launch the next key
ranges, a run whose window has closed starts none, and auto_complete validates and cuts over."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as RANGE_END
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG as RANGE_START

from migration_dags.engine import MigrationEngine
from migration_dags.errors import RefusedError
from migration_dags.migration_set import MigrationSet
from migration_dags.orchestration.definitions import definitions_for
from migration_dags.orchestration.resources import RESOURCE_KEY, MigrationDatabase
from migration_dags.orchestration.schedules import WINDOW_END_TAG, current_window
from migration_dags.spec.migration import BackfillSchedule
from orchestration.samples import ADD_FLAG, write_migration

UTC = timezone.utc


def test_window_opens_at_the_cron_time_and_closes_after_its_minutes():
    nightly = BackfillSchedule(cron="0 23 * * *", timezone="UTC", window_minutes=120)
    assert current_window(nightly, datetime(2026, 12, 2, 22, 59, tzinfo=UTC)) is None
    opened, closes = current_window(nightly, datetime(2026, 12, 3, 0, 30, tzinfo=UTC))
    assert (opened, closes) == (datetime(2026, 12, 2, 23, 0, tzinfo=UTC),
                                datetime(2026, 12, 3, 1, 0, tzinfo=UTC))
    assert current_window(nightly, datetime(2026, 12, 3, 1, 0, tzinfo=UTC)) is None


def test_window_follows_its_time_zone():
    berlin = BackfillSchedule(cron="0 1 * * *", timezone="Europe/Berlin", window_minutes=60)
    # 01:00 in Berlin is 00:00 UTC in winter
    assert current_window(berlin, datetime(2026, 12, 2, 0, 30, tzinfo=UTC)) is not None
    assert current_window(berlin, datetime(2026, 12, 2, 1, 30, tzinfo=UTC)) is None


def scheduled(migrations_dir, now: datetime, auto_complete: bool = True) -> str:
    """add_flag with a one-hour window that opened ten minutes before `now`."""
    opened = now - timedelta(minutes=10)
    text = ADD_FLAG + (
        f'schedule: {{cron: "{opened.minute} {opened.hour} * * *", timezone: UTC, '
        f"window_minutes: 60, max_partitions_per_tick: 2}}\n"
        f"auto_complete: {'true' if auto_complete else 'false'}\n")
    write_migration(migrations_dir, text)
    return "add_flag"


def tick(defs: dg.Definitions, name: str, instance, url: str, when: datetime):
    schedule = defs.get_schedule_def(name)
    # as a context manager: what the context entered (its logger, the instance's defs-state
    # storage) is closed again, or a later test sees a disposed instance
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when,
        resources={RESOURCE_KEY: MigrationDatabase(database_url=url)}) as context:
        return schedule.evaluate_tick(context)


def test_schedules_backfill_only_inside_the_window_then_complete(items_url, migrations_dir, instance):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    name = scheduled(migrations_dir, now)
    migration = MigrationSet.load(migrations_dir).get(name)
    defs = definitions_for([migration], MigrationDatabase(database_url=items_url))
    engine = MigrationEngine(migration, items_url)

    early = tick(defs, f"{name}__offpeak_backfill", instance, items_url, now - timedelta(minutes=30))
    assert not early.run_requests and "outside the off-peak window" in early.skip_message
    too_soon = tick(defs, f"{name}__offpeak_backfill", instance, items_url, now)
    assert not too_soon.run_requests and "schema_change is not applied" in too_soon.skip_message

    engine.up("backup")
    engine.up("schema_change")
    job = defs.resolve_job_def(f"{name}__offpeak_backfill_job")
    for _ in range(4):  # 4 key ranges, at most 2 per tick
        result = tick(defs, f"{name}__offpeak_backfill", instance, items_url, now)
        if not result.run_requests:
            break
        [request] = result.run_requests
        assert request.tags[WINDOW_END_TAG] == (now + timedelta(minutes=50)).isoformat()
        assert request.tags["source"] == "schedule" and request.tags["migration"] == name
        job.execute_in_process(instance=instance, tags=request.tags)
    status = engine.status()
    assert status.is_applied("backfill")
    assert status.backfill.partitions_done == status.backfill.partitions_total == 4
    late = tick(defs, f"{name}__offpeak_backfill", instance, items_url, now + timedelta(hours=2))
    assert not late.run_requests and "outside" in late.skip_message

    [complete] = tick(defs, f"{name}__offpeak_complete", instance, items_url, now).run_requests
    defs.resolve_job_def(f"{name}__offpeak_complete_job").execute_in_process(instance=instance, tags=complete.tags)
    assert engine.status().is_applied("cutover")


def test_a_run_whose_window_closed_starts_no_key_range(items_url, migrations_dir, instance):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    name = scheduled(migrations_dir, now, auto_complete=False)
    migration = MigrationSet.load(migrations_dir).get(name)
    defs = definitions_for([migration], MigrationDatabase(database_url=items_url))
    engine = MigrationEngine(migration, items_url)
    engine.up("backup")
    engine.up("schema_change")
    [request] = tick(defs, f"{name}__offpeak_backfill", instance, items_url, now).run_requests
    closed = {**request.tags, WINDOW_END_TAG: (now - timedelta(minutes=1)).isoformat()}

    with pytest.raises(Exception) as caught:
        defs.resolve_job_def(f"{name}__offpeak_backfill_job").execute_in_process(instance=instance, tags=closed)
    assert isinstance(caught.value, RefusedError) or "window closed" in str(caught.value)
    assert engine.status().backfill.partitions_done == 0
    assert f"{name}__offpeak_complete" not in {s.name for s in defs.schedules}


def test_each_shipped_migration_with_a_schedule_gets_one():
    from migration_dags.orchestration.definitions import build_definitions
    from pg_server import REPO

    folder = REPO / "assets"
    defs = build_definitions(folder)
    dg.Definitions.validate_loadable(defs)  # what `dagster schedule list` loads
    declared = {m.name for m in MigrationSet.load(folder).ordered() if m.schedule}
    assert declared  # the shipped add_email_verification declares one
    assert {f"{n}__offpeak_backfill" for n in declared} <= {s.name for s in defs.schedules}


def test_walking_a_day_in_five_minute_ticks_launches_batches_only_inside_the_window(
    items_url, migrations_dir, instance
):
    """Time moves through a whole day, tick by tick; each launched run is executed at once. Runs
    start only at ticks inside the window (at most 2 key ranges each), and a run whose window
    closed while it waited starts no key range."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    name = scheduled(migrations_dir, now, auto_complete=False)  # window: now-10 min .. now+50 min
    migration = MigrationSet.load(migrations_dir).get(name)
    defs = definitions_for([migration], MigrationDatabase(database_url=items_url))
    engine = MigrationEngine(migration, items_url)
    engine.up("backup")
    engine.up("schema_change")
    opened, closes = now - timedelta(minutes=10), now + timedelta(minutes=50)
    job = defs.resolve_job_def(f"{name}__offpeak_backfill_job")

    launched_at = []
    for step in range(-12 * 12, 12 * 12):  # 24 hours of ticks around the window
        when = now + timedelta(minutes=5 * step)
        result = tick(defs, f"{name}__offpeak_backfill", instance, items_url, when)
        for request in result.run_requests:
            launched_at.append(when)
            keys = instance.get_dynamic_partitions(f"{name}__backfill")
            first, last = (keys.index(request.tags[t]) for t in (RANGE_START, RANGE_END))
            assert last - first < 2  # max_partitions_per_tick
            job.execute_in_process(instance=instance, tags=request.tags)

    assert launched_at and all(opened <= t < closes for t in launched_at)
    assert len(launched_at) == 2  # 4 key ranges, 2 per tick, then nothing is left
    assert engine.status().is_applied("backfill")
