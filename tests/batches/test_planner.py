"""Planning: the key batches address rows by (a table without one is refused clearly), and
partitions cut in key order."""

from __future__ import annotations

import pytest

from batches.items import migration_file, seed_items
from migration_dags import batches as backfill
from migration_dags.engine import MigrationEngine
from migration_dags.errors import NoPrimaryKeyError
from migration_dags.identifiers import TableName
from migration_dags.spec import load_migration
from migration_dags.state import STATE_SCHEMA


def test_table_without_key_is_refused_clearly(conn, database_url, migrations_dir):
    conn.execute("CREATE TABLE items (id int, note text, qty int)")
    with pytest.raises(NoPrimaryKeyError) as info:
        backfill.key_spec(conn, TableName("public", "items"))
    assert "public.items has no primary key or unique NOT NULL key" in str(info.value)
    engine = MigrationEngine(load_migration(migration_file(migrations_dir)), database_url)
    with pytest.raises(NoPrimaryKeyError) as info:
        engine.up("backup")
    assert "fill_label.yaml" in str(info.value) and "public.items" in str(info.value)


def test_partitions_are_cut_in_key_order_not_text_order(conn, database_url, migrations_dir):
    seed_items(conn, rows=1000)
    engine = MigrationEngine(
        load_migration(migration_file(migrations_dir, partition_rows=300)), database_url)
    engine.up("backup")
    engine.up("schema_change")
    ranges = conn.execute(
        f"SELECT lower_key, upper_key FROM {STATE_SCHEMA}.backfill_ranges ORDER BY partition_key"
    ).fetchall()
    assert ranges == [(None, ["300"]), (["300"], ["600"]), (["600"], ["900"]), (["900"], None)]
