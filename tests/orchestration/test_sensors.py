"""The rollback sensor: a failed validation or step, in a run launched from anywhere, launches the
migration's rollback job exactly once; the rollback restores the pre-migration state."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from migration_dags import cli
from migration_dags.orchestration.audit import audit_log
from migration_dags.migration_set import MigrationSet
from migration_dags.orchestration import launch
from migration_dags.orchestration.assets import step_key
from migration_dags.orchestration.definitions import build_definitions
from migration_dags.orchestration.resources import MigrationDatabase
from migration_dags.orchestration.rollback_policy import StepFailure, rollbacks_for_failed_run
from migration_dags.orchestration.sensors import SENSOR_NAME, Cursor, build_rollback_sensors
from migration_dags.db import ADVISORY_LOCK_KEY
from orchestration.samples import backup_tables, snapshot, write_migration

REPO = Path(__file__).resolve().parents[2]
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

# A NOT NULL column whose backfill leaves a NULL in every 50th row: the parity check "no NULL in
# score" fails on keys 50, 100, 150, 200, so validation fails.
SCORE_WITH_NULLS = """
name: add_score
description: A NOT NULL score the backfill leaves NULL for every 50th item.
tables: [items]
settings: {partition_rows: 100, batch_size: 50}
operations:
  - add_column:
      table: items
      column: {name: score, type: integer, nullable: false}
      up: "CASE WHEN id % 50 = 0 THEN NULL ELSE id * 10 END"
"""

# Its backfill divides by zero at id 150: the backfill step fails.
RATIO_DIVIDES_BY_ZERO = """
name: add_ratio
tables: [items]
settings: {partition_rows: 100, batch_size: 50}
operations:
  - add_column:
      table: items
      column: {name: ratio, type: integer}
      up: "1000 / (id - 150)"
