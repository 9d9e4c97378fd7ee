"""launch: CLI runs go through the Dagster instance, tagged; a failed validation is rolled back."""

from __future__ import annotations

import subprocess

import dagster as dg

from migration_dags.engine import MigrationEngine
from migration_dags.migration_set import MigrationSet
from migration_dags.orchestration import launch
from migration_dags.orchestration.rollback_policy import rollbacks_for
from orchestration.samples import (
    ADD_FLAG, ADD_VIEW, CLOCK_STAMP, CLOCK_STAMP_BAD_DOWN, backup_tables, snapshot, write_migration,
)

STEPS = ["backup", "schema_change", "backfill", "validation", "cutover"]


def _runs(instance, **tags):
    records = instance.get_run_records(dg.RunsFilter(tags=tags))
    first = lambda run: run.tags["step"].split(",")[0]  # noqa: E731
    return sorted((r.dagster_run for r in records),
                  key=lambda run: STEPS.index(first(run)) if first(run) in STEPS else len(STEPS))


def test_run_up_records_one_tagged_run_of_every_step(migrations_dir, items_url, instance, monkeypatch):
    subprocess.run(["git", "init", "-q", str(migrations_dir)], check=True)
    write_migration(migrations_dir, ADD_FLAG)
    git = ["git", "-C", str(migrations_dir), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "add_flag"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    lines = []

    result = launch.run_up("add_flag", complete=True, migrations_dir=migrations_dir, database_url=items_url,
                           progress=lines.append)

    assert result.outcome == launch.UpOutcome.APPLIED and result.exit_code == 0
    runs = _runs(instance, migration="add_flag")
    # the group is unpartitioned: the backfill runs the key ranges schema_change planned, in one run
    assert [r.tags["step"] for r in runs] == [",".join(STEPS)]
    assert [r.step for r in result.runs] == STEPS
    assert [r.run_id for r in result.runs] == [runs[0].run_id] * 5
    for run in runs:
        assert run.is_success
        assert run.tags["direction"] == "up"
        assert run.tags["actor"] == "octocat"
        assert run.tags["code_version"] == commit
    # one unpartitioned backfill run ran every key range and recorded each as a partition
    keys = instance.get_dynamic_partitions("add_flag__backfill")
    assert set(instance.get_materialized_partitions(dg.AssetKey(["add_flag", "backfill_ranges"]))) == set(keys)
    # the engine records the Dagster run that applied each step
    status = MigrationEngine(MigrationSet.load(migrations_dir).get("add_flag"), items_url).status().as_dict()
    assert [status["steps"][s]["run_id"] for s in STEPS] == [r.run_id for r in result.runs]
    assert any(line.startswith("add_flag: backfill up: done") for line in lines)


def test_an_explicit_actor_wins(migrations_dir, items_url, instance, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    write_migration(migrations_dir, ADD_VIEW)

    result = launch.run_up("add_view", complete=True, migrations_dir=migrations_dir, database_url=items_url,
                           actor="release-bot")

    assert result.exit_code == 0
    assert {r.tags["actor"] for r in _runs(instance, migration="add_view")} == {"release-bot"}


def test_a_migration_with_nothing_to_backfill_runs_on_one_placeholder_partition(
    migrations_dir, items_url, instance
):
    write_migration(migrations_dir, ADD_VIEW)

    assert launch.run_up("add_view", complete=True, migrations_dir=migrations_dir, database_url=items_url).exit_code == 0

    assert instance.get_dynamic_partitions("add_view__backfill") == ["nothing-to-backfill"]
    status = MigrationEngine(MigrationSet.load(migrations_dir).get("add_view"), items_url).status().as_dict()
    assert all(s["applied"] for s in status["steps"].values())


def test_a_failed_validation_is_rolled_back(migrations_dir, items_url, instance):
    write_migration(migrations_dir, CLOCK_STAMP)
    before = snapshot(items_url)

    result = launch.run_up("clock_stamp", complete=True, migrations_dir=migrations_dir, database_url=items_url)

    assert result.outcome == launch.UpOutcome.VALIDATION_FAILED_ROLLED_BACK
    assert result.exit_code == 3
    assert "items.stamped.equals_up" in result.message and "rolled back" in result.message
    assert snapshot(items_url) == before and backup_tables(items_url) == []
    # validation's blocking checks failed inside up's one run, which then skipped cutover
    [validation_run] = _runs(instance, migration="clock_stamp", step=",".join(STEPS))
    assert validation_run.status == dg.DagsterRunStatus.FAILURE
    [rollback] = _runs(instance, migration="clock_stamp", direction="down")
    assert rollback.job_name == "clock_stamp__rollback" and rollback.is_success
    assert rollback.tags["reason"] == "validation_failed"
    assert rollback.tags["triggered_by_run"] == validation_run.run_id
    materialized = {r.event_log_entry.dagster_event.asset_key.path[-1] for r in instance.get_records_for_run(
        validation_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records}
    assert "cutover" not in materialized


def test_a_failed_rollback_after_a_failed_validation_is_exit_4(migrations_dir, items_url, instance):
    write_migration(migrations_dir, CLOCK_STAMP_BAD_DOWN)

    result = launch.run_up("clock_stamp_bad_down", complete=True, migrations_dir=migrations_dir, database_url=items_url)

    assert result.outcome == launch.UpOutcome.VALIDATION_FAILED_ROLLBACK_FAILED
    assert result.exit_code == 4
    assert "the rollback failed too" in result.message and "division by zero" in result.message
    [rollback] = _runs(instance, migration="clock_stamp_bad_down", direction="down")
    assert rollback.status == dg.DagsterRunStatus.FAILURE


def test_rollbacks_for_asks_one_rollback_per_migration_with_a_failed_error_check():
    def evaluation(path, check, passed, severity=dg.AssetCheckSeverity.ERROR):
        return dg.AssetCheckEvaluation(asset_key=dg.AssetKey(path), check_name=check, passed=passed,
                                       severity=severity)

    requests = rollbacks_for([
        evaluation(["a", "validation"], "parity", False),
        evaluation(["a", "validation"], "row_counts", False),
        evaluation(["b", "validation"], "parity", False, dg.AssetCheckSeverity.WARN),
        evaluation(["c", "validation"], "parity", True),
        evaluation(["d", "backup"], "other", False),
    ], failed_run_id="r1")

    assert [(r.migration, r.job_name, r.failed_checks) for r in requests] == [
        ("a", "a__rollback", ("parity", "row_counts"))
    ]
    assert requests[0].tags == {"reason": "validation_failed", "failed_checks": "parity,row_counts",
                                "triggered_by_run": "r1"}


def test_up_runs_every_step_left_in_one_run():
    """The group is unpartitioned (the backfill runs every key range in the same run)."""
    assert launch.run_groups(STEPS) == [STEPS]
    assert launch.run_groups(STEPS[2:]) == [STEPS[2:]]
    assert launch.run_groups(["schema_change"]) == [["schema_change"]]
    assert launch.run_groups([]) == []
