"""Zero downtime: DDL waits at most lock_timeout per try and gives up cleanly; a backfill batch
gives way to a client's lock and steps aside for clients waiting on it; the backfill pauses for
long transactions, replica lag and its fixed pause.  How fast, and clients' latency under traffic:
bench/backfill_bench.py (no wall-clock assertions here)."""

from __future__ import annotations

import textwrap
import threading
import time

import psycopg
import pytest

from migration_dags import batches as backfill
from migration_dags.engine import MigrationEngine
from migration_dags.errors import LockTimeoutExhaustedError
from migration_dags.identifiers import TableName
from migration_dags.operations.base import RANGE_PLACEHOLDER, BackfillTask
from migration_dags.spec import load_migration
from migration_dags.state import STATE_SCHEMA, ensure_state_tables
from migration_dags.batches.throttle import Throttle, ThrottleSettings

QUIET = dict(max_client_wait_ms=0, max_transaction_age_s=0, max_replication_lag_s=0,
             check_interval_s=0.05)


def write_migration(folder, text):
    text = textwrap.dedent(text)
    name = text.split("name:", 1)[1].split()[0]
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return load_migration(path)


class Client(threading.Thread):
    """Runs `sql` every 10 ms on its own connection and records each latency."""

    def __init__(self, url, sql):
        super().__init__(daemon=True)
        self.url, self.sql = url, sql
        self.latencies: list[float] = []
        self.errors: list[Exception] = []
        self.stop = threading.Event()

    def run(self):
        with psycopg.connect(self.url, autocommit=True) as c:
            while not self.stop.is_set():
                t = time.monotonic()
                try:
                    c.execute(self.sql)
                except psycopg.Error as exc:
                    self.errors.append(exc)
                self.latencies.append(time.monotonic() - t)
                time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.join()
        return max(self.latencies)


def hold_lock(url, table, mode="ACCESS SHARE"):
    """An open transaction holding a lock on `table`, as a long report or a forgotten session."""
    holder = psycopg.connect(url)
    holder.execute(f"LOCK TABLE {table} IN {mode} MODE")
    return holder


def test_ddl_waits_one_lock_timeout_per_try_and_clients_are_not_queued_longer(
        conn, database_url, migrations_dir):
    conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
    conn.execute("INSERT INTO accounts SELECT g, g FROM generate_series(1, 100) g")
    engine = MigrationEngine(write_migration(migrations_dir, """
        name: add_flag
        tables: [accounts]
        settings: {lock_timeout_ms: 200, retries: 30}
        operations:
          - add_column: {table: accounts, column: {name: flag, type: boolean}}
        """), database_url)
    engine.up("backup")
    holder = hold_lock(database_url, "accounts")
    client = Client(database_url, "SELECT balance FROM accounts WHERE id = 7")
    client.start()
    releaser = threading.Timer(1.5, holder.commit)
    releaser.start()
    try:
        report = engine.up("schema_change")
    finally:
        releaser.join()
        worst = client.finish()
        holder.close()
    [add] = [r for r in report.results if r.action.description.startswith("add column")]
    assert add.attempts >= 3  # waited one lock_timeout, gave way, tried again (how long: bench/)
    assert not client.errors and worst > 0


def test_exhausted_retries_fail_the_step_and_undo_its_partial_work(conn, database_url, migrations_dir):
    conn.execute("CREATE TABLE a (id int PRIMARY KEY)")
    conn.execute("CREATE TABLE b (id int PRIMARY KEY)")
    holder = None

    def release_when_undoing(message):
        if "undoing" in message and holder is not None:
            holder.commit()

    engine = MigrationEngine(write_migration(migrations_dir, """
        name: two_tables
        tables: [a, b]
        settings: {lock_timeout_ms: 100, retries: 2}
        operations:
          - add_column: {table: a, column: {name: x, type: int}}
          - add_column: {table: b, column: {name: y, type: int}}
        """), database_url, log=release_when_undoing)
    engine.up("backup")
    holder = hold_lock(database_url, "b")
    try:
        with pytest.raises(LockTimeoutExhaustedError) as info:
            engine.up("schema_change")
    finally:
        holder.close()
    assert "after 3 tries of 100 ms" in str(info.value)
    columns = {r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid IN ('a'::regclass, 'b'::regclass) "
        "AND attnum > 0 AND NOT attisdropped")}
    assert columns == {"id"}, "the column added to a was not taken back"
    assert engine.status().is_applied("schema_change") is False


# -- the backfill and its clients ---------------------------------------------------------------
def plan_one(conn, table, statement, pending, partition_rows=100_000):
    ensure_state_tables(conn)
    task = BackfillTask("test task", table, statement, pending)
    [key] = backfill.plan_partitions(conn, "t", [task], partition_rows)
    return task, key


def slow_task(conn, rows, ms_per_row):
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, x int, y int)")
    conn.execute("INSERT INTO t SELECT g, g, NULL FROM generate_series(1, %s) g", (rows,))
    # each row costs ms_per_row (pg_sleep in the SET list runs per row)
    return plan_one(
        conn, TableName("public", "t"),
        f"UPDATE t SET y = x * 2 + length(pg_sleep({ms_per_row / 1000})::text) "
        f"WHERE {RANGE_PLACEHOLDER} AND y IS DISTINCT FROM x * 2",
        "y IS DISTINCT FROM x * 2")


