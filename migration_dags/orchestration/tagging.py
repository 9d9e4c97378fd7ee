"""The tags every run of a migration carries, wherever it was launched: the UI, `dagster asset
materialize`, the CLI, a schedule, a sensor or an asset backfill.

    migration, step, direction, source, target_host/target_port/target_database,
    migration_dags/database (host:port/dbname: the concurrency key), file_checksum, code_version

Runs launched from the UI's asset graph run Dagster's implicit asset job, which has no tags of its
own, so the first asset or op of a run adds the tags the run lacks (DagsterInstance.add_run_tags),
before it changes anything. Tags already set (the CLI's, a schedule's, a job's) are kept. The
target names a host, port and database, never a user or password.
"""

from __future__ import annotations

from typing import Iterable

import dagster as dg
from dagster._core.storage.tags import (  # Dagster's own tags, not re-exported by `dagster`
    BACKFILL_ID_TAG,
    SCHEDULE_NAME_TAG,
    SENSOR_NAME_TAG,
)

from ..drift import checksum
from ..run_tags import code_version, target_tags
from ..spec import Migration
from ..steps import STEPS

DATABASE_TAG = "migration_dags/database"
RANGES_STEP = "backfill_ranges"  # the key-range asset: its runs are backfill runs


def database_label(url: str) -> str:
    """host:port/dbname of a database URL: the concurrency key, without any password."""
    from psycopg.conninfo import conninfo_to_dict

    from ..db import display_url, libpq_url

    try:
        parts = conninfo_to_dict(libpq_url(url))
    except Exception:  # unreadable: the display form still hides the password
        return display_url(url)
    return f"{parts.get('host', 'local')}:{parts.get('port', '5432')}/{parts.get('dbname', '')}"


def source_of(tags: dict[str, str]) -> str:
    """Who launched the run: our own `source` tag, else Dagster's launcher tags, else the UI."""
    if tags.get("source"):
        return tags["source"]
    for tag, source in ((BACKFILL_ID_TAG, "backfill"), (SENSOR_NAME_TAG, "sensor"),
                        (SCHEDULE_NAME_TAG, "schedule")):
        if tags.get(tag):
            return source
    return "ui"


def steps_of_selection(migration: str, keys: Iterable[dg.AssetKey] | None) -> list[str]:
    """The migration's steps a run's asset selection names, in step order."""
    chosen = {k.path[1] for k in keys or () if len(k.path) == 2 and k.path[0] == migration}
    if RANGES_STEP in chosen:
        chosen.add("backfill")
    return [s for s in STEPS if s in chosen]


def wanted_tags(
    migration: Migration, database_url: str, step: str, direction: str, have: dict[str, str]
) -> dict[str, str]:
    """The tags a run of `migration` should carry that it does not carry yet."""
    wanted = {"migration": migration.name, "step": step, "direction": direction,
              "source": source_of(have), "file_checksum": checksum(migration.file),
              DATABASE_TAG: database_label(database_url), **target_tags(database_url)}
    version = code_version(migration.file)
    if version:
        wanted["code_version"] = version
    return {k: v for k, v in wanted.items() if v and not have.get(k)}


def tag_run(
    context: dg.OpExecutionContext | dg.AssetExecutionContext, migration: Migration,
    database_url: str, direction: str, step: str | None = None,
) -> None:
    """Add the tags the running run lacks; `step` defaults to the steps of its asset selection."""
    run = context.run
    if step is None:  # the run's selection; a job built for its selection (materialize) has none
        selected = run.asset_selection or context.job_def.asset_layer.selected_asset_keys
        step = ",".join(steps_of_selection(migration.name, selected)) or "-"
    missing = wanted_tags(migration, database_url, step, direction, dict(run.tags))
    if missing:
        context.instance.add_run_tags(run.run_id, missing)
