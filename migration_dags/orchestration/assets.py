"""One asset group per migration, named after it; assets keyed [migration, step]:

    backup -> schema_change -> backfill (dynamic partitions, single-run backfills) -> validation
    (blocking checks) -> cutover

Each asset runs one engine step and records what it did as metadata. The engine is the authority
on state: re-materializing an applied step is a recorded no-op.

validation and cutover refuse to run until every backfill partition is done. Dagster runs an
unpartitioned asset downstream of a partitioned one after *any* selected partition (FACTS.md), so a
run of one backfill partition plus validation would otherwise validate a half-filled table.
"""

import hashlib
import time
import warnings

import dagster as dg

from ..engine import MigrationEngine
from ..errors import BackfillFailedError, RefusedError, ValidationFailedError
from ..reports import CheckOutcome
from ..run_tags import allows_changed, complete_options
from ..spec import Migration
from ..steps import STEP_TYPES, STEPS
from . import checks, partitions
from .metadata import backfill_metadata, step_metadata
from .resources import MigrationDatabase

# one description per step, from the step's own module
_DESCRIPTIONS = {name: step.description for name, step in STEP_TYPES.items()}


def step_key(migration: str, step: str) -> dg.AssetKey:
    return dg.AssetKey([migration, step])


def build_migration_assets(migration: Migration) -> list[dg.AssetsDefinition]:
    name = migration.name
    key = {step: step_key(name, step) for step in STEPS}
    common = dict(
        group_name=name,
        code_version=_file_version(migration),
        kinds={"postgres"},
        tags={"migration": name},
    )

    def engine(context: dg.AssetExecutionContext, db: MigrationDatabase, **kw) -> MigrationEngine:
        return db.engine(migration, context.run.run_id, context.log.info,
                         allow_changed=allows_changed(context.run.tags),
                         complete_options=complete_options(context.run.tags), **kw)

    @dg.asset(key=key["backup"], description=_DESCRIPTIONS["backup"],
              deps=[step_key(dep, "cutover") for dep in migration.depends_on],
              **common)
    def backup(
        context: dg.AssetExecutionContext, migration_database: MigrationDatabase
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        report = engine(context, migration_database).up("backup")
        return dg.MaterializeResult(metadata=step_metadata(report, time.monotonic() - started))

    @dg.asset(key=key["schema_change"], description=_DESCRIPTIONS["schema_change"],
              deps=[backup], **common)
    def schema_change(
        context: dg.AssetExecutionContext, migration_database: MigrationDatabase
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        eng = engine(context, migration_database)
        report = eng.up("schema_change")
        keys = partitions.sync(context.instance, name, partitions.planned_keys(eng))
        metadata = step_metadata(report, time.monotonic() - started)
        metadata["backfill_partitions"] = dg.MetadataValue.text(", ".join(keys))
        return dg.MaterializeResult(metadata=metadata)

    def backfill(
        context: dg.AssetExecutionContext, migration_database: MigrationDatabase
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        eng = engine(context, migration_database)
        keys = [partitions.engine_partition(k) for k in context.partition_keys]
        reports = []
        try:
            for k in keys:
                refuse_after_window(context, name)
                reports.append(eng.up("backfill", k))
        except BackfillFailedError as exc:
            # the run fails, but the rows its batches committed are counted truthfully
            committed = sum(r.rows for r in reports) + exc.committed_rows
            context.log_event(dg.AssetObservation(
                asset_key=key["backfill"], partition=context.partition_keys[len(reports)],
                metadata={"direction": "up", "rows_affected": committed, "error": exc.one_line(),
                          "duration_s": round(time.monotonic() - started, 3)}))
            raise
        progress = eng.status().backfill
        metadata = backfill_metadata(
            reports, time.monotonic() - started, progress.partitions_done, progress.partitions_total,
        )
        if not migration.validation.suites:
            return dg.MaterializeResult(metadata=metadata)
        # blocking: a failed expectation on any partition stops validation/cutover in this run
        result = checks.partition_result(checks.partition_outcomes(eng, keys))
        return dg.MaterializeResult(metadata=metadata, check_results=[result])

    with warnings.catch_warnings():
        # BackfillPolicy is beta in Dagster 1.13; we rely on it knowingly (FACTS.md).
        warnings.simplefilter("ignore", dg.BetaWarning)
        backfill = dg.asset(
            key=key["backfill"], description=_DESCRIPTIONS["backfill"], deps=[schema_change],
            partitions_def=partitions.backfill_partitions_def(name),
            check_specs=checks.backfill_check_specs(migration, key["backfill"]),
            backfill_policy=dg.BackfillPolicy.single_run(), **common,
        )(backfill)

    @dg.asset(key=key["validation"], description=_DESCRIPTIONS["validation"], deps=[backfill],
              check_specs=checks.check_specs(migration, key["validation"]),
              **common)
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
            outcomes = exc.outcomes
            metadata = {"passed": False, "error": exc.one_line(),
                        "duration_s": round(time.monotonic() - started, 3)}
            return dg.MaterializeResult(
                metadata=metadata, check_results=checks.check_results(migration, outcomes)
            )
        metadata = step_metadata(report, time.monotonic() - started)
        if report.skipped_reason:
            applied = eng.status().steps["validation"]
            note = f"validation was applied by run {applied.run_id} at {applied.applied_at}"
            return dg.MaterializeResult(
                metadata=metadata, check_results=checks.not_reevaluated(migration, note)
            )
        outcomes = [CheckOutcome(**d) for d in report.extra.get("checks", [])]
        metadata["passed"] = True
        return dg.MaterializeResult(
            metadata=metadata, check_results=checks.check_results(migration, outcomes)
        )

    @dg.asset(key=key["cutover"], description=_DESCRIPTIONS["cutover"], deps=[validation],
              **common)
    def cutover(
        context: dg.AssetExecutionContext, migration_database: MigrationDatabase
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        eng = engine(context, migration_database)
        refuse_until_backfill_done(eng, "cutover")
        report = eng.up("cutover")
        return dg.MaterializeResult(metadata=step_metadata(report, time.monotonic() - started))

    return [backup, schema_change, backfill, validation, cutover]


def refuse_after_window(context: dg.AssetExecutionContext, migration: str) -> None:
    """A run the off-peak schedule launched starts no key range once its window has closed; the
    ranges left wait for the next window (what this run finished stays done)."""
    from .schedules import window_closed

    closed = window_closed(context.run.tags)
    if closed is not None:
        raise RefusedError(
            f"{migration}: the off-peak window closed at {closed.isoformat()}; the key ranges "
            "not done yet start in the next window")


def refuse_until_backfill_done(engine: MigrationEngine, step: str) -> None:
    """Say clearly why validation/cutover cannot run yet (the engine refuses too, more tersely)."""
    status = engine.status()
    if status.is_applied("backfill"):
        return
    name = engine.migration.name
    progress = status.backfill
    raise RefusedError(
        f"{name}: {step} refused: the backfill has {progress.partitions_done} of "
        f"{progress.partitions_total} partitions done. A run of some backfill partitions still "
        f"runs the steps after it; materialize every backfill partition first "
        f"(migration-dags up {name}, or the whole partition range in the UI), then {step}"
    )


def _file_version(migration: Migration) -> str:
    """The migration file's content hash: the UI flags assets whose file changed since last run."""
    return hashlib.sha256(migration.file.read_bytes()).hexdigest()[:12]
