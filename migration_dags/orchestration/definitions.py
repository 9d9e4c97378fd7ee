"""One Definitions for every migration in the migrations folder, and `defs` for workspace.yaml.

    dagster dev -w workspace.yaml      # loads migration_dags.orchestration.definitions:defs

The folder is settings.migrations_dir(): --migrations-dir, MIGRATION_DAGS_MIGRATIONS_DIR, ./assets.
Runs use the in-process executor: a migration's steps are sequential, and a subprocess per step
costs seconds each (FACTS.md).
"""

from __future__ import annotations

import os
import warnings
from typing import Iterable

import dagster as dg

from .. import settings
from ..errors import MigrationError
from ..migration_set import MigrationSet
from ..spec import Migration
from .assets import build_migration_assets
from .jobs import build_rollback_job
from .resources import RESOURCE_KEY, MigrationDatabase
from .schedules import build_schedules
from .sensors import build_rollback_sensors


# Dagster 1.13's own @sensor passes `owners=None` to a beta parameter and warns each time the
# sensor is copied, which `dagster dev` does while loading the code location: not the user's doing.
warnings.filterwarnings("ignore", message="Parameter `owners`", category=dg.BetaWarning)


def build_definitions(
    migrations_dir: str | os.PathLike | None = None, database: MigrationDatabase | None = None
) -> dg.Definitions:
    folder = settings.migrations_dir(migrations_dir)
    migrations = MigrationSet.load(folder).ordered()
    from .tenants import expand as expand_tenants  # it imports launch, which imports us

    # a tenants migration is one asset group per tenant (orchestration/tenants.py)
    return definitions_for(expand_tenants(migrations, database and database.database_url), database)


def definitions_for(
    migrations: Iterable[Migration], database: MigrationDatabase | None = None
) -> dg.Definitions:
    migrations = list(migrations)
    database = database or MigrationDatabase()
    rollback_jobs = [build_rollback_job(m) for m in migrations]
    schedules, schedule_jobs = build_schedules(migrations, database)
    return dg.Definitions(
        assets=[a for m in migrations for a in build_migration_assets(m)],
        jobs=rollback_jobs + schedule_jobs,
        sensors=build_rollback_sensors(migrations, rollback_jobs),
        schedules=schedules,
        resources={RESOURCE_KEY: database},
        executor=dg.in_process_executor,
    )


class MigrationsNotLoadable(Exception):
    """A migration file is malformed: the message is the one line to fix it, nothing else."""

    def __init__(self, error: MigrationError):
        super().__init__(f"migration-dags: {error.one_line()}")


@dg.definitions
def defs() -> dg.Definitions:
    """What workspace.yaml loads; lazy, so importing this module reads no migration file."""
    try:
        return build_definitions()
    except MigrationError as exc:
        # `from None`: the user needs the file and field, not the loader's stack.
        raise MigrationsNotLoadable(exc) from None
