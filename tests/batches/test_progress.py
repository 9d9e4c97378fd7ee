"""Progress: rows done and total of the partition and its table, rate, ETA, the log line."""

from __future__ import annotations

import io

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


def _progress(done, rows_done, total=1000):
    return backfill.BatchProgress("00-00000", rows_done, 1, 1.0, done, rows_done, total, 500.0,
                                  None if done else (total - rows_done) / 500, table="public.t")


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_a_terminal_gets_a_bar_redrawn_in_place_and_a_pipe_gets_plain_lines():
    tty, pipe = _Stream(True), _Stream(False)
    for stream in (tty, pipe):
        show = backfill.terminal_progress(stream, every_s=3600)
        show(_progress(False, 500))
        show(_progress(False, 600))  # within the interval: a pipe gets nothing
        show(_progress(True, 1000))
    assert tty.getvalue().startswith("\r\x1b[Kmigration-dags: backfill public.t [")
    assert "50% 500/~1,000 rows 500 rows/s ETA 1s" in tty.getvalue()
    assert tty.getvalue().endswith("100% 1,000/~1,000 rows 500 rows/s\n")
    lines = pipe.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("migration-dags: backfill 00-00000: ")
                                   for line in lines)
    assert lines[1].endswith("(done)")


def test_a_large_partition_shows_an_estimate_and_ends_on_what_it_held(conn, database_url, migrations_dir,
                                                                       monkeypatch):
    from migration_dags.batches import progress

    monkeypatch.setattr(progress, "COUNT_EXACTLY_UP_TO", 10)  # every range "large": estimated
    seed_items(conn, rows=600)
    conn.execute("ANALYZE items")
    engine = MigrationEngine(
        load_migration(migration_file(migrations_dir, batch_size=100, partition_rows=10_000)),
        database_url)
    engine.up("backup")
    engine.up("schema_change")
    conn.execute("DELETE FROM items WHERE id > 300")  # the statistics still say 600
    [(key, _d, _n)] = backfill.partitions_status(conn, "fill_label")
    seen = []
    backfill.run_partition(conn, "fill_label", key, engine.backfill_tasks(engine.context(conn)),
                           100, on_batch=seen.append)
    assert seen[0].rows_total == 600  # the planner's estimate, shown as "~600"
    assert seen[-1].done and seen[-1].rows_done == seen[-1].rows_total == 300