def test_a_batch_gives_way_to_a_clients_row_lock_and_tries_again(conn, database_url):
    task, key = slow_task(conn, 300, ms_per_row=0)
    client = psycopg.connect(database_url)
    client.execute("UPDATE t SET x = x WHERE id = 5")  # a client transaction holding row 5
    releaser = threading.Timer(0.3, client.commit)
    releaser.start()
    try:
        result = backfill.run_partition(conn, "t", key, [task], 100, lock_timeout_ms=20,
                                        throttle=Throttle(ThrottleSettings(**QUIET)))
    finally:
        releaser.join()
        client.close()
    assert result.retries >= 1 and result.rows == 300  # it waited for the client, not the reverse
    assert conn.execute("SELECT count(*) FROM t WHERE y IS DISTINCT FROM x * 2").fetchone()[0] == 0


def test_clients_waiting_on_a_batch_make_the_backfill_step_aside(conn, database_url):
    task, key = slow_task(conn, 600, ms_per_row=2)  # a 300-row batch holds its rows ~0.6 s
    waited = []

    def client():
        time.sleep(0.2)  # the first batch has locked row 5 by now
        with psycopg.connect(database_url, autocommit=True) as c:
            t = time.monotonic()
            c.execute("UPDATE t SET x = x WHERE id = 5")
            waited.append(time.monotonic() - t)

    thread = threading.Thread(target=client)
    thread.start()
    gate = Throttle(ThrottleSettings(**{**QUIET, "max_client_wait_ms": 50, "check_interval_s": 0}))
    result = backfill.run_partition(conn, "t", key, [task], 300, throttle=gate)
    thread.join()
    assert result.pauses.get("lock waiters", 0) > 0 and waited
    assert conn.execute("SELECT count(*) FROM t WHERE y IS DISTINCT FROM x * 2").fetchone()[0] == 0


def test_pause_while_a_transaction_older_than_the_limit_is_open(conn, database_url):
    task, key = slow_task(conn, 200, ms_per_row=0)
    old = psycopg.connect(database_url)
    old.execute("SELECT txid_current()")  # a transaction holding back vacuum
    time.sleep(0.4)
    closer = threading.Timer(0.8, old.commit)
    closer.start()
    seen = []
    settings = ThrottleSettings(**{**QUIET, "max_transaction_age_s": 0.3})
    try:
        result = backfill.run_partition(conn, "t", key, [task], 50,
                                        throttle=Throttle(settings), on_batch=seen.append)
    finally:
        closer.join()
        old.close()
    assert result.pauses.get("long transaction", 0) > 0
    assert any("transaction of pid" in p.pause_reason for p in seen)
    assert result.rows == 200


def test_pause_while_a_replica_lags(conn, database_url):
    task, key = slow_task(conn, 200, ms_per_row=0)
    # pg_stat_replication as the backfill session sees it (its search_path looks here first)
    conn.execute("""CREATE SCHEMA fake;
        CREATE TABLE fake.lag (seconds float8);
        INSERT INTO fake.lag VALUES (45);
        CREATE VIEW fake.pg_stat_replication AS SELECT make_interval(secs => seconds) AS write_lag,
            make_interval(secs => seconds) AS flush_lag, make_interval(secs => seconds) AS replay_lag
            FROM fake.lag""")
    session = psycopg.connect(database_url, autocommit=True, options="-c search_path=fake,public,pg_catalog")
    catch_up = threading.Timer(0.8, lambda: psycopg.connect(database_url, autocommit=True).execute(
        "UPDATE fake.lag SET seconds = 0.5"))
    catch_up.start()
    seen = []
    settings = ThrottleSettings(**{**QUIET, "max_replication_lag_s": 10})
    try:
        result = backfill.run_partition(session, "t", key, [task], 50,
                                        throttle=Throttle(settings), on_batch=seen.append)
    finally:
        catch_up.join()
        session.close()
    assert result.pauses.get("replication lag", 0) > 0
    assert any("replication lag 45.0 s" in p.pause_reason for p in seen)
    assert result.rows == 200


def test_no_replica_means_no_lag(conn):
    assert conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0] == 0
    gate = Throttle(ThrottleSettings(**{**QUIET, "max_replication_lag_s": 0.001}))
    assert gate.conditions(conn) == []


def test_fixed_pause_between_batches(conn, database_url):
    task, key = slow_task(conn, 100, ms_per_row=0)
    slept = []
    gate = Throttle(ThrottleSettings(**{**QUIET, "batch_pause_ms": 30}), sleep=slept.append)
    result = backfill.run_partition(conn, "t", key, [task], 25, throttle=gate)
    assert result.batches == 4 and slept.count(0.03) == 4
    assert result.pauses["batch_pause_ms"] == pytest.approx(0.12)


def test_throttle_settings_come_from_the_migration(migrations_dir):
    migration = write_migration(migrations_dir, """
        name: paced
        tables: [t]
        settings: {batch_pause_ms: 25, max_transaction_age_s: 60, max_replication_lag_s: 0}
        operations:
          - add_column: {table: t, column: {name: c, type: int}}
        """)
    settings = ThrottleSettings.from_settings(migration.settings)
    assert (settings.batch_pause_ms, settings.max_transaction_age_s,
            settings.max_replication_lag_s) == (25, 60, 0)
    assert settings.max_client_wait_ms == ThrottleSettings().max_client_wait_ms
