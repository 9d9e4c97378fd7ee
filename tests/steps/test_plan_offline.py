"""`plan --offline`: every step's SQL from the migration file alone, with no database."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_dags.engine import MigrationEngine
from migration_dags.migration_set import MigrationSet
from migration_dags.steps import STEPS
from pg_server import REPO

pytestmark = pytest.mark.offline
NO_DATABASE = "postgresql://nobody@127.0.0.1:1/nothing"


def offline_plan(folder: Path, name: str) -> dict[str, list[str]]:
    return MigrationEngine(MigrationSet.load(folder).get(name), NO_DATABASE).plan(offline=True)


def test_shipped_migration_renders_every_step_offline():
    plan = offline_plan(REPO / "assets", "add_email_verification")
    assert list(plan) == list(STEPS)
    assert plan["backup"] == [
        "-- copy public.users into migration_dags_backup (REPEATABLE READ), count rows, fingerprint"]
    schema_change = "\n".join(plan["schema_change"])
    assert 'ALTER TABLE "public"."users" ADD COLUMN IF NOT EXISTS "email_verified" boolean DEFAULT false;' in schema_change
    assert plan["backfill"][0].startswith("-- set email_verified of public.users, in key-range batches of 10000")
    # a plain index on the table the batches update is built after them, not maintained by them
    assert "users_verification_token_idx" not in schema_change
    backfill = "\n".join(plan["backfill"])
    assert "-- once every key range is done:" in backfill
    # what only the live catalog decides is a guarded statement
    assert "-- only if: SELECT NOT (SELECT EXISTS (SELECT 1 FROM pg_class" in backfill
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"users_verification_token_idx\"" in backfill
    assert "SET NOT NULL" in "\n".join(plan["cutover"])


def test_placeholders_stand_where_only_the_catalog_knows(migrations_dir):
    (migrations_dir / "widen.yaml").write_text(
        "name: widen\noperations:\n"
        "  - alter_column: {table: items, column: price, type: 'numeric(12,2)', up: 'price', down: 'price'}\n"
        "  - add_column: {table: items, column: {name: n, type: int, nullable: false}, up: '1'}\n")
    plan = offline_plan(migrations_dir, "widen")
    text = "\n".join(line for step in plan.values() for line in step)
    assert 'CREATE VIEW "public_widen"."items"' in text  # the version schema (expand/)
    assert "WHERE (<key range>)" in text  # batches are cut over the live key at run time


