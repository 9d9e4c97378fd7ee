"""The batched backfill: resumable after a kill at any moment, misses no live write, works over
any orderable key, refuses tables without a key, plans ranges in key order, reports progress."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psycopg
import pytest

from migration_dags import batches as backfill
from migration_dags.batches.ledger import BatchRange, Ledger
from migration_dags.engine import MigrationEngine
from migration_dags.errors import NoPrimaryKeyError
from migration_dags.identifiers import TableName
from migration_dags.spec import load_migration
from migration_dags.state import STATE_SCHEMA

UP = "coalesce(note, 'none') || ':' || coalesce((qty * 2)::text, '-')"


def migration_file(folder, table="items", batch_size=50, partition_rows=400, up=UP, pause_ms=0):
    path = folder / "fill_label.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: fill_label
        tables: [{table}]
        settings: {{batch_size: {batch_size}, partition_rows: {partition_rows}, batch_pause_ms: {pause_ms}}}
        operations:
          - add_column:
              table: {table}
              column: {{name: label, type: text, nullable: false}}
              up: "{up}"
        """))
    return path


def seed_items(conn, rows=2000, key="id int PRIMARY KEY", key_expr="g"):
    conn.execute(f"CREATE TABLE items ({key}, note text, qty int)")
    conn.execute(
        f"""INSERT INTO items SELECT {key_expr}, CASE WHEN g %% 3 = 0 THEN NULL ELSE 'n' || g END,
            CASE WHEN g %% 5 = 0 THEN NULL ELSE g END FROM generate_series(1, %s) g""",
        (rows,),
    )
    # the reference: the same change made by one plain UPDATE
    conn.execute("CREATE TABLE reference AS SELECT * FROM items")
    conn.execute(f"ALTER TABLE reference ADD COLUMN label text")
    conn.execute(f"UPDATE reference SET label = {UP}")


def differences(conn, key_cols="id"):
    return conn.execute(
        f"""SELECT count(*) FROM (
              (SELECT {key_cols}, note, qty, label FROM items EXCEPT ALL
               SELECT {key_cols}, note, qty, label FROM reference)
              UNION ALL
              (SELECT {key_cols}, note, qty, label FROM reference EXCEPT ALL
               SELECT {key_cols}, note, qty, label FROM items)) d"""
    ).fetchone()[0]


def rows_done(conn):
    return conn.execute(
        f"SELECT coalesce(sum(rows_done), 0) FROM {STATE_SCHEMA}.backfill_ranges"
    ).fetchone()[0]


