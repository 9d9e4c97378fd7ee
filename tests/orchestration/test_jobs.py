"""The rollback job returns the database to its pre-migration state and records each step."""

from __future__ import annotations

import dagster as dg

from migration_dags.engine import MigrationEngine
from migration_dags.migration_set import MigrationSet
from migration_dags.orchestration import launch
from migration_dags.orchestration.definitions import build_definitions
from migration_dags.orchestration.jobs import DOWN_ORDER
from migration_dags.orchestration.partitions import partitions_def_name
from migration_dags.orchestration.resources import MigrationDatabase
from orchestration.samples import ADD_FLAG, backup_tables, snapshot, write_migration

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def test_the_rollback_job_restores_the_pre_migration_state(migrations_dir, items_url, instance):
    write_migration(migrations_dir, ADD_FLAG)
    before = snapshot(items_url)
    assert launch.run_up("add_flag", complete=True, migrations_dir=migrations_dir, database_url=items_url).exit_code == 0
    assert snapshot(items_url) != before
    defs = build_definitions(migrations_dir, MigrationDatabase(database_url=items_url))

    result = defs.get_job_def("add_flag__rollback").execute_in_process(
        instance=instance, run_config=QUIET
    )

    assert result.success
    assert snapshot(items_url) == before
    assert backup_tables(items_url) == []
    migration = MigrationSet.load(migrations_dir).get("add_flag")
    status = MigrationEngine(migration, items_url).status().as_dict()
    assert not any(s["applied"] for s in status["steps"].values())
    assert status["backfill"]["partitions_total"] == 0
    assert instance.get_dynamic_partitions(partitions_def_name("add_flag")) == []
    # each down step is a materialization of its asset saying "rolled_back", in reverse order,
    # the backup's with the proof; and every step's `applied` check fails (WARN)
    rolled = [e.event_specific_data.materialization for e in result.all_events
              if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION]
    assert [m.asset_key.path for m in rolled] == [["add_flag", s] for s in DOWN_ORDER]
    assert {m.metadata["status"].value for m in rolled} == {"rolled_back"}
    proof = rolled[-1].metadata["proof"].value["public.items"]
    assert proof["schema_equal"] and proof["data_equal"]
    assert "DROP COLUMN" in rolled[3].metadata["sql"].value
    applied = [e for e in result.get_asset_check_evaluations() if e.check_name == "applied"]
    assert [(e.asset_key.path[1], e.passed, e.severity) for e in applied] == [
        (s, False, dg.AssetCheckSeverity.WARN) for s in DOWN_ORDER]
    tags = instance.get_run_by_id(result.run_id).tags
    assert (tags["direction"], tags["step"], tags["migration"]) == ("down", "all", "add_flag")
    assert tags["target_database"] and tags["file_checksum"] and tags["source"] == "ui"


def test_a_second_rollback_changes_nothing(migrations_dir, items_url, instance):
    write_migration(migrations_dir, ADD_FLAG)
    before = snapshot(items_url)
    defs = build_definitions(migrations_dir, MigrationDatabase(database_url=items_url))

    result = defs.get_job_def("add_flag__rollback").execute_in_process(instance=instance, run_config=QUIET)

    assert result.success and snapshot(items_url) == before
    skipped = [e.event_specific_data.asset_observation.metadata["skipped"].value
               for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION]
    assert skipped == ["not applied"] * len(DOWN_ORDER)
