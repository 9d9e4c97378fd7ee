"""<migration>__rollback: the down steps in reverse, one op each, chained so each starts only after
the one before succeeded:

    cutover -> validation -> backfill -> schema_change -> backup

The last op, backup down, proves every touched table equals its pre-migration backup (schema and
data fingerprints) before dropping the backup; a mismatch fails the job and keeps the backup.
Each op records the step's metadata on its output and as an observation of the step's asset, so
the asset's page shows the rollback too.
"""

import time

import dagster as dg

from ..run_tags import allows_changed
from ..spec import Migration
from ..steps import DOWN_ORDER
from . import partitions
from .assets import step_key
from .metadata import step_metadata
from .resources import MigrationDatabase


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
        engine = migration_database.engine(migration, context.run.run_id, context.log.info,
                                           allow_changed=allows_changed(context.run.tags))
        report = engine.down(step)
        if step == "schema_change":
            partitions.clear(context.instance, migration.name)
        metadata = step_metadata(report, time.monotonic() - started)
        context.log_event(dg.AssetObservation(asset_key=step_key(migration.name, step), metadata=metadata))
        context.add_output_metadata(metadata)

    return down
