"""Loading: build_definitions on a folder, the lazy `defs`, and workspace.yaml through the CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from migration_dags.errors import SpecError
from migration_dags.migration_set import MigrationSet
from migration_dags.orchestration import definitions
from orchestration.samples import ADD_FLAG, ADD_VIEW, write_migration

REPO = Path(__file__).resolve().parents[2]
STEPS = ["backup", "schema_change", "backfill", "validation", "cutover"]


def test_build_definitions_has_a_group_a_rollback_job_and_checks_per_migration(migrations_dir):
    write_migration(migrations_dir, ADD_FLAG)
    write_migration(migrations_dir, ADD_VIEW.replace("operations:", "depends_on: [add_flag]\noperations:"))

    defs = definitions.build_definitions(migrations_dir)
    dg.Definitions.validate_loadable(defs)

    graph = defs.resolve_asset_graph()
    for name in ("add_flag", "add_view"):
        keys = [dg.AssetKey([name, step]) for step in STEPS]
        assert all(graph.get(k).group_name == name for k in keys)
        assert defs.get_job_def(f"{name}__rollback").name == f"{name}__rollback"
        # each step depends on the one before it
        for before, after in zip(keys, keys[1:]):
            assert before in graph.get(after).parent_keys
    # the dependency between migrations shows in the graph
    assert dg.AssetKey(["add_flag", "cutover"]) in graph.get(dg.AssetKey(["add_view", "backup"])).parent_keys
    validation = dg.AssetKey(["add_flag", "validation"])
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == validation}
    assert checks == {"backfill_complete", "row_counts", "parity", "applied"}
    # the group is unpartitioned ("Materialize all" is one run); the key ranges are an asset
    # of their own, outside the group, partitioned
    assert all(graph.get(k).partitions_def is None for k in keys)
    ranges = graph.get(dg.AssetKey(["add_flag", "backfill_ranges"]))
    assert ranges.partitions_def.name == "add_flag__backfill" and ranges.group_name == "add_flag__key_ranges"
    assert dg.AssetKey(["add_flag", "schema_change"]) in ranges.parent_keys


def test_the_lazy_defs_read_the_folder_from_the_environment(migrations_dir, monkeypatch):
    write_migration(migrations_dir, ADD_FLAG)
    monkeypatch.setenv("MIGRATION_DAGS_MIGRATIONS_DIR", str(migrations_dir))

    loaded = definitions.defs()

    assert dg.AssetKey(["add_flag", "cutover"]) in loaded.resolve_asset_graph().get_all_asset_keys()


def test_a_malformed_file_is_one_line_naming_file_and_field(migrations_dir, monkeypatch):
    (migrations_dir / "broken.yaml").write_text(
        "name: broken\noperations:\n  - add_column: {table: items, column: {name: x, type: nonsense!}}\n"
    )
    monkeypatch.setenv("MIGRATION_DAGS_MIGRATIONS_DIR", str(migrations_dir))

    with pytest.raises(definitions.MigrationsNotLoadable) as caught:
        definitions.defs()

    message = str(caught.value)
    assert "\n" not in message
    assert "broken.yaml" in message and "operations[0].add_column.column.type" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def _validate_workspace(env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(REPO / ".venv/bin/dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    done.output = done.stdout + done.stderr  # Dagster logs to stdout, warnings to stderr
    return done


def _dagster_cli_env(tmp_path: Path, migrations_dir: Path, database_url: str) -> dict:
    home = tmp_path / "cli_home"
    home.mkdir()
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MIGRATION_DAGS_MIGRATIONS_DIR": str(migrations_dir),
        # set, so nothing starts the embedded server
        "MIGRATION_DAGS_DATABASE_URL": database_url,
    }


def test_workspace_yaml_validates_from_the_repo_root(tmp_path, migrations_dir, database_url):
    write_migration(migrations_dir, ADD_FLAG)
    done = _validate_workspace(_dagster_cli_env(tmp_path, migrations_dir, database_url))
    assert done.returncode == 0, done.output[-2000:]
    assert "Validation successful" in done.output


def test_workspace_yaml_reports_a_malformed_file_in_one_line(tmp_path, migrations_dir, database_url):
    (migrations_dir / "broken.yaml").write_text("name: broken\noperations: []\n")
    done = _validate_workspace(_dagster_cli_env(tmp_path, migrations_dir, database_url))
    assert done.returncode != 0
    expected = f"migration-dags: {migrations_dir / 'broken.yaml'}: operations: must be a non-empty list"
    assert expected in done.output


def test_the_shipped_migrations_load(monkeypatch):
    try:
        MigrationSet.load(REPO / "assets")
    except SpecError as exc:
        if "unknown operation type" in str(exc):
            pytest.skip(f"an operation type of the shipped demo is not registered yet: {exc}")
        raise
    monkeypatch.setenv("MIGRATION_DAGS_MIGRATIONS_DIR", str(REPO / "assets"))
    dg.Definitions.validate_loadable(definitions.defs())
