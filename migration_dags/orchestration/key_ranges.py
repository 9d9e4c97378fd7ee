"""Running key ranges from an asset, shared by the two assets that run them:

    backfill          (unpartitioned, in the migration's group) every key range not done yet; it
                      records a materialization of each range it ran on the key-range asset
    backfill_ranges   (one partition per key range) the ranges of its run: schedules, partial
                      backfills; the run that finishes the last range records `backfill`
                      materialized too

A run the off-peak schedule launched starts no key range once its window has closed
(refuse_after_window). A batch that fails on the data fails the run, and the rows its batches
committed are recorded truthfully (an observation of the range).
"""

from __future__ import annotations

import time

import dagster as dg

from .. import state
from ..engine import MigrationEngine
from ..errors import BackfillFailedError, RefusedError
from ..reports import StepReport
from . import checks, partitions
from .metadata import step_metadata


def keys_not_done(context: dg.AssetExecutionContext, engine: MigrationEngine) -> list[str]:
    """The Dagster keys of the key ranges still to run (the placeholder when nothing is planned)."""
    keys = partitions.sync(context.instance, engine.migration.name, partitions.planned_keys(engine))
    with engine.connection("key ranges") as conn:
        done = ({k for k, finished, _rows in state.ranges_status(conn, engine.migration.name)
                 if finished} if state.state_exists(conn) else set())
    return [k for k in keys if partitions.engine_partition(k) not in done]


def run_key_ranges(
    context: dg.AssetExecutionContext, engine: MigrationEngine, keys: list[str],
    ranges_key: dg.AssetKey, record_each: bool, backfill_key: dg.AssetKey | None = None,
) -> list[StepReport]:
    """engine.up("backfill", range) for each key in order; with `record_each`, a materialization
    of `ranges_key` per range as it finishes. A failure is observed on `backfill_key` (the
    run's own asset) when given, else on the failing range of `ranges_key`."""
    reports: list[StepReport] = []
    started = time.monotonic()
    try:
        for key in keys:
            refuse_after_window(context, engine.migration.name)
            began = time.monotonic()
            report = engine.up("backfill", partitions.engine_partition(key))
            reports.append(report)
            if record_each:
                context.log_event(dg.AssetMaterialization(
                    asset_key=ranges_key, partition=key,
                    metadata=step_metadata(report, time.monotonic() - began)))
    except BackfillFailedError as exc:
        # the run fails, but the rows its batches committed are counted truthfully
        committed = sum(r.rows for r in reports) + exc.committed_rows
        context.log_event(dg.AssetObservation(
            asset_key=backfill_key or ranges_key,
            partition=None if backfill_key else keys[len(reports)],
            metadata={"direction": "up", "rows_affected": committed, "error": exc.one_line(),
                      "key_range": keys[len(reports)],
                      "duration_s": round(time.monotonic() - started, 3)}))
        raise
    return reports


def record_backfill_done(
    context: dg.AssetExecutionContext, engine: MigrationEngine, backfill_key: dg.AssetKey
) -> None:
    """After a run of key ranges: if it finished the last one, `backfill` is applied now; record
    it on the backfill asset so the migration's graph says so."""
    status = engine.status()
    applied = status.steps["backfill"]
    if not applied.applied or applied.run_id != context.run.run_id:
        return
    metadata = {"status": "applied", "note": "every key range done; the last ones in this run",
                "partitions_total": status.backfill.partitions_total}
    context.log_event(dg.AssetMaterialization(asset_key=backfill_key, metadata=metadata))
    context.log_event(checks.applied_evaluation(
        backfill_key, True, {"applied_by_run": applied.run_id, "applied_at": applied.applied_at or ""}))


def refuse_after_window(context: dg.AssetExecutionContext, migration: str) -> None:
    """A run the off-peak schedule launched starts no key range once its window has closed; the
    ranges left wait for the next window (what this run finished stays done)."""
    from .schedules import window_closed

    closed = window_closed(context.run.tags)
    if closed is not None:
        raise RefusedError(
            f"{migration}: the off-peak window closed at {closed.isoformat()}; the key ranges "
            "not done yet start in the next window")
