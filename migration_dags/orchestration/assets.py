"""One asset group per migration, named after it; assets keyed [migration, step]:

    backup -> schema_change -> backfill -> validation (blocking checks) -> cutover

Every asset of the group is unpartitioned, so the UI's "Materialize all" on a fresh migration is
one launch, one run, through cutover: `backfill` runs every key range not done yet, whatever
their number (planned by schema_change in the same run).

The key ranges are also an asset of their own, [migration, backfill_ranges], dynamically
partitioned (one partition per key range, partitions.py), beside `backfill` (both downstream of
schema_change) in the group `<migration>__key_ranges` (outside the migration's group, so
"Materialize all" there never asks for partitions): what the off-peak
schedule and a person's partial backfill (some key ranges tonight, the rest tomorrow) materialize.
Both record the same truth: `backfill` records a materialization of each key range it ran, and a
run of key ranges that finishes the last one records `backfill` materialized.

validation and cutover refuse to run until every key range is done (Dagster would run them after
a run of some key ranges, FACTS.md). Each step asset has the non-blocking check `applied`: the
step is applied in the database; the rollback job records it failed (WARN) with a "rolled_back"
materialization, so after a rollback the graph shows the migration rolled back.
"""

import hashlib
import time
import warnings

import dagster as dg

from ..engine import MigrationEngine
from ..errors import RefusedError, ValidationFailedError
from ..reports import CheckOutcome, StepReport
from ..run_tags import allows_changed, complete_options
from ..spec import Migration
from ..steps import STEP_TYPES, STEPS
from . import checks, partitions
from .key_ranges import keys_not_done, record_backfill_done, run_key_ranges
from .metadata import backfill_metadata, step_metadata
from .resources import MigrationDatabase
from .tagging import RANGES_STEP, tag_run

# one description per step, from the step's own module
_DESCRIPTIONS = {name: step.description for name, step in STEP_TYPES.items()}


def step_key(migration: str, step: str) -> dg.AssetKey:
    return dg.AssetKey([migration, step])


def ranges_group(migration: str) -> str:
    """The group of the key-range asset: outside the migration's, so "Materialize all" there
    needs no partition."""
    return f"{migration}__key_ranges"


