"""The server stops immediately in the middle of the backfill (a private test server, never the
shared one): the step fails with ConnectionLostError (exit 5) naming it and saying that `up`
resumes; `up` after the restart ends exactly where an uninterrupted run ends. With
`--retry-on-disconnect`, the CLI reconnects and finishes by itself."""

from __future__ import annotations

import psycopg
import pytest
from operations.lifecycle import assert_same, run_sql, snapshot
from operations.shop import SHOP

from migration_dags import cli
from migration_dags.db import faults
from migration_dags.errors import ConnectionLostError
from migration_dags.steps import STEPS

from .harness import engine
from .private_server import PrivateServer


@pytest.fixture(scope="module")
def server():
    s = PrivateServer()
    try:
        yield s
    finally:
        s.remove()


@pytest.fixture(scope="module")
def applied(server, tmp_path_factory):
    """The snapshot of an uninterrupted run on the same server."""
    url = server.create_database("reference")
    run_sql(url, SHOP)
    eng = engine(url, tmp_path_factory.mktemp("reference"))
    for step in STEPS:
        eng.up(step)
    return snapshot(url)


def _started(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT step FROM migration_dags.started_steps")]


def test_a_server_stop_mid_backfill_is_exit_5_and_up_resumes_exactly(server, applied, migrations_dir):
    url = server.create_database("stopped")
    run_sql(url, SHOP)
    eng = engine(url, migrations_dir)
    eng.up("backup")
    eng.up("schema_change")
    with faults.armed(3, lambda _label: server.stop_immediately(), only="backfill: batch"):
        with pytest.raises(ConnectionLostError) as lost:
            eng.up("backfill")
    assert lost.value.exit_code == 5
    message = lost.value.one_line()
    assert "during step backfill" in message and "migration-dags up crashy" in message
    server.start()
    assert _started(url) == ["backfill"]
    eng = engine(url, migrations_dir)  # a new run
    for step in STEPS:
        eng.up(step)
    assert_same(applied, snapshot(url), "after a server stop mid-backfill and up")
    assert _started(url) == []


def test_the_cli_exits_5_naming_the_step_and_with_retry_on_disconnect_finishes(
        server, applied, migrations_dir, dagster_home, monkeypatch, capsys):
    url = server.create_database("restarted")
    run_sql(url, SHOP)
    engine(url, migrations_dir)  # writes the migration file
    monkeypatch.setattr(cli, "RETRY_WAIT_S", 0.2)
    argv = ["--database-url", url, "--migrations-dir", str(migrations_dir), "up", "crashy", "--complete"]

    def restart(_label: str) -> None:
        server.stop_immediately()
        server.start()

    with faults.armed(2, restart, only="backfill: batch"):
        code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 5, err
    assert "lost during step backfill (up)" in err and "migration-dags up crashy` to resume" in err
    assert "unexpected OperationalError" not in err

    with faults.armed(2, restart, only="backfill: batch"):  # the resumed run is cut again
        code = cli.main([*argv, "--retry-on-disconnect", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "during step backfill" in err and "retry 1 of 2" in err
    assert_same(applied, snapshot(url), "after two server restarts mid-backfill and up --retry")
    assert _started(url) == []
