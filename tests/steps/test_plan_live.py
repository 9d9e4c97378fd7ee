"""The live plan of the shipped migration equals the offline one where the file decides
everything (no placeholder needed), and changes nothing."""

from __future__ import annotations

from migration_dags.demo import seed_users
from migration_dags.engine import MigrationEngine
from migration_dags.migration_set import MigrationSet
from pg_server import REPO


def test_live_and_offline_plans_agree_for_the_shipped_migration(database_url):
    seed_users(database_url, 100)
    migration = MigrationSet.load(REPO / "assets").get("add_email_verification")
    live = MigrationEngine(migration, database_url).plan()
    offline = MigrationEngine(migration, "postgresql://nobody@127.0.0.1:1/x").plan(offline=True)
    assert live == offline
