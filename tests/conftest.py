"""Shared fixtures: a real PostgreSQL, a fresh database per test, dropped afterwards.

The server is MIGRATION_DAGS_TEST_SERVER (a libpq URL of a database to connect to for CREATE
DATABASE), by default postgres at 127.0.0.1:5432.  `.ci/run` starts it when it is not running.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import psycopg
import pytest

SERVER_URL = os.environ.get(
    "MIGRATION_DAGS_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count()


def _url_for(db: str) -> str:
    return re.sub(r"/[^/?]*(\?|$)", f"/{db}\\1", SERVER_URL.rstrip("/"), count=1) if "/" in SERVER_URL.split("://", 1)[1] else f"{SERVER_URL}/{db}"


def create_database(prefix: str = "mdg_test") -> tuple[str, str]:
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, _url_for(name)


def drop_database(name: str) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
