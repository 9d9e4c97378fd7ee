"""Legacy source databases for the copy_cross_database tests: SQLite files and MariaDB databases,
seeded with migration_dags.legacy_source, each with a fingerprint that proves it unchanged.

    sqlite_source(folder, rows)   -> LegacySource (a file in `folder`)
    mariadb_source(rows)          -> LegacySource on a fresh MariaDB database; .drop() drops it
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import sqlalchemy as sa

import mariadb_server
from migration_dags.legacy_source import seed_legacy_source, sqlite_url

TABLE = "legacy_customers"


@dataclass
class LegacySource:
    url: str
    drop: Callable[[], None] = lambda: None

    def execute(self, sql: str, **params) -> None:
        """A write of the test's own (never through the copy's read-only engine)."""
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(sql), params)
        finally:
            engine.dispose()

    def rows(self) -> list[tuple]:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {TABLE} ORDER BY id"))]
        finally:
            engine.dispose()

    def fingerprint(self) -> str:
        """Every row of every column, and (for SQLite) the file's bytes."""
        digest = hashlib.sha256(repr(self.rows()).encode())
        if self.url.startswith("sqlite:///"):
            digest.update(Path(self.url[len("sqlite:///"):]).read_bytes())
        return digest.hexdigest()


def sqlite_source(folder: Path, rows: int) -> LegacySource:
    url = sqlite_url(folder / "legacy.db")
    seed_legacy_source(url, rows)
    return LegacySource(url)


def mariadb_source(rows: int) -> LegacySource:
    import pytest

    reason = mariadb_server.unreachable_reason()
    if reason:
        pytest.skip(reason)
    name, url = mariadb_server.create_database()
    seed_legacy_source(url, rows)
    return LegacySource(url, lambda: mariadb_server.drop_database(name))
