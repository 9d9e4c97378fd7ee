"""Tier 2: materialize a small migration's graph on a fresh database, in-process: step by step,
all at once (the UI's "Materialize all"), and key ranges alone (schedules, partial backfills)."""

from __future__ import annotations

import re

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from migration_dags.engine import MigrationEngine
from migration_dags.errors import RefusedError
from migration_dags.migration_set import MigrationSet
from migration_dags.orchestration.assets import build_migration_assets, step_key
from migration_dags.orchestration.partitions import partitions_def_name
from migration_dags.orchestration.resources import MigrationDatabase
from orchestration.samples import ADD_FLAG, CLOCK_STAMP, ITEM_ROWS, write_migration

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _graph(migrations_dir, text, url):
    write_migration(migrations_dir, text)
    migration = next(iter(MigrationSet.load(migrations_dir).migrations.values()))
    assets = build_migration_assets(migration)
    return migration, assets, {"migration_database": MigrationDatabase(database_url=url)}


def _materialize(assets, resources, instance, steps, name, tags=None, **kw):
    return dg.materialize(
        assets, selection=[step_key(name, s) for s in steps], resources=resources,
        instance=instance, run_config=QUIET, tags=tags or {}, **kw,
    )


def _metadata(result, name, step):
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == step_key(name, step)][:1]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _range(instance, name, first=0, last=-1):
    keys = instance.get_dynamic_partitions(partitions_def_name(name))
    return {ASSET_PARTITION_RANGE_START_TAG: keys[first], ASSET_PARTITION_RANGE_END_TAG: keys[last]}


def _applied(result, name):
    """The `applied` check of each step the run evaluated it on."""
    return {e.asset_key.path[1]: e.passed for e in result.get_asset_check_evaluations()
            if e.check_name == "applied" and e.asset_key.path[0] == name}


def test_the_graph_materializes_step_by_step_with_metadata(migrations_dir, items_url, instance):
    migration, assets, resources = _graph(migrations_dir, ADD_FLAG, items_url)
    tags = {"migration": "add_flag", "actor": "tester"}

    first = _materialize(assets, resources, instance, ["backup", "schema_change"], "add_flag", tags)
    backup = _metadata(first, "add_flag", "backup")
    assert backup["rows_affected"] == ITEM_ROWS
    assert backup["backup_tables"]["public.items"]["row_count"] == ITEM_ROWS
    schema = _metadata(first, "add_flag", "schema_change")
    assert "ALTER TABLE" in schema["sql"] and "ADD COLUMN" in schema["sql"]
    # the schema_change step registered the engine's key ranges as the backfill's partitions
    keys = instance.get_dynamic_partitions(partitions_def_name("add_flag"))
    assert [k.split(" ")[0] for k in keys] == MigrationEngine(migration, items_url).partitions()
    assert len(keys) >= 4
    # each key names its range of the key, (lower, upper]
    round_ = keys[0].rsplit(" @", 1)[1]
    assert keys[0] == f"00-00000 id <=50 @{round_}" and keys[1] == f"00-00001 id >50 <=100 @{round_}"
    assert keys[-1].endswith(f"id >{50 * (len(keys) - 1)} @{round_}")

    second = _materialize(assets, resources, instance, ["backfill"], "add_flag", tags)
    backfill = _metadata(second, "add_flag", "backfill")
    assert backfill["rows_affected"] == ITEM_ROWS
    assert (backfill["partitions_done"], backfill["partitions_total"]) == (len(keys), len(keys))
    assert backfill["rows_per_s"] > 0 and "UPDATE" in backfill["sql"]
    # one unpartitioned run ran every key range, and recorded each as a key-range partition
    ranges = [e.partition for e in second.get_asset_materialization_events()
              if e.asset_key == step_key("add_flag", "backfill_ranges")]
    assert ranges == keys
    assert set(instance.get_materialized_partitions(step_key("add_flag", "backfill_ranges"))) == set(keys)

    third = _materialize(assets, resources, instance, ["validation", "cutover"], "add_flag", tags)
    assert third.success
    checks = {e.check_name: e.passed for e in third.get_asset_check_evaluations()
              if e.asset_key == step_key("add_flag", "validation")}
    assert checks == {"backfill_complete": True, "row_counts": True, "parity": True, "applied": True}
    assert _applied(third, "add_flag") == {"validation": True, "cutover": True}
    assert "SET NOT NULL" in _metadata(third, "add_flag", "cutover")["sql"]

    status = MigrationEngine(migration, items_url).status().as_dict()
    assert all(s["applied"] for s in status["steps"].values())
    runs = instance.get_run_records(dg.RunsFilter(tags={"migration": "add_flag", "actor": "tester"}))
    assert len(runs) == 3 and all(r.dagster_run.is_success for r in runs)


