"""Which database a migration runs against. Dagster-free, so `plan` and `status` need no Dagster.

A migration that names its own database (`database: {url_env: ORDERS_DATABASE_URL}`) always runs
against that variable's URL, whatever the default is: a --database-url meant for the default
database must not send it to the wrong one. If the variable is not set, that is an error, not a
silent fall back. Every other migration uses the explicit URL (--database-url, the resource's
database_url), else MIGRATION_DAGS_DATABASE_URL, else the embedded server (settings.database_url).
"""

from __future__ import annotations

import os

from . import settings
from .errors import MigrationError
from .spec import Migration


def database_url_for(migration: Migration, explicit: str | None = None) -> str:
    env = migration.database_url_env
    if env is None:
        return settings.database_url(explicit or None)
    if not os.environ.get(env):
        raise MigrationError(
            f"{migration.file}: database.url_env: migration {migration.name} runs against the "
            f"database in ${env}, which is not set; export {env}=postgresql://... and run again"
        )
    return os.environ[env]