"""


def materialize(defs: dg.Definitions, instance, migration: str, *steps: str) -> dg.ExecuteInProcessResult:
    """Run steps as `dagster asset materialize` does: in-process, no CLI tags."""
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[step_key(migration, s) for s in steps],
        run_config=QUIET, raise_on_error=False,
    )


def up_to_failed_validation(defs, instance, migration: str) -> str:
    for step in ("backup", "schema_change", "backfill"):
        assert materialize(defs, instance, migration, step).success
    failed = materialize(defs, instance, migration, "validation", "cutover")
    assert not failed.success
    return failed.run_id


def tick(sensor: dg.SensorDefinition, defs: dg.Definitions, instance, cursor: str | None):
    # the daemon binds the code location's resources; build_sensor_context needs them named
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources=defs.resources)
    return sensor.evaluate_tick(context)


def run_rollback(defs, instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """What the daemon does with the request (there: through the run queue)."""
    return defs.get_job_def(request.job_name).execute_in_process(
        instance=instance, tags={**request.tags, "dagster/run_key": request.run_key}, run_config=QUIET
    )


@pytest.fixture
def score(migrations_dir, items_url):
    write_migration(migrations_dir, SCORE_WITH_NULLS)
    defs = build_definitions(migrations_dir, MigrationDatabase(database_url=items_url))
    return defs, defs.resolve_sensor_def(SENSOR_NAME)


def test_a_failed_validation_is_rolled_back_once_by_the_sensor(score, items_url, instance):
    defs, sensor = score
    before = snapshot(items_url)
    old_failure = up_to_failed_validation(defs, instance, "add_score")

    first = tick(sensor, defs, instance, None)
    assert first.run_requests == []  # first start: the failure already in history is not replayed
    assert "first start" in first.skip_message

    failed = materialize(defs, instance, "add_score", "validation", "cutover")
    assert not failed.success
    found = tick(sensor, defs, instance, first.cursor)

    [request] = found.run_requests
    assert request.job_name == "add_score__rollback"
    assert request.run_key == f"add_score:{failed.run_id}"
    assert request.tags["reason"] == "validation_failed"
    assert request.tags["failed_checks"] == "parity"
    assert request.tags["triggered_by_run"] == failed.run_id != old_failure
    assert request.tags["actor"] == f"sensor:{SENSOR_NAME}"
    assert tick(sensor, defs, instance, found.cursor).run_requests == []  # read once
    # while that rollback waits in the run queue, a replay of the failure does not launch another
    queued = instance.create_run_for_job(defs.get_job_def(request.job_name), tags=request.tags)
    replay = tick(sensor, defs, instance, first.cursor)
    assert replay.run_requests == []
    assert f"rollback run {queued.run_id[:8]} was launched after it" in replay.skip_message
    instance.delete_run(queued.run_id)

    rollback = run_rollback(defs, instance, request)

    assert rollback.success
    assert snapshot(items_url) == before and backup_tables(items_url) == []
    proof = [e.event_specific_data.materialization.metadata["proof"].value for e in rollback.all_events
             if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
             and "proof" in e.event_specific_data.materialization.metadata]
    [[(table, figures)]] = [list(p.items()) for p in proof]
    assert table == "public.items" and figures["schema_equal"] and figures["data_equal"]
    assert (figures["rows_before"], figures["rows_now"]) == (200, 200)
    assert figures["application_writes_lost"] == figures["application_writes_altered"] == 0
    # replaying the failure (an old cursor) launches nothing: nothing is applied any more
    replay = tick(sensor, defs, instance, first.cursor)
    assert replay.run_requests == []
    assert "add_score: no rollback needed" in replay.skip_message


def test_a_failed_step_is_rolled_back_but_not_one_that_met_a_held_lock(
    migrations_dir, items_url, instance
):
    write_migration(migrations_dir, RATIO_DIVIDES_BY_ZERO)
    defs = build_definitions(migrations_dir, MigrationDatabase(database_url=items_url))
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    before = snapshot(items_url)
    cursor = tick(sensor, defs, instance, None).cursor
    assert materialize(defs, instance, "add_ratio", "backup").success
    # another migration run holds the lock: the step changed nothing, rolling back would undo that run
    with psycopg.connect(items_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        assert not materialize(defs, instance, "add_ratio", "schema_change").success
        pid = holder.info.backend_pid
    wait_until_backend_ends(items_url, pid)  # it frees the lock asynchronously
    locked = tick(sensor, defs, instance, cursor)
    assert locked.run_requests == []

    assert materialize(defs, instance, "add_ratio", "schema_change").success
    first_try = materialize(defs, instance, "add_ratio", "backfill")
    failed = materialize(defs, instance, "add_ratio", "backfill")  # retried, failed again
    assert not first_try.success and not failed.success
    found = tick(sensor, defs, instance, locked.cursor)

    [request] = found.run_requests  # one rollback, for the latest failure: the first is superseded
    assert request.tags["reason"] == "step_failed" and request.tags["failed_step"] == "backfill"
    assert request.tags["triggered_by_run"] == failed.run_id
    assert run_rollback(defs, instance, request).success
    assert snapshot(items_url) == before and backup_tables(items_url) == []


def test_the_cli_rolls_back_itself_and_the_sensor_leaves_it(
    capsys, migrations_dir, items_url, instance
):
    defs, sensor = _defs_with_sensor(migrations_dir, items_url, cli_grace_s=0)
    cursor = tick(sensor, defs, instance, None).cursor
    before = snapshot(items_url)

    code = cli.main(["up", "add_score", "--complete", "--migrations-dir", str(migrations_dir),
                     "--database-url", items_url, "--actor", "alice"])

    assert code == 3
    error = capsys.readouterr().err
    assert "items.score.not_null (observed 4, e.g. keys 50, 100, 150, 200)" in error
    assert snapshot(items_url) == before
    after = tick(sensor, defs, instance, cursor)
    assert after.run_requests == []
    assert "add_score: no rollback needed" in after.skip_message
    [rollback] = instance.get_run_records(dg.RunsFilter(job_name="add_score__rollback"))
    assert rollback.dagster_run.tags["actor"] == "alice" and rollback.dagster_run.is_success


def test_the_sensor_rolls_back_a_cli_run_stopped_before_its_rollback(
    migrations_dir, items_url, instance, monkeypatch
):
    defs, patient = _defs_with_sensor(migrations_dir, items_url)  # waits 60 s for the CLI
    _, eager = _defs_with_sensor(migrations_dir, items_url, cli_grace_s=0)
    cursor = tick(patient, defs, instance, None).cursor
    before = snapshot(items_url)

    def interrupted(self, extra_tags=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(launch.Launcher, "down", interrupted)
    code = cli.main(["up", "add_score", "--complete", "--migrations-dir", str(migrations_dir), "--database-url", items_url])
    assert code == 130
    every_step = "backup,schema_change,backfill,validation,cutover"
    [failed] = instance.get_run_records(dg.RunsFilter(tags={"step": every_step}))

    waiting = tick(patient, defs, instance, cursor)
    assert waiting.run_requests == []
    assert list(Cursor.load(waiting.cursor).pending) == [failed.dagster_run.run_id]
    # once the grace period is over (here: none), the pending failure is rolled back
    [request] = tick(eager, defs, instance, waiting.cursor).run_requests
    assert request.tags["triggered_by_run"] == failed.dagster_run.run_id
    assert run_rollback(defs, instance, request).success
    assert snapshot(items_url) == before


def _defs_with_sensor(migrations_dir, items_url, cli_grace_s: float | None = None):
    write_migration(migrations_dir, SCORE_WITH_NULLS)
    defs = build_definitions(migrations_dir, MigrationDatabase(database_url=items_url))
    if cli_grace_s is None:
        return defs, defs.resolve_sensor_def(SENSOR_NAME)
    migrations = MigrationSet.load(migrations_dir).ordered()
    jobs = [defs.get_job_def(f"{m.name}__rollback") for m in migrations]
    [sensor] = build_rollback_sensors(migrations, jobs, cli_grace_s=cli_grace_s)
    return defs, sensor


# -- the policy, without a database ------------------------------------------------------------
def _evaluation(migration: str, passed: bool) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(asset_key=dg.AssetKey([migration, "validation"]), check_name="parity",
                                   passed=passed, severity=dg.AssetCheckSeverity.ERROR)


ALL_BUT_CUTOVER = {"backup", "schema_change", "backfill"}


@pytest.mark.parametrize("failure, applied, cli_run, expected", [
    # a failed step of a run from the UI or a backfill: roll back
    (StepFailure("m", "backfill", ("DagsterExecutionStepExecutionError", "DivisionByZero")),
     {"backup", "schema_change"}, False, {"reason": "step_failed", "failed_step": "backfill"}),
    # the CLI reported it (exit code) and leaves it resumable
    (StepFailure("m", "backfill", ("DivisionByZero",)), {"backup", "schema_change"}, True, None),
    # "run again" errors changed nothing
    (StepFailure("m", "schema_change", ("MigrationLockedError",)), {"backup"}, False, None),
    (StepFailure("m", "cutover", ("LockTimeoutExhaustedError",)), ALL_BUT_CUTOVER | {"validation"},
     False, None),
    # validation refused before every backfill partition is done: it ran nothing
    (StepFailure("m", "validation", ("StepFailedError",)), {"backup", "schema_change"}, False, None),
    # nothing applied: nothing to roll back
    (StepFailure("m", "backup", ("UndefinedTable",)), set(), False, None),
    # a rollback job's op is not a step
    (StepFailure("m", "cutover_down", ("RollbackFailedError",)), ALL_BUT_CUTOVER, False, None),
])
def test_the_policy_for_a_failed_step(failure, applied, cli_run, expected):
    requests = rollbacks_for_failed_run("r1", [], [failure], {"m": applied}, cli_run)

    if expected is None:
        assert requests == []
    else:
        [request] = requests
        assert request.job_name == "m__rollback"
        assert request.tags == {**expected, "triggered_by_run": "r1"}


def test_the_policy_for_a_failed_validation_is_the_clis():
    failed = _evaluation("m", passed=False)

    for cli_run in (True, False):
        [request] = rollbacks_for_failed_run("r1", [failed], [StepFailure("m", "validation")],
                                             {"m": ALL_BUT_CUTOVER}, cli_run)
        assert request.tags == {"reason": "validation_failed", "failed_checks": "parity",
                                "triggered_by_run": "r1"}
    assert rollbacks_for_failed_run("r1", [failed], [], {"m": set()}, False) == []
    assert rollbacks_for_failed_run("r1", [_evaluation("m", True)], [], {"m": ALL_BUT_CUTOVER}, False) == []


# -- a real daemon ---------------------------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop(process: subprocess.Popen) -> None:
    """Started from a non-interactive shell, the daemon ignores SIGINT and SIGTERM (FACTS.md):
    kill its process group and every process it started, by PID."""
    pids = [process.pid, *_descendants(process.pid)]
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=10)


def _wait_for(what: str, probe, timeout_s: float, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log.exists() else ""
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}; daemon log tail:\n{tail}")


def test_under_a_running_daemon_a_failed_validation_is_rolled_back(
    tmp_path, migrations_dir, items_url, instance, dagster_home
):
    write_migration(migrations_dir, SCORE_WITH_NULLS)
    before = snapshot(items_url)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: migration_dags.orchestration.definitions\n"
        f"      working_directory: {REPO}\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "MIGRATION_DAGS_DATABASE_URL": items_url,
           "MIGRATION_DAGS_MIGRATIONS_DIR": str(migrations_dir),
           "MIGRATION_DAGS_ROLLBACK_SENSOR_INTERVAL_S": "1"}
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            [str(REPO / ".venv/bin/dagster-daemon"), "run", "-w", str(workspace)],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=tmp_path,
        )
    try:
        def sensor_cursor():
            for state in instance.all_instigator_state():
                if state.name == SENSOR_NAME and state.instigator_data and state.instigator_data.cursor:
                    return state.instigator_data.cursor
            return None

        _wait_for("the sensor's first tick", sensor_cursor, 60, log)
        # a run from outside the CLI, as `dagster asset materialize` would launch it
        defs = build_definitions(migrations_dir, MigrationDatabase(database_url=items_url))
        failed_run = up_to_failed_validation(defs, instance, "add_score")

        def finished_rollback():
            records = instance.get_run_records(dg.RunsFilter(job_name="add_score__rollback"))
            return records[0].dagster_run if records and records[0].dagster_run.is_finished else None

        rollback = _wait_for("the rollback run to finish", finished_rollback, 90, log)
    finally:
        _stop(daemon)

    assert rollback.is_success, log.read_text()[-3000:]
    assert rollback.tags["triggered_by_run"] == failed_run
    assert rollback.tags["dagster/sensor_name"] == SENSOR_NAME
    assert len(instance.get_run_records(dg.RunsFilter(job_name="add_score__rollback"))) == 1
    assert snapshot(items_url) == before and backup_tables(items_url) == []
    # the audit log tells who rolled back, and why
    last = audit_log(instance, "add_score")[-1]
    assert (last["run_id"], last["actor"], last["source"]) == (
        rollback.run_id, f"sensor:{SENSOR_NAME}", "sensor")
    assert last["rollback"]["reason"] == "validation_failed"
    assert last["rollback"]["triggered_by_run"] == failed_run


def wait_until_backend_ends(url: str, pid: int) -> None:
    import time

    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100):
            if not conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                (pid,)).fetchone()[0]:
                return
            time.sleep(0.05)
