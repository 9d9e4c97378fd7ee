"""lint: squawk on the rendered plan, offline; our known-safe patterns pass, raw_sql does not."""

from __future__ import annotations

import pytest

from migration_dags import cli
from migration_dags.lint import flagged, lint_migration, statements
from migration_dags.spec import load_migration
from pg_server import REPO

pytestmark = pytest.mark.offline

VOLATILE_DEFAULT = """
name: add_token
tables: [users]
operations:
  - raw_sql:
      table: users
      up: "ALTER TABLE users ADD COLUMN IF NOT EXISTS token uuid DEFAULT gen_random_uuid()"
      down: "ALTER TABLE users DROP COLUMN IF EXISTS token"
"""


def write(folder, name, text):
    (folder / f"{name}.yaml").write_text(text)
    return load_migration(folder / f"{name}.yaml")


def test_the_shipped_migration_has_no_findings_and_each_pass_has_a_reason():
    migration = load_migration(REPO / "assets" / "add_email_verification.yaml")
    findings = lint_migration(migration)
    assert findings and not flagged(findings)
    assert all(f.suppressed for f in findings)
    rules = {f.rule for f in findings}
    assert "adding-not-nullable-field" in rules  # our SET NOT NULL after a validated CHECK


# Column types the scenarios prescribe (roles.id serial, role_id int, varchar(50),
# varchar(320)): squawk's style preferences, kept as the scenarios declare them.
PRESCRIBED_TYPES = {"prefer-bigint-over-int", "prefer-identity", "prefer-text-field"}


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "assets").glob("*.yaml")))
def test_every_shipped_migration_is_flagged_only_for_its_prescribed_column_types(name):
    findings = lint_migration(load_migration(REPO / "assets" / f"{name}.yaml"))
    assert {f.rule for f in flagged(findings)} <= PRESCRIBED_TYPES
    assert all(f.suppressed for f in findings if f.rule == "ban-drop-function")  # our own helpers


def test_statements_are_linted_as_the_runner_runs_them():
    migration = load_migration(REPO / "assets" / "add_email_verification.yaml")
    concurrent = [s for s in statements(migration) if "CONCURRENTLY" in s.sql]
    assert concurrent and not any(s.transactional for s in concurrent)
    assert concurrent[0].as_run(500).startswith("SET lock_timeout = 0;")
    add = next(s for s in statements(migration) if s.sql.startswith("ALTER TABLE") and s.transactional)
    assert add.as_run(500).startswith("BEGIN;\nSET LOCAL lock_timeout = 500;")


def test_a_raw_sql_volatile_default_is_flagged(migrations_dir):
    findings = flagged(lint_migration(write(migrations_dir, "add_token", VOLATILE_DEFAULT)))
    # its down's DROP COLUMN is flagged too: a raw_sql's down gets no pass either
    assert [(f.rule, f.operation, f.step, f.direction) for f in findings] == [
        ("adding-field-with-default", "operations[0].raw_sql", "schema_change", "up"),
        ("ban-drop-column", "operations[0].raw_sql", "schema_change", "down")]


def test_a_raw_sql_gets_no_known_safe_pass(migrations_dir):
    # the same SET NOT NULL our add_column runs safely is flagged when a user writes it
    migration = write(migrations_dir, "nn", """
name: nn
operations:
  - raw_sql: {up: "ALTER TABLE users ALTER COLUMN email SET NOT NULL",
              down: "ALTER TABLE users ALTER COLUMN email DROP NOT NULL"}
""")
    rules = {f.rule for f in flagged(lint_migration(migration))}
    assert {"adding-not-nullable-field", "ban-drop-not-null"} <= rules


def test_the_lint_command_exits_8_and_prints_json(migrations_dir, capsys):
    write(migrations_dir, "add_token", VOLATILE_DEFAULT)
    code = cli.main(["lint", "--migrations-dir", str(migrations_dir), "--json", "--quiet"])
    out, err = capsys.readouterr()
    import json

    report = json.loads(out)
    assert code == cli.FOUND_PROBLEMS and not report["passed"] and err == ""
    assert report["findings"][0]["rule"] == "adding-field-with-default"
    assert cli.main(["lint", "--migrations-dir", str(migrations_dir), "--quiet",
                     "--exclude", "adding-field-with-default", "--exclude", "ban-drop-column"]) == 0
