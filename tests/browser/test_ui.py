"""The Dagster UI driven by clicks in a real browser (Debian's chromium through Playwright, no
browser download): a fresh migration goes to cutover from one "Materialize all", its checks pass,
the rollback job launched from the Launchpad puts the database back, and the graph and the key
ranges' partitions then show the rollback. The database is checked after each.

Marked `browser` (deselect with -m "not browser"); .ci/run installs chromium and runs it. On a
failure, screenshots of every step so far are kept in a temporary folder whose path is printed.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from browser.dagster_dev import dagster_dev
from migration_dags.engine import MigrationEngine
from migration_dags.migration_set import MigrationSet
from orchestration.samples import ADD_FLAG, seed_items, snapshot, write_migration

pytestmark = pytest.mark.browser

LOCATION = "migration_dags.orchestration.definitions"  # workspace.yaml's python_module
STEPS = ["backup", "schema_change", "backfill", "validation", "cutover"]
RUN_S = 150  # a run in its own process on a loaded 2-core machine: ~30 s


def flags(url: str) -> tuple[int, int]:
    """(true, false) counts of items.flag."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FILTER (WHERE flag), count(*) FILTER (WHERE NOT flag) "
                            "FROM items").fetchone()


def wait_for(predicate, what: str, timeout_s: float = RUN_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def open_group(page, ui: str, group: str, first: bool = False) -> None:
    page.goto(f"{ui}/locations/{LOCATION}/asset-groups/{group}")
    page.get_by_role("button", name="Materialize all").wait_for(timeout=90_000)
    skip = page.get_by_role("button", name="Skip")  # Dagster's "Join the community" dialog,
    try:                                            # shown once, a moment after the first page
        skip.wait_for(timeout=10_000 if first else 1_000)
        skip.click()
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: no dialog this time
        pass


def test_one_click_to_cutover_then_rollback_from_the_ui(
    browser_page, screens, database_url, tmp_path
):
    page = browser_page
    seed_items(database_url)
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    write_migration(migrations, ADD_FLAG)
    engine = MigrationEngine(MigrationSet.load(migrations).get("add_flag"), database_url)
    before = snapshot(database_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    with dagster_dev(home, migrations, database_url, tmp_path / "dagster_dev.log") as ui:
        # 1. a fresh group, one click: every step to cutover in one run, no partition asked for
        open_group(page, ui, "add_flag", first=True)
        screens.shot("fresh-group")
        page.get_by_role("button", name="Materialize all").click()
        wait_for(lambda: engine.status().is_applied("cutover"), "cutover applied")
        assert engine.status().applied_steps() == set(STEPS)
        assert flags(database_url) == (100, 100)  # NOT NULL, true for even ids

        # 2. the graph shows every step materialized, and the checks passed
        open_group(page, ui, "add_flag")
        graph = page.locator("body")
        wait_for(lambda: graph.inner_text().count("Materialized") >= len(STEPS), "5 materialized steps", 60)
        screens.shot("migrated")
        text = graph.inner_text()
        assert text.count("1 / 1 Passed") == 4 and "4 / 4 Passed" in text  # applied, + validation's

        # 3. the rollback job from its Launchpad
        page.goto(f"{ui}/locations/{LOCATION}/jobs/add_flag__rollback/playground")
        page.get_by_role("button", name="Launch Run").click()
        wait_for(lambda: not engine.status().applied_steps(), "every step rolled back")
        wait_for(lambda: snapshot(database_url) == before, "the table exactly as before")
        page.wait_for_url("**/runs/**", timeout=30_000)
        page.get_by_text("Success", exact=False).first.wait_for(timeout=60_000)
        screens.shot("rollback-run")

        # 4. the graph and the key ranges say rolled back, not "materialized and fine"
        open_group(page, ui, "add_flag")
        wait_for(lambda: graph.inner_text().count("0 / 1 Passed") >= 4, "applied checks failed", 60)
        screens.shot("rolled-back-group")
        assert "1 / 1 Passed" not in graph.inner_text()
        page.goto(f"{ui}/assets/add_flag/backfill_ranges?view=partitions")
        page.get_by_text("0 partitions", exact=False).first.wait_for(timeout=60_000)
        screens.shot("no-stale-partitions")
