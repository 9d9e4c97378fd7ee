"""settings: a DAGSTER_HOME we create gets our dagster.yaml, which Dagster opens; one the user
named is left as they made it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from migration_dags import settings

pytestmark = pytest.mark.offline


def test_a_home_we_create_keeps_every_runs_events_in_one_file_with_telemetry_off(
        tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "assets").mkdir()  # the project root is the current folder

    home = settings.dagster_home()

    assert home == tmp_path / ".dagster_home"
    assert (home / "dagster.yaml").read_text() == settings.DAGSTER_YAML
    opened = subprocess.run(
        [sys.executable, "-c", "import dagster; i = dagster.DagsterInstance.get(); "
         "print(type(i.event_log_storage).__name__, type(i.compute_log_manager).__name__, "
         "i.telemetry_enabled)"],
        env={**os.environ, "DAGSTER_HOME": str(home)}, capture_output=True, text=True, check=True)
    assert opened.stdout.split() == [
        "ConsolidatedSqliteEventLogStorage", "NoOpComputeLogManager", "False"]


def test_a_home_the_user_named_is_left_as_they_made_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))

    assert settings.dagster_home() == tmp_path
    assert not (tmp_path / "dagster.yaml").exists()
