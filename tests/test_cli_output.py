"""What the CLI prints: --quiet, --json, Dagster's telemetry notice before our lines, the
embedded server's status and stop, colour only on a terminal."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from migration_dags import cli, output
from migration_dags.embedded import embedded_database_url, embedded_status, stop_embedded
from orchestration.samples import ADD_FLAG, seed_items, write_migration


@pytest.fixture
def args(migrations_dir, database_url):
    seed_items(database_url)
    write_migration(migrations_dir, ADD_FLAG)
    return ["--database-url", database_url, "--migrations-dir", str(migrations_dir)]


def test_quiet_up_prints_nothing_and_json_up_prints_the_runs(capsys, args, dagster_home):
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert cli.main([*args, "up", "add_flag", "--complete", "--quiet", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert err == ""
    assert result["outcome"] == "applied" and [r["step"] for r in result["runs"]] == [
        "backup", "schema_change", "backfill", "validation", "cutover"]
    assert cli.main([*args, "down", "add_flag", "-q"]) == 0
    assert capsys.readouterr() == ("", "")


def test_every_command_answers_json(capsys, args):
    for argv in (["list"], ["plan", "add_flag"], ["status", "add_flag"], ["lint"]):
        assert cli.main([*args, "--json", *argv]) in (0, cli.FOUND_PROBLEMS), argv
        json.loads(capsys.readouterr().out)


def test_dagsters_telemetry_notice_comes_before_our_first_line(capsys, args, dagster_home):
    # a DAGSTER_HOME of the user's own, telemetry left on: Dagster's notice is theirs to read
    assert not (dagster_home / "dagster.yaml").exists()
    assert cli.main([*args, "up", "add_flag", "--complete"]) == 0
    err = capsys.readouterr().err
    ours = [i for i, line in enumerate(err.splitlines()) if line.startswith("migration-dags: ")]
    notice = [i for i, line in enumerate(err.splitlines()) if "Welcome to Dagster" in line]
    if notice:  # printed only the first time an instance id is written on this machine's home
        assert max(notice) < min(ours)
    assert ours == list(range(min(ours), min(ours) + len(ours)))  # nothing between our lines


@pytest.fixture
def embedded_folder():
    """Not under pytest's tmp_path: as root, pgserver runs the server as its own user and opens
    the folder's parents to it, and another pytest session's start closes /tmp/pytest-of-root
    again (0700), under a running test."""
    folder = Path(tempfile.mkdtemp(prefix="mdg-embedded-test-")) / "pgdata"
    yield folder
    stop_embedded(folder)
    shutil.rmtree(folder.parent, ignore_errors=True)


def test_embedded_status_and_stop_leave_no_process(capsys, embedded_folder, monkeypatch):
    folder = embedded_folder
    monkeypatch.setenv("MIGRATION_DAGS_EMBEDDED_DIR", str(folder))
    assert cli.main(["embedded", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["running"] is False
    embedded_database_url(folder)
    pid = embedded_status(folder).pid
    assert pid
    assert cli.main(["embedded", "status"]) == 0
    assert "running (pid" in capsys.readouterr().out
    assert cli.main(["embedded", "stop", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "folder": str(folder.resolve()), "pid": None, "running": False, "stopped": True}
    assert live_processes_using(folder) == []


def live_processes_using(folder) -> list[int]:
    """Processes (zombies aside: exited, their parent has not reaped them yet) whose command
    line names `folder`: the postmaster and its children run `postgres -D folder ...`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().split(")")[-1].split()[0]
        except OSError:
            continue
        if str(folder) in cmdline and state != "Z":
            found.append(int(entry))
    return found


@pytest.mark.offline
def test_colour_only_on_a_terminal(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\033[" not in output.table(["a"], [["FAIL"]], colours={"FAIL": "red"})  # pytest's stdout
    monkeypatch.setattr("sys.stdout", Tty())
    assert "\033[31mFAIL" in output.table(["a"], [["FAIL"]], colours={"FAIL": "red"})
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\033[" not in output.table(["a"], [["FAIL"]], colours={"FAIL": "red"})