def build_migration_assets(migration: Migration) -> list[dg.AssetsDefinition]:
    name = migration.name
    key = {step: step_key(name, step) for step in STEPS}
    ranges_key = step_key(name, RANGES_STEP)
    common = dict(code_version=_file_version(migration), kinds={"postgres"},
                  tags={"migration": name})
    in_group = dict(group_name=name, **common)

    def engine(context: dg.AssetExecutionContext, db: MigrationDatabase, **kw) -> MigrationEngine:
        # tags first: a run launched from the UI has none of ours until now
        tag_run(context, migration, db.url_for(migration), "up")
        return db.engine(migration, context.run.run_id, context.log.info,
                         allow_changed=allows_changed(context.run.tags),
                         complete_options=complete_options(context.run.tags), **kw)

    def result(eng: MigrationEngine, report: StepReport, started: float, metadata=None,
               check_results=()) -> dg.MaterializeResult:
        metadata = metadata or step_metadata(report, time.monotonic() - started)
        applied = checks.applied_result(eng.status(), report.step)
        return dg.MaterializeResult(metadata=metadata, check_results=[*check_results, applied])

    @dg.asset(key=key["backup"], description=_DESCRIPTIONS["backup"],
              deps=[step_key(dep, "cutover") for dep in migration.depends_on],
              check_specs=[checks.applied_spec(key["backup"])], **in_group)
    def backup(
        context: dg.AssetExecutionContext, migration_database: MigrationDatabase
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        eng = engine(context, migration_database)
        return result(eng, eng.up("backup"), started)

    @dg.asset(key=key["schema_change"], description=_DESCRIPTIONS["schema_change"],
              deps=[backup], check_specs=[checks.applied_spec(key["schema_change"])], **in_group)
    def schema_change(
        context: dg.AssetExecutionContext, migration_database: MigrationDatabase
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        eng = engine(context, migration_database)
        report = eng.up("schema_change")
        keys = partitions.sync(context.instance, name, partitions.planned_keys(eng))
        metadata = step_metadata(report, time.monotonic() - started)
        metadata["backfill_partitions"] = dg.MetadataValue.text(", ".join(keys))
        return result(eng, report, started, metadata)

    def backfill_ranges(
        context: dg.AssetExecutionContext, migration_database: MigrationDatabase
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        eng = engine(context, migration_database)
        keys = list(context.partition_keys)
        reports = run_key_ranges(context, eng, keys, ranges_key, record_each=False)
        record_backfill_done(context, eng, key["backfill"])
        progress = eng.status().backfill
        metadata = backfill_metadata(reports, time.monotonic() - started,
                                     progress.partitions_done, progress.partitions_total)
        return dg.MaterializeResult(metadata=metadata, check_results=suites_on(eng, keys))

    def suites_on(eng: MigrationEngine, keys: list[str]) -> list[dg.AssetCheckResult]:
        if not migration.validation.suites:
            return []
        # blocking: a failed expectation on any key range stops validation/cutover in this run
        engine_keys = [partitions.engine_partition(k) for k in keys]
        return [checks.partition_result(checks.partition_outcomes(eng, engine_keys))]

    with warnings.catch_warnings():
        # BackfillPolicy is beta in Dagster 1.13; we rely on it knowingly (FACTS.md).
        warnings.simplefilter("ignore", dg.BetaWarning)
        backfill_ranges = dg.asset(
            key=ranges_key, group_name=ranges_group(name), deps=[schema_change],
            description="The backfill, one partition per key range (schedules and partial "
            "backfills); the migration's own `backfill` runs every range not done yet.",
            partitions_def=partitions.backfill_partitions_def(name),
            check_specs=checks.backfill_check_specs(migration, ranges_key),
            backfill_policy=dg.BackfillPolicy.single_run(), **common,
        )(backfill_ranges)

    @dg.asset(key=key["backfill"], description=_DESCRIPTIONS["backfill"] + " Runs every key "
              "range not done yet, in one run.",
              # not downstream of the key-range asset: "Materialize all" would then warn that
              # an upstream asset was never materialized (and a run without it would not order
              # backfill after schema_change)
              deps=[schema_change],
              check_specs=[*checks.backfill_check_specs(migration, key["backfill"]),
                           checks.applied_spec(key["backfill"])], **in_group)
    def backfill(
        context: dg.AssetExecutionContext, migration_database: MigrationDatabase
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        eng = engine(context, migration_database)
        keys = keys_not_done(context, eng)
        reports = run_key_ranges(context, eng, keys, ranges_key, record_each=True,
                                 backfill_key=key["backfill"])
        if not reports:  # every range done already: the engine records or skips the step
            reports = [eng.up("backfill")]
        progress = eng.status().backfill
        metadata = backfill_metadata(reports, time.monotonic() - started,
                                     progress.partitions_done, progress.partitions_total)
        return result(eng, reports[0], started, metadata, suites_on(eng, keys))

    @dg.asset(key=key["validation"], description=_DESCRIPTIONS["validation"], deps=[backfill],
              check_specs=[*checks.check_specs(migration, key["validation"]),
                           checks.applied_spec(key["validation"])], **in_group)
    def validation(
        context: dg.AssetExecutionContext, migration_database: MigrationDatabase
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        eng = engine(context, migration_database, extra_checks=checks.suite_hook(migration))
        refuse_until_backfill_done(eng, "validation")
        try:
            report = eng.up("validation")
        except ValidationFailedError as exc:
            # Recorded as a materialization whose blocking checks fail: Dagster then stops cutover
            # in this run and fails the run; the engine has not marked validation applied.
            metadata = {"passed": False, "error": exc.one_line(),
                        "duration_s": round(time.monotonic() - started, 3)}
            return dg.MaterializeResult(metadata=metadata, check_results=[
                *checks.check_results(migration, exc.outcomes),
                checks.applied_result(eng.status(), "validation")])
        metadata = step_metadata(report, time.monotonic() - started)
        if report.skipped_reason:
            applied = eng.status().steps["validation"]
            note = f"validation was applied by run {applied.run_id} at {applied.applied_at}"
            return result(eng, report, started, metadata, checks.not_reevaluated(migration, note))
        outcomes = [CheckOutcome(**d) for d in report.extra.get("checks", [])]
        metadata["passed"] = True
        return result(eng, report, started, metadata, checks.check_results(migration, outcomes))

    @dg.asset(key=key["cutover"], description=_DESCRIPTIONS["cutover"], deps=[validation],
              check_specs=[checks.applied_spec(key["cutover"])], **in_group)
    def cutover(
        context: dg.AssetExecutionContext, migration_database: MigrationDatabase
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        eng = engine(context, migration_database)
        refuse_until_backfill_done(eng, "cutover")
        return result(eng, eng.up("cutover"), started)

    return [backup, schema_change, backfill_ranges, backfill, validation, cutover]


def refuse_until_backfill_done(engine: MigrationEngine, step: str) -> None:
    """Say clearly why validation/cutover cannot run yet (the engine refuses too, more tersely)."""
    status = engine.status()
    if status.is_applied("backfill"):
        return
    name = engine.migration.name
    progress = status.backfill
    raise RefusedError(
        f"{name}: {step} refused: the backfill has {progress.partitions_done} of "
        f"{progress.partitions_total} partitions done. A run of some key ranges still runs the "
        f"steps after it; materialize `backfill` (every key range not done yet) first "
        f"(migration-dags up {name}, or Materialize all in the UI), then {step}"
    )


def _file_version(migration: Migration) -> str:
    """The migration file's content hash: the UI flags assets whose file changed since last run."""
    return hashlib.sha256(migration.file.read_bytes()).hexdigest()[:12]