def test_killed_backfill_resumes_with_only_what_is_left(conn, database_url, migrations_dir):
    seed_items(conn, rows=3000)
    path = migration_file(migrations_dir, batch_size=40, pause_ms=15)
    engine = MigrationEngine(load_migration(path), database_url)
    engine.up("backup")
    engine.up("schema_change")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            from pathlib import Path
            from migration_dags.engine import MigrationEngine
            from migration_dags.spec import load_migration
            MigrationEngine(load_migration(Path({str(path)!r})), {database_url!r}).up("backfill")
            """)],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        deadline = time.monotonic() + 30
        while rows_done(conn) < 600 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    before = rows_done(conn)
    assert child.returncode == -signal.SIGKILL
    assert 600 <= before < 3000, "the kill did not land mid-backfill"

    report = MigrationEngine(load_migration(path), database_url).up("backfill")

    # only what was left: every row changed exactly once over both runs
    assert report.extra["rows"] == 3000 - before
    assert rows_done(conn) == 3000
    assert differences(conn) == 0
    # the killed run's session is gone: nothing holds the migration lock any more
    engine.up("validation")
    engine.up("cutover")
    assert differences(conn) == 0


def test_rerun_after_a_failure_mid_partition_redoes_no_batch(conn, database_url, migrations_dir):
    seed_items(conn, rows=500)
    path = migration_file(migrations_dir, batch_size=30, partition_rows=1000)
    engine = MigrationEngine(load_migration(path), database_url)
    engine.up("backup")
    engine.up("schema_change")
    ctx = engine.context(conn)
    tasks = engine.backfill_tasks(ctx)
    [key] = backfill.partitions_status(conn, "fill_label")[0][:1]

    class Crash(Exception):
        pass

    def crash_after_four(p):
        if p.batches == 4:
            raise Crash

    with pytest.raises(Crash):
        backfill.run_partition(conn, "fill_label", key, tasks, 30, on_batch=crash_after_four)
    assert rows_done(conn) == 120
    seen = []
    result = backfill.run_partition(conn, "fill_label", key, tasks, 30, on_batch=seen.append)
    assert result.rows == 380 and result.rows_scanned == 380
    assert seen[0].rows_done == 150 and seen[0].rows_total == 500
    assert differences(conn) == 0


def writer(url, stop, errors, seed, max_id):
    rnd = random.Random(seed)
    try:
        with psycopg.connect(url, autocommit=True) as c:
            next_id = 1_000_000 + seed * 100_000
            while not stop.is_set():
                kind = rnd.random()
                if kind < 0.4:
                    c.execute("UPDATE items SET qty = %s, note = %s WHERE id = %s",
                              (rnd.randint(1, 99), rnd.choice([None, "w"]), rnd.randint(1, max_id)))
                elif kind < 0.7:
                    next_id += 1
                    c.execute("INSERT INTO items (id, note, qty) VALUES (%s, %s, %s)",
                              (next_id, rnd.choice([None, "new"]), rnd.choice([None, 7])))
                elif kind < 0.8:
                    next_id += 1  # an insert below the first key, and one past the last
                    c.execute("INSERT INTO items (id, note, qty) VALUES (%s, 'edge', 1)",
                              (-next_id if rnd.random() < 0.5 else next_id,))
                else:
                    c.execute("DELETE FROM items WHERE id = %s", (rnd.randint(1, max_id),))
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_concurrent_inserts_and_updates_are_never_missed(conn, database_url, migrations_dir):
    seed_items(conn, rows=4000)
    path = migration_file(migrations_dir, batch_size=50, partition_rows=1000, pause_ms=5)
    engine = MigrationEngine(load_migration(path), database_url)
    engine.up("backup")
    engine.up("schema_change")
    stop, errors = threading.Event(), []
    threads = [threading.Thread(target=writer, args=(database_url, stop, errors, i, 4000))
               for i in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        report = engine.up("backfill")
        time.sleep(0.2)  # writes after the backfill too: the trigger alone covers them
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert report.extra["partitions_done"] == report.extra["partitions_total"]
    written = conn.execute("SELECT count(*) FROM items WHERE id > 4000 OR id < 0").fetchone()[0]
    assert written > 20, "the writers hardly wrote: the test proved nothing"
    # validation ends the migration loud if any row was missed; then every row is checked here
    engine.migration.validation = type(engine.migration.validation)("any", ())
    engine.up("validation")
    engine.up("cutover")
    bad = conn.execute(f"SELECT count(*) FROM items WHERE label IS DISTINCT FROM ({UP})").fetchone()[0]
    assert bad == 0


KEYS = {
    "text": ("id text PRIMARY KEY", "'k' || lpad((g * 7919 % 1000)::text, 4, '0') || chr(65 + g % 26)", "id"),
    "uuid": ("id uuid PRIMARY KEY", "md5(g::text)::uuid", "id"),
    "composite int, text": ("a int, b text, PRIMARY KEY (a, b)", "g % 17, 'b' || g", "a, b"),
    "unique not null, no primary key": ("id bigint NOT NULL UNIQUE", "g * 3", "id"),
}


@pytest.mark.parametrize("kind", list(KEYS))
def test_any_orderable_key(conn, database_url, migrations_dir, kind):
    columns, values, key_cols = KEYS[kind]
    names = ", ".join(c.strip() for c in key_cols.split(","))
    conn.execute(f"CREATE TABLE items ({columns}, note text, qty int)")
    conn.execute(
        f"""INSERT INTO items ({names}, note, qty) SELECT {values},
            CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END, CASE WHEN g % 5 = 0 THEN NULL ELSE g END
            FROM generate_series(1, 300) g"""
    )
    conn.execute("CREATE TABLE reference AS SELECT * FROM items")
    conn.execute("ALTER TABLE reference ADD COLUMN label text")
    conn.execute(f"UPDATE reference SET label = {UP}")
    path = migration_file(migrations_dir, batch_size=7, partition_rows=40)
    engine = MigrationEngine(load_migration(path), database_url)
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    partitions = backfill.partitions_status(conn, "fill_label")
    assert len(partitions) >= 7 and all(done for _k, done, _n in partitions)
    assert sum(n for _k, _d, n in partitions) == 300
    assert differences(conn, names) == 0


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


def test_out_of_order_commits_never_move_the_saved_position_past_a_running_batch():
    """Two batches at once: the later one may commit first; the position waits for the earlier."""

    class Recorder:
        def __init__(self):
            self.writes = []

        def execute(self, sql, params):
            self.writes.append(params[0] if "position_key" in sql else "rows only")

    ledger = Ledger("m", "p")
    first, second, third = (BatchRange(lo, hi, 10, last)
                            for lo, hi, last in ((None, ["10"], False), (["10"], ["20"], False),
                                                 (["20"], None, True)))
    for rng in (first, second, third):
        ledger.add(rng)
    conn = Recorder()
    ledger.committed(second, ledger.save(conn, second, 10))
    assert conn.writes == ["rows only"] and not ledger.all_saved()
    ledger.committed(first, ledger.save(conn, first, 10))
    assert conn.writes[-1] == '["20"]'  # over both: the second had committed already
    ledger.committed(third, ledger.save(conn, third, 10))
    assert conn.writes[-1] is None and ledger.all_saved()  # the end of an unbounded range
