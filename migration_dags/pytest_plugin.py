"""pytest plugin (entry point `pytest11`, active once migration-dags is installed): `verify` as a
fixture, for teams whose CI is a pytest run (like pytest-alembic's tests, but on data).

    def test_migrations_are_reversible(migration_verify):
        report = migration_verify()                       # every migration, the configured database
        assert report.passed, report.failures()

    def test_one(migration_verify):
        migration_verify("add_email_verification", sample_rows=1000).assert_passed()

The database is --database-url's, else MIGRATION_DAGS_DATABASE_URL (or the migration's own
database.url_env); the folder is MIGRATION_DAGS_MIGRATIONS_DIR, else ./assets. Importing this
module is cheap: the engine is imported only when the fixture is used.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest


class VerifyFixtureReport:
    """A VerifyReport with pytest-friendly helpers."""

    def __init__(self, report: Any):
        self.report = report
        self.checks = report.checks

    @property
    def passed(self) -> bool:
        return self.report.passed

    def failures(self) -> str:
        return "\n".join(f"{c.migration}: {c.check}: {c.detail}" for c in self.checks if not c.passed)

    def assert_passed(self) -> None:
        if not self.passed:
            pytest.fail("migration-dags verify found problems:\n" + self.failures(), pytrace=False)


@pytest.fixture
def migration_verify() -> Callable[..., VerifyFixtureReport]:
    """verify(*names, database_url=, migrations_dir=, sample_rows=, exclude_rules=) -> report
    with .passed, .checks, .failures() and .assert_passed(); see `migration-dags verify`."""
    def run(*names: str, database_url: str | None = None, migrations_dir: str | None = None,
            sample_rows: int | None = None, exclude_rules: tuple[str, ...] = ()) -> VerifyFixtureReport:
        from . import settings
        from .migration_set import MigrationSet
        from .target_database import database_url_for
        from .verify import verify

        migrations = MigrationSet.load(settings.migrations_dir(migrations_dir))
        chosen = [migrations.get(n) for n in names] if names else migrations.ordered()
        return VerifyFixtureReport(verify(
            chosen, lambda m: database_url_for(m, database_url),
            sample_rows=sample_rows, exclude_rules=tuple(exclude_rules)))

    return run