def test_a_failing_blocking_check_stops_cutover_in_the_same_run(migrations_dir, items_url, instance):
    migration, assets, resources = _graph(migrations_dir, CLOCK_STAMP, items_url)
    _materialize(assets, resources, instance, ["backup", "schema_change"], "clock_stamp")
    _materialize(assets, resources, instance, ["backfill"], "clock_stamp")

    result = _materialize(assets, resources, instance, ["validation", "cutover"], "clock_stamp",
                          raise_on_error=False)

    assert not result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert step_key("clock_stamp", "cutover") not in materialized
    [parity] = [e for e in result.get_asset_check_evaluations() if e.check_name == "parity"]
    assert not parity.passed and parity.severity == dg.AssetCheckSeverity.ERROR
    failures = parity.metadata["failed_checks"].value
    # the failed check, its observed value and sample keys of offending rows
    assert re.search(rf"\| items.stamped.equals_up \|.*\| {ITEM_ROWS} \| \d+, \d+", failures)
    status = MigrationEngine(migration, items_url).status().as_dict()["steps"]
    assert not status["validation"]["applied"] and not status["cutover"]["applied"]


def test_validation_refuses_until_every_backfill_partition_is_done(migrations_dir, items_url, instance):
    migration, assets, resources = _graph(migrations_dir, ADD_FLAG, items_url)
    _materialize(assets, resources, instance, ["backup", "schema_change"], "add_flag")
    keys = instance.get_dynamic_partitions(partitions_def_name("add_flag"))

    # One key range plus the steps after it: Dagster would run validation after that range.
    with pytest.raises(RefusedError, match=rf"backfill has 1 of {len(keys)} partitions done"):
        _materialize(assets, resources, instance, ["backfill_ranges", "validation", "cutover"],
                     "add_flag", partition_key=keys[0])

    status = MigrationEngine(migration, items_url).status().as_dict()
    assert status["backfill"]["partitions_done"] == 1
    assert not status["steps"]["validation"]["applied"] and not status["steps"]["cutover"]["applied"]


def test_materialize_all_runs_a_fresh_migration_to_cutover_in_one_run(migrations_dir, items_url, instance):
    """The UI's first click: every asset of the group, no partition chosen, one run."""
    migration, assets, resources = _graph(migrations_dir, ADD_FLAG, items_url)
    group = [a for a in assets if a.group_names_by_key.get(step_key("add_flag", "backup"))]
    assert all(a.partitions_def is None for a in group)  # nothing asks for a partition

    result = dg.materialize(assets, selection=dg.AssetSelection.groups("add_flag"),
                            resources=resources, instance=instance, run_config=QUIET)

    assert result.success
    assert MigrationEngine(migration, items_url).status().applied_steps() == {
        "backup", "schema_change", "backfill", "validation", "cutover"}
    assert _applied(result, "add_flag") == dict.fromkeys(
        ["backup", "schema_change", "backfill", "validation", "cutover"], True)
    keys = instance.get_dynamic_partitions(partitions_def_name("add_flag"))
    assert set(instance.get_materialized_partitions(step_key("add_flag", "backfill_ranges"))) == set(keys)
    tags = instance.get_run_by_id(result.run_id).tags  # added at run start: no launcher set them
    assert tags["migration"] == "add_flag" and tags["direction"] == "up" and tags["source"] == "ui"
    assert tags["step"] == "backup,schema_change,backfill,validation,cutover"
    assert tags["target_port"] == "5432" and len(tags["file_checksum"]) == 64
    assert "@" not in tags["migration_dags/database"]


def test_key_ranges_alone_then_backfill_records_the_step_done(migrations_dir, items_url, instance):
    """A partial backfill (two key ranges), then the rest: the run finishing the last range
    records the migration's `backfill` applied; `backfill` itself then has nothing left to do."""
    migration, assets, resources = _graph(migrations_dir, ADD_FLAG, items_url)
    _materialize(assets, resources, instance, ["backup", "schema_change"], "add_flag")
    keys = instance.get_dynamic_partitions(partitions_def_name("add_flag"))

    part = _materialize(assets, resources, instance, ["backfill_ranges"], "add_flag",
                        _range(instance, "add_flag", 0, 1))
    assert {e.partition for e in part.get_asset_materialization_events()} == set(keys[:2])
    assert MigrationEngine(migration, items_url).status().backfill.partitions_done == 2

    rest = _materialize(assets, resources, instance, ["backfill_ranges"], "add_flag",
                        _range(instance, "add_flag", 2, -1))
    backfill = [e for e in rest.get_asset_materialization_events()
                if e.asset_key == step_key("add_flag", "backfill")]
    assert len(backfill) == 1 and _applied(rest, "add_flag") == {"backfill": True}
    after = _materialize(assets, resources, instance, ["backfill"], "add_flag")
    assert _metadata(after, "add_flag", "backfill")["skipped"] == "already applied"
