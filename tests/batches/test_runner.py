"""Running partitions: resumable after a kill at any moment, redoes no committed batch, misses no
live write, works over any orderable key."""

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

from batches.items import UP, differences, migration_file, rows_done, seed_items
from migration_dags import batches as backfill
from migration_dags.engine import MigrationEngine
from migration_dags.expand import CompleteOptions
from migration_dags.spec import load_migration


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
    engine.complete_options = CompleteOptions(quiet_seconds=0)  # the writers stopped just now
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
