"""Shared fixtures: a real PostgreSQL, a fresh database per test, dropped afterwards.

The server is MIGRATION_DAGS_TEST_SERVER (a libpq URL of a database to connect to for CREATE
DATABASE), by default postgres at 127.0.0.1:5432.  `.ci/run` starts it when it is not running.
"""

from __future__ import annotations

import psycopg
import pytest

from pg_server import REPO, SERVER_URL, create_database, drop_database, unreachable_reason  # noqa: F401


@pytest.fixture
def database_url():
    """A fresh, empty database for one test."""
    name, url = create_database()
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


@pytest.fixture
def migrations_dir(tmp_path):
    """An empty folder for migration files written by the test."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    return folder


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


# -- test tiers -----------------------------------------------------------------------------------
# A test is `db` (needs PostgreSQL) unless its module says `pytestmark = pytest.mark.offline`;
# `pytest -m "not db"` runs the offline tier in seconds. An offline test that tries to connect
# fails, so the marker cannot lie.
def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("offline") is None:
            item.add_marker(pytest.mark.db)


def pytest_configure(config):
    """Our own pytest plugin (the migration_verify fixture), also where the package is on
    PYTHONPATH but not installed, so its pytest11 entry point is not there."""
    import migration_dags.pytest_plugin as plugin

    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "migration_dags")


def pytest_collection_finish(session):
    """Selected db tests and no server: one line naming the server, not a failure per test."""
    if any(item.get_closest_marker("db") for item in session.items):
        reason = unreachable_reason()
        if reason:
            pytest.exit(reason, returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(autouse=True)
def _offline_tests_never_connect(request, monkeypatch):
    if request.node.get_closest_marker("offline") is None:
        return

    def refuse(*_args, **_kwargs):
        raise AssertionError("an offline test tried to connect to a database")

    monkeypatch.setattr(psycopg, "connect", refuse)
    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(refuse))
