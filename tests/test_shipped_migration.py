"""The shipped add_email_verification, through the CLI, on a seeded database: `up` then `down`
leaves `pg_dump --schema-only` and every row exactly as before; `up` twice changes nothing the
second time; `plan` changes nothing."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from migration_dags import cli
from migration_dags.demo import seed_users
from pg_server import REPO, pg_dump

ASSETS = str(REPO / "assets")


@pytest.fixture(autouse=True)
def home(dagster_home):
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")


def dump(url: str) -> tuple[str, list]:
    schema = subprocess.run(
        [pg_dump(), "--schema-only", "--no-owner", url], capture_output=True, text=True, check=True
    ).stdout
    # pg_dump 15.14+ prints a random \restrict key per run
    schema = "\n".join(l for l in schema.splitlines() if not l.startswith(("\\restrict", "\\unrestrict")))
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT * FROM users ORDER BY id").fetchall()
    return schema, rows


def cli_run(url: str, *argv: str) -> int:
    return cli.main(["--database-url", url, "--migrations-dir", ASSETS, *argv])


def test_up_then_down_leaves_pg_dump_and_data_identical(database_url):
    seed_users(database_url, 3000)
    before = dump(database_url)
    assert cli_run(database_url, "plan", "add_email_verification") == 0
    assert dump(database_url) == before
    assert cli_run(database_url, "up", "add_email_verification", "--complete") == 0
    after_up = dump(database_url)
    with psycopg.connect(database_url) as conn:
        old_unverified = conn.execute(
            "SELECT count(*) FROM users WHERE created_at < now() - interval '30 days' AND NOT email_verified"
        ).fetchone()[0]
        new_verified = conn.execute(
            "SELECT count(*) FROM users WHERE created_at > now() - interval '29 days' AND email_verified"
        ).fetchone()[0]
    assert (old_unverified, new_verified) == (0, 0)
    assert "users_verification_token_idx" in after_up[0]
    assert cli_run(database_url, "up", "add_email_verification", "--complete") == 0
    assert dump(database_url) == after_up  # the second up changes nothing
    assert cli_run(database_url, "down", "add_email_verification") == 0
    assert dump(database_url) == before  # literally: the tool's own schemas are gone too
