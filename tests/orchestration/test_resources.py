"""Which database a migration runs against (target_database, MigrationDatabase)."""

from __future__ import annotations

import pytest

from migration_dags.errors import MigrationError
from migration_dags.migration_set import MigrationSet
from migration_dags.orchestration.resources import MigrationDatabase
from migration_dags.target_database import database_url_for
from orchestration.samples import ADD_VIEW, write_migration

ORDERS = ADD_VIEW.replace("name: add_view", "name: orders_view").replace(
    "operations:", "database: {url_env: ORDERS_DATABASE_URL}\noperations:"
)


def _load(folder, text):
    write_migration(folder, text)
    return next(iter(MigrationSet.load(folder).migrations.values()))


def test_the_explicit_url_wins_over_the_environment(migrations_dir):
    migration = _load(migrations_dir, ADD_VIEW)

    assert database_url_for(migration, "postgresql://h/explicit") == "postgresql://h/explicit"
    assert MigrationDatabase(database_url="postgresql://h/r").url_for(migration) == "postgresql://h/r"
    # without one: MIGRATION_DAGS_DATABASE_URL (set for every test here)
    assert database_url_for(migration) == "postgresql://postgres@127.0.0.1:1/x"


def test_without_any_url_the_embedded_server_is_used(migrations_dir, monkeypatch):
    migration = _load(migrations_dir, ADD_VIEW)
    monkeypatch.delenv("MIGRATION_DAGS_DATABASE_URL")
    monkeypatch.setattr("migration_dags.embedded.embedded_database_url", lambda: "postgresql://embedded")

    assert MigrationDatabase().url_for(migration) == "postgresql://embedded"


def test_a_migrations_own_url_env_overrides_the_default(migrations_dir, monkeypatch):
    migration = _load(migrations_dir, ORDERS)
    monkeypatch.setenv("ORDERS_DATABASE_URL", "postgresql://h/orders")

    assert database_url_for(migration, "postgresql://h/default") == "postgresql://h/orders"
    assert MigrationDatabase().url_for(migration) == "postgresql://h/orders"


def test_an_unset_url_env_is_an_error_not_the_default_database(migrations_dir, monkeypatch):
    migration = _load(migrations_dir, ORDERS)
    monkeypatch.delenv("ORDERS_DATABASE_URL", raising=False)

    with pytest.raises(MigrationError, match=r"database.url_env: .*\$ORDERS_DATABASE_URL, which is not set"):
        database_url_for(migration, "postgresql://h/default")
