"""A step's StepReport as Dagster metadata: the SQL it ran, rows, duration, lock waits, retries,
and each step's own figures (backup tables, backfill throughput, validation checks, rollback proof).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from ..reports import StepReport

# A backfill over many partitions runs the same statement once per partition; show a few.
MAX_STATEMENTS_SHOWN = 20


def sql_markdown(reports: list[StepReport]) -> dg.MetadataValue:
    results = [r for report in reports for r in report.results if r.ran]
    if not results:
        return dg.MetadataValue.md("_no SQL ran_")
    shown = "\n\n".join(r.action.render() for r in results[:MAX_STATEMENTS_SHOWN])
    more = len(results) - MAX_STATEMENTS_SHOWN
    tail = f"\n\n-- ... and {more} more statements of the same shape" if more > 0 else ""
    return dg.MetadataValue.md(f"```sql\n{shown}{tail}\n```")


def step_metadata(reports: StepReport | list[StepReport], wall_s: float) -> dict[str, Any]:
    """Metadata for one step; a backfill over several partitions passes one report per partition."""
    reports = reports if isinstance(reports, list) else [reports]
    first = reports[0]
    metadata: dict[str, Any] = {
        "direction": first.direction,
        "sql": sql_markdown(reports),
        "statements": sum(1 for rep in reports for r in rep.results if r.ran),
        "rows_affected": sum(rep.rows for rep in reports),
        "duration_s": round(wall_s, 3),
        "lock_wait_s": round(sum(rep.lock_wait_s for rep in reports), 3),
        "retries": sum(rep.retries for rep in reports),
    }
    skipped = [rep.skipped_reason for rep in reports if rep.skipped_reason]
    if skipped and len(skipped) == len(reports):
        metadata["skipped"] = skipped[0]
    extra = first.extra
    if "tables" in extra:
        metadata["backup_tables"] = dg.MetadataValue.json(extra["tables"])
    if "partitions" in extra:
        metadata["partitions_planned"] = len(extra["partitions"])
    if "proof" in extra:
        metadata["proof"] = dg.MetadataValue.json(extra["proof"])
    if "conflicts" in extra:  # restore: rows the application and the migration both changed
        metadata["conflicts"] = dg.MetadataValue.json(extra["conflicts"])
    if "file_changed" in extra:  # --allow-changed: how the file differs from the one applied
        metadata["file_changed"] = extra["file_changed"]
    if "migration_state" in extra:  # expanded after validation, complete after cutover
        metadata["migration_state"] = extra["migration_state"]
    if "old_shape_writes" in extra:  # what complete saw before contracting (expand/)
        metadata["old_shape_writes"] = dg.MetadataValue.json(extra["old_shape_writes"])
    if extra.get("forced"):
        metadata["forced"] = True
    for recorded in ("target_database", "file_checksum"):  # every run, UI-launched ones too
        if recorded in extra:
            metadata[recorded] = extra[recorded]
    return metadata


def backfill_metadata(
    reports: list[StepReport], wall_s: float, partitions_done: int, partitions_total: int
) -> dict[str, Any]:
    metadata = step_metadata(reports, wall_s)
    rows = metadata["rows_affected"]
    busy_s = sum(r.duration_s for rep in reports for r in rep.results)
    metadata.update({
        "rows_per_s": round(rows / busy_s, 1) if busy_s > 0 else 0.0,
        "partitions_in_run": len(reports),
        "partitions_done": partitions_done,
        "partitions_total": partitions_total,
    })
    return metadata
