"""Tier 2: materialize a small migration's graph on a fresh database, in-process."""

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


def _range(instance, name):
    keys = instance.get_dynamic_partitions(partitions_def_name(name))
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


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

    second = _materialize(assets, resources, instance, ["backfill"], "add_flag",
                          {**tags, **_range(instance, "add_flag")})
    backfill = _metadata(second, "add_flag", "backfill")
    assert backfill["rows_affected"] == ITEM_ROWS
    assert (backfill["partitions_done"], backfill["partitions_total"]) == (len(keys), len(keys))
    assert backfill["rows_per_s"] > 0 and "UPDATE" in backfill["sql"]
    # one run covered the whole range: one materialization per partition
    assert len(second.get_asset_materialization_events()) == len(keys)

    third = _materialize(assets, resources, instance, ["validation", "cutover"], "add_flag", tags)
    assert third.success
    checks = {e.check_name: e.passed for e in third.get_asset_check_evaluations()}
    assert checks == {"backfill_complete": True, "row_counts": True, "parity": True}
    assert "SET NOT NULL" in _metadata(third, "add_flag", "cutover")["sql"]

    status = MigrationEngine(migration, items_url).status().as_dict()
    assert all(s["applied"] for s in status["steps"].values())
    runs = instance.get_run_records(dg.RunsFilter(tags={"migration": "add_flag", "actor": "tester"}))
    assert len(runs) == 3 and all(r.dagster_run.is_success for r in runs)


def test_a_failing_blocking_check_stops_cutover_in_the_same_run(migrations_dir, items_url, instance):
    migration, assets, resources = _graph(migrations_dir, CLOCK_STAMP, items_url)
    _materialize(assets, resources, instance, ["backup", "schema_change"], "clock_stamp")
    _materialize(assets, resources, instance, ["backfill"], "clock_stamp", _range(instance, "clock_stamp"))

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

    # One partition plus the steps after it: Dagster would run validation after that partition.
    with pytest.raises(RefusedError, match=rf"backfill has 1 of {len(keys)} partitions done"):
        _materialize(assets, resources, instance, ["backfill", "validation", "cutover"], "add_flag",
                     partition_key=keys[0])

    status = MigrationEngine(migration, items_url).status().as_dict()
    assert status["backfill"]["partitions_done"] == 1
    assert not status["steps"]["validation"]["applied"] and not status["steps"]["cutover"]["applied"]
