"""MigrationDatabase: the database a migration's assets and rollback job run against.

The URL is resolved when a step runs, never at import (target_database.database_url_for): a
migration's own `database: {url_env: X}` overrides everything; otherwise the resource's
`database_url`, else MIGRATION_DAGS_DATABASE_URL, else the embedded server.
"""

from __future__ import annotations

from typing import Callable

import dagster as dg
from pydantic import Field

from ..engine import ExtraChecks, MigrationEngine
from ..spec import Migration
from ..target_database import database_url_for

# Assets and ops take the resource as a parameter of this name.
RESOURCE_KEY = "migration_database"


class MigrationDatabase(dg.ConfigurableResource):
    """Where migrations run. Leave `database_url` empty to use MIGRATION_DAGS_DATABASE_URL or,
    without it, the embedded PostgreSQL. A migration's `database: {url_env: X}` overrides both."""

    database_url: str | None = Field(
        default=None,
        description="libpq URL of the default target database; empty: MIGRATION_DAGS_DATABASE_URL, "
        "else the embedded server. A migration's database.url_env overrides it.",
    )

    def url_for(self, migration: Migration) -> str:
        return database_url_for(migration, self.database_url)

    def engine(
        self,
        migration: Migration,
        run_id: str,
        log: Callable[[str], None],
        extra_checks: ExtraChecks | None = None,
        allow_changed: bool = False,
        complete_options=None,
    ) -> MigrationEngine:
        return MigrationEngine(
            migration, self.url_for(migration), run_id=run_id, log=log, extra_checks=extra_checks,
            allow_changed=allow_changed, complete_options=complete_options,
        )
