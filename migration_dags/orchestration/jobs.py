"""<migration>__rollback: the down steps in reverse, one op each, chained so each starts only after
the one before succeeded:

    cutover -> validation -> backfill -> schema_change -> backup

The last op, backup down, proves every touched table equals its pre-migration backup (schema and
data fingerprints) before dropping the backup; a mismatch fails the job and keeps the backup.

What the UI shows after it (run history is never wiped): each step whose down ran gets a
materialization with `status: rolled_back` and the down's SQL, a step with nothing to undo an
observation saying so, and every step its `applied` check failed at WARN severity ("rolled back
by run ..."), so the graph shows the migration rolled back. schema_change's down deletes the key
ranges' partitions: the next round plans new keys (partitions.py), never showing an old status.
"""

import time

import dagster as dg

from ..run_tags import allows_changed
from ..spec import Migration
from ..steps import DOWN_ORDER
from . import checks, partitions
from .assets import step_key
from .metadata import step_metadata
from .resources import MigrationDatabase
from .tagging import tag_run

ROLLED_BACK = "rolled_back"


def rollback_job_name(migration: str) -> str:
    return f"{migration}__rollback"


def build_rollback_job(migration: Migration) -> dg.JobDefinition:
    ops = [_down_op(migration, step, first=(i == 0)) for i, step in enumerate(DOWN_ORDER)]

    @dg.job(
        name=rollback_job_name(migration.name),
        description=f"Roll {migration.name} back: {', '.join(DOWN_ORDER)} down, the last proving "
        "the tables equal their pre-migration backup.",
        tags={"migration": migration.name, "direction": "down", "step": "all"},
        executor_def=dg.in_process_executor,
    )
    def rollback() -> None:
        done = None
        for op in ops:
            done = op() if done is None else op(done)

    return rollback


def _down_op(migration: Migration, step: str, first: bool) -> dg.OpDefinition:
    @dg.op(
        name=f"{migration.name}__{step}_down",
        ins={} if first else {"after": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        description=f"{step} down",
        tags={"step": step},
    )
    def down(context: dg.OpExecutionContext, migration_database: MigrationDatabase):
        started = time.monotonic()
        tag_run(context, migration, migration_database.url_for(migration), "down", "all")
        engine = migration_database.engine(migration, context.run.run_id, context.log.info,
                                           allow_changed=allows_changed(context.run.tags))
        report = engine.down(step)
        if step == "schema_change":
            partitions.clear(context.instance, migration.name)
        metadata = step_metadata(report, time.monotonic() - started)
        record_rolled_back(context, step_key(migration.name, step), metadata,
                           ran=not report.skipped_reason)
        context.add_output_metadata(metadata)

    return down


def record_rolled_back(
    context: dg.OpExecutionContext, key: dg.AssetKey, metadata: dict, ran: bool
) -> None:
    """The step's asset says it is rolled back: a materialization when its down ran (the SQL it
    ran is the asset's latest metadata), an observation when there was nothing to undo; and
    `applied` failed (WARN) either way: the step is not in the database any more."""
    if ran:
        context.log_event(dg.AssetMaterialization(asset_key=key, metadata={"status": ROLLED_BACK, **metadata}))
    else:
        context.log_event(dg.AssetObservation(asset_key=key, metadata={"status": "not applied", **metadata}))
    context.log_event(checks.applied_evaluation(
        key, False, {"state": ROLLED_BACK if ran else "not applied",
                     "rolled_back_by_run": context.run.run_id}))
