"""Tier 2: the suites' row-level expectations as a blocking check on each backfilled partition."""

from __future__ import annotations

import json

import dagster as dg

from migration_dags.engine import MigrationEngine
from migration_dags.orchestration.checks import SUITES_PARTITION
from migration_dags.orchestration.partitions import partitions_def_name
from orchestration.samples import ADD_FLAG
from orchestration.test_assets import _graph, _materialize

# 200 items in partitions of 50; the backfill leaves `note` NULL where id % 50 = 7.
ADD_NOTE = """
name: add_note
tables: [items]
settings: {partition_rows: 50, batch_size: 50}
validation: {suites: [items_checks]}
operations:
  - add_column:
      table: items
      column: {name: note, type: text}
      up: "CASE WHEN id % 50 = 7 THEN NULL ELSE 'n' || id END"
"""
NULL_NOTES = ["7", "57", "107", "157"]

ADD_FLAG_CHECKED = ADD_FLAG.replace("name: add_flag", "name: add_flag\nvalidation: {suites: [items_checks]}")


def _suite(tmp_path, monkeypatch, column):
    folder = tmp_path / "expectations"
    folder.mkdir()
    (folder / "items_checks.json").write_text(json.dumps({
        "name": "items_checks",
        "meta": {"migration_dags": {"table": "items"}},
        "expectations": [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column}},
        ],
    }))
    monkeypatch.setenv("MIGRATION_DAGS_EXPECTATIONS_DIR", str(folder))


def _backfill_check(result):
    return [e for e in result.get_asset_check_evaluations() if e.check_name == SUITES_PARTITION]


def test_nulls_left_by_the_backfill_fail_the_blocking_partition_check(
    migrations_dir, items_url, instance, tmp_path, monkeypatch
):
    _suite(tmp_path, monkeypatch, "note")
    migration, assets, resources = _graph(migrations_dir, ADD_NOTE, items_url)
    _materialize(assets, resources, instance, ["backup", "schema_change"], "add_note")
    keys = [k.split(" ")[0] for k in instance.get_dynamic_partitions(partitions_def_name("add_note"))]
    assert len(keys) == 4  # the engine's keys: the checks' metadata names partitions by them

    # the CLI's shape: one run over the whole partition range, with the steps after it
    result = _materialize(assets, resources, instance, ["backfill", "validation", "cutover"],
                          "add_note", raise_on_error=False)

    assert not result.success
    [check] = _backfill_check(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    meta = {k: v.value for k, v in check.metadata.items()}
    assert meta["observed"] == 4 and meta["partitions_checked"] == 4
    assert meta["failed_partitions"] == keys
    for key, bad in zip(keys, NULL_NOTES):
        assert f"- {key}: {bad}" in meta["samples"]
        # the failed expectation, its observed count and sample key, per partition
        assert f"(partition {key}) | 1 | {bad} |" in meta["failed_checks"]
    assert "expect_column_values_to_not_be_null[note]" in meta["failed_checks"]
    # only row-level expectations run on a partition
    assert "row_count" not in meta["failed_checks"] and meta["checked"] == 4
    # blocking: the backfill is done, yet validation and cutover did not run in this run
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialized == {"backfill", "backfill_ranges"}  # each key range it ran, recorded
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert started == {"add_note__backfill"}  # the check failed the backfill step itself
    status = MigrationEngine(migration, items_url).status().as_dict()["steps"]
    assert status["backfill"]["applied"]
    assert not status["validation"]["applied"] and not status["cutover"]["applied"]


def test_a_passing_suite_passes_the_partition_check(
    migrations_dir, items_url, instance, tmp_path, monkeypatch
):
    _suite(tmp_path, monkeypatch, "flag")
    _migration, assets, resources = _graph(migrations_dir, ADD_FLAG_CHECKED, items_url)
    _materialize(assets, resources, instance, ["backup", "schema_change"], "add_flag")
    keys = instance.get_dynamic_partitions(partitions_def_name("add_flag"))

    result = _materialize(assets, resources, instance, ["backfill"], "add_flag")

    [check] = _backfill_check(result)
    assert check.passed
    meta = {k: v.value for k, v in check.metadata.items()}
    assert (meta["observed"], meta["partitions_checked"], meta["failed"]) == (0, len(keys), 0)
    # one key range alone (no range) gets its own passing evaluation
    again = _materialize(assets, resources, instance, ["backfill_ranges"], "add_flag",
                         partition_key=keys[0])
    [one] = _backfill_check(again)
    assert one.passed and one.metadata["partitions_checked"].value == 1


def test_a_migration_without_suites_has_no_partition_check(migrations_dir, items_url, instance):
    _migration, assets, resources = _graph(migrations_dir, ADD_FLAG, items_url)
    backfill = next(a for a in assets if a.key.path[-1] == "backfill")
    assert [s.name for s in backfill.check_specs] == ["applied"]
    ranges = next(a for a in assets if a.key.path[-1] == "backfill_ranges")
    assert list(ranges.check_specs) == []


def test_the_cli_rolls_back_a_failed_partition_check_and_exits_3(
    migrations_dir, items_url, tmp_path, monkeypatch, capsys
):
    """A suite failing on the backfilled rows stops `up` at the backfill step: the CLI rolls the
    migration back itself (exit 3), as for a failed validation, and the table is as before."""
    from migration_dags import cli
    from orchestration.samples import snapshot, write_migration

    _suite(tmp_path, monkeypatch, "note")
    write_migration(migrations_dir, ADD_NOTE)
    before = snapshot(items_url)
    code = cli.main(["--database-url", items_url, "--migrations-dir", str(migrations_dir), "up", "add_note", "--complete"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "suites_partition" in err
    assert snapshot(items_url) == before
