"""Progress: rows done and total of the partition and its table, rate, ETA, the log line."""

from __future__ import annotations

from batches.items import migration_file, seed_items
from migration_dags import batches as backfill
from migration_dags.engine import MigrationEngine
from migration_dags.spec import load_migration
from migration_dags.state import STATE_SCHEMA


def test_progress_reports_rows_total_rate_and_eta(conn, database_url, migrations_dir):
    seed_items(conn, rows=600)
    lines = []
    engine = MigrationEngine(
        load_migration(migration_file(migrations_dir, batch_size=100, partition_rows=10_000)),
        database_url, log=lines.append)
    engine.up("backup")
    engine.up("schema_change")
    ctx = engine.context(conn)
    [(key, _d, _n)] = backfill.partitions_status(conn, "fill_label")
    seen = []
    backfill.run_partition(conn, "fill_label", key, engine.backfill_tasks(ctx), 100,
                           on_batch=seen.append)
    assert [p.rows_done for p in seen] == [100, 200, 300, 400, 500, 600]
    assert all(p.rows_total == 600 and p.table_rows_total == 600 for p in seen)
    assert all(p.rows_per_s > 0 and p.eta_s is not None for p in seen)
    assert seen[-1].done and seen[-1].eta_s == 0 and seen[-1].table_rows_done == 600
    meta = seen[-1].as_metadata()
    assert meta["rows_total_estimate"] == 600 and meta["done"] is True
    line = backfill.progress_line(seen[2])
    assert "300/~600 rows" in line and "rows/s" in line and "ETA" in line
    # the engine logs the same lines (at most every 2 s, and always the last)
    conn.execute(f"UPDATE {STATE_SCHEMA}.backfill_ranges SET done = false, position_key = NULL")
    engine.up("backfill")
    assert any("backfill 00-00000" in ln and "(done)" in ln for ln in lines)
