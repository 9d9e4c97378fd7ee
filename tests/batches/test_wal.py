"""What plan says about a backfill's WAL: nothing while it fits in max_wal_size, else the setting
to raise, sized from the table."""

from __future__ import annotations

from batches.items import migration_file, seed_items
from migration_dags.batches import wal
from migration_dags.engine import MigrationEngine
from migration_dags.identifiers import TableName
from migration_dags.spec import load_migration

USERS = TableName("public", "users")
GB = 1024 ** 3


def test_a_table_whose_rewrite_fits_in_max_wal_size_gets_no_note():
    assert wal.wal_note(USERS, 200 * 1024 ** 2, GB) is None  # ~800 MB of WAL


def test_a_large_table_gets_the_wal_it_will_write_and_the_setting_to_raise():
    note = wal.wal_note(USERS, 990 * 1024 ** 2, GB)
    assert note == (
        "the backfill rewrites public.users (990 MB with its indexes): expect about 3.9 GB of WAL, "
        "more than max_wal_size (1.0 GB), so checkpoints every few seconds will make the "
        "application's writes wait; for the migration, raise it: ALTER SYSTEM SET max_wal_size = "
        "'8GB'; SELECT pg_reload_conf();")


def test_plan_sizes_the_tables_the_backfill_writes(conn, database_url, migrations_dir, monkeypatch):
    seed_items(conn, rows=600)
    engine = MigrationEngine(load_migration(migration_file(migrations_dir)), database_url)
    assert not any("max_wal_size" in n for n in engine.plan().get("notes", []))
    monkeypatch.setattr(wal, "WAL_PER_TABLE_BYTE", 10 ** 6)  # as if the table were huge
    [note] = [n for n in engine.plan()["notes"] if "max_wal_size" in n]
    assert note.startswith("-- note: the backfill rewrites public.items (")
