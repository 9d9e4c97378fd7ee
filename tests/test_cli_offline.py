"""CLI commands that need no database: the offline tier."""

from __future__ import annotations

import pytest

from migration_dags import cli
from pg_server import REPO

pytestmark = pytest.mark.offline
ASSETS = str(REPO / "assets")


def test_plan_offline_prints_five_steps_with_no_database(capsys, monkeypatch):
    monkeypatch.delenv("MIGRATION_DAGS_DATABASE_URL", raising=False)
    assert cli.main(["--migrations-dir", ASSETS, "plan", "add_email_verification", "--offline"]) == 0
    out = capsys.readouterr().out
    for step in ("backup", "schema_change", "backfill", "validation", "cutover"):
        assert f"-- ===== {step} =====" in out
    assert 'ADD COLUMN IF NOT EXISTS "email_verified" boolean DEFAULT false;' in out
