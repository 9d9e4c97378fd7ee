"""Crashes in the middle of the asynchronous-commit backfill: a kill -9 of the CLI, and an
immediate stop of the server (a private one, started here).  Either way the next `up` completes
with every row equal to what one plain UPDATE gives.

A batch commits with synchronous_commit off, its saved position in the same transaction: a server
crash loses the last batches *together with* their positions (same WAL), never one without the
other, and the resume does them again.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from batches.items import differences, migration_file, rows_done, seed_items
from migration_dags.engine import MigrationEngine
from migration_dags.spec import load_migration
from migration_dags.state import STATE_SCHEMA
from pg_server import as_postgres

REPO = Path(__file__).resolve().parent.parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _wait_for(predicate, child, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)


def _cli(*args, env):
    return [sys.executable, "-m", "migration_dags.cli", *args]


def test_kill_9_of_the_cli_mid_backfill_then_up_completes_every_row(
        conn, database_url, migrations_dir, tmp_path):
    seed_items(conn, rows=6000)
    migration_file(migrations_dir, batch_size=100, partition_rows=2000, pause_ms=5)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(tmp_path)}
    args = ["--database-url", database_url, "--migrations-dir", str(migrations_dir), "up",
            "fill_label", "--complete"]
    child = subprocess.Popen(_cli(*args, env=env), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _rows_done(conn) >= 1000, child)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    before = _rows_done(conn)
    assert child.returncode == -signal.SIGKILL
    assert 1000 <= before < 6000, "the kill did not land mid-backfill"

    done = subprocess.run(_cli(*args, env=env), env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert differences(conn) == 0 and rows_done(conn) == 6000
    assert conn.execute(f"SELECT count(*) FROM {STATE_SCHEMA}.applied_steps "
                        "WHERE migration = 'fill_label'").fetchone()[0] == 5


def _rows_done(conn):
    try:
        return rows_done(conn)
    except psycopg.errors.UndefinedTable:  # the state tables are not there yet
        conn.rollback() if not conn.autocommit else None
        return 0


# -- a private server --------------------------------------------------------------------------
def _as_postgres(cmd: list[str]) -> list[str]:
    return as_postgres(cmd)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateServer:
    """PostgreSQL 15 in a temporary folder on a free port.  WAL stays in its buffers until
    something flushes it (wal_writer_delay 10 s, 64 MB of buffers), so an immediate stop loses
    the asynchronous commits of the last seconds, as a machine crash would."""

    def __init__(self, folder: Path):
        self.folder, self.data, self.port = folder, folder / "data", _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U",
                                     "postgres", "--auth=trust", "--no-sync"]),
                       check=True, capture_output=True)

    def ctl(self, *args: str) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c wal_writer_delay=10000 -c wal_buffers=64MB -c checkpoint_timeout=3600")
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                                     str(self.folder / "log"), "-o", options, "-w", *args]),
                       check=True, capture_output=True)


@pytest.fixture
def private_server():
    if not (PG_BIN / "pg_ctl").exists():
        pytest.skip("needs PostgreSQL 15 binaries in /usr/lib/postgresql/15/bin")
    # not under pytest's tmp_path: its parents are private to us, and the server runs as postgres
    folder = Path(tempfile.mkdtemp(prefix="mdg-private-pg-"))
    try:
        server = PrivateServer(folder)
        server.ctl("start")
        try:
            yield server
        finally:
            server.ctl("stop", "-m", "immediate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_immediate_stop_of_the_server_mid_backfill_then_up_completes_every_row(
        private_server, migrations_dir):
    url = private_server.url
    conn = psycopg.connect(url, autocommit=True)
    seed_items(conn, rows=6000)
    path = migration_file(migrations_dir, batch_size=100, partition_rows=2000, pause_ms=5)
    engine = MigrationEngine(load_migration(path), url)
    engine.up("backup")
    engine.up("schema_change")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            from pathlib import Path
            from migration_dags.engine import MigrationEngine
            from migration_dags.spec import load_migration
            MigrationEngine(load_migration(Path({str(path)!r})), {url!r}).up("backfill")
            """)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: rows_done(conn) >= 1500, child)
        child.send_signal(signal.SIGSTOP)  # between two statements: `before` is exact
        before = rows_done(conn)
        private_server.ctl("stop", "-m", "immediate")
    finally:
        child.kill()
        child.wait()
        conn.close()
    assert 1500 <= before < 6000, "the stop did not land mid-backfill"

    private_server.ctl("start")
    conn = psycopg.connect(url, autocommit=True)
    after = rows_done(conn)
    # Asynchronous commits not yet in the WAL on disk are lost, each batch together with its saved
    # position: the rows filled are exactly those the saved positions count, and the resume
    # does the rest.
    assert after <= before
    assert _filled_up_to_saved_positions_only(conn)
    assert conn.execute("SELECT count(*) FROM items WHERE label IS NOT NULL").fetchone()[0] == after

    engine = MigrationEngine(load_migration(path), url)
    report = engine.up("backfill")
    assert report.extra["rows"] == 6000 - after
    engine.up("validation")
    engine.up("cutover")
    assert differences(conn) == 0 and rows_done(conn) == 6000
    conn.close()


def _filled_up_to_saved_positions_only(conn) -> bool:
    """No row at or below a partition's saved position is left unfilled (and, with the count
    above, none beyond it is filled)."""
    unfilled_below = conn.execute(f"""
        SELECT count(*) FROM items i JOIN {STATE_SCHEMA}.backfill_ranges r
          ON (r.lower_key IS NULL OR i.id > (r.lower_key::jsonb->>0)::int)
         AND (r.upper_key IS NULL OR i.id <= (r.upper_key::jsonb->>0)::int)
        WHERE i.label IS NULL
          AND (r.done OR (r.position_key IS NOT NULL AND i.id <= (r.position_key::jsonb->>0)::int))
        """).fetchone()[0]
    return unfilled_below == 0
