"""Fixtures for the Dagster wiring: a seeded database, a migrations folder, a Dagster instance."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration.samples import seed_items


@pytest.fixture(autouse=True)
def no_embedded_server(monkeypatch):
    """Nothing here may start the embedded server: a forgotten URL fails fast instead."""
    monkeypatch.setenv("MIGRATION_DAGS_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/x")


@pytest.fixture
def items_url(database_url):
    """A fresh database holding the 200-row `items` table."""
    seed_items(database_url)
    return database_url


@pytest.fixture
def instance(dagster_home):
    """The instance at the test's DAGSTER_HOME (SQLite in a temporary folder)."""
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.get() as inst:
        yield inst
