"""`migration-dags lint`: squawk (PyPI squawk-cli) on the SQL a migration's steps would run.

Every statement squawk sees is rendered the way the runner executes it: a transactional action as
`BEGIN; SET LOCAL lock_timeout = N; SET LOCAL statement_timeout = 0; <sql>; COMMIT;`, a
non-transactional one (CREATE INDEX CONCURRENTLY) as `SET lock_timeout = N; <sql>;`, each in a file
of its own. So squawk's timeout and transaction rules judge what really runs, not a text with the
runner's settings left out.

Our own operations' patterns that squawk cannot see are safe are not flagged, each for a stated
reason (KNOWN_SAFE). A user's `raw_sql` gets no such pass: its findings are reported like any
other SQL's. Works offline (the plan needs no database); `verify` passes the server's version.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .spec import Migration
from .steps.context import OFFLINE_COLUMN, OFFLINE_KEY, offline_op_context
from .steps.verbs import STEP_VERBS

RAW_SQL = "raw_sql"


@dataclass(frozen=True)
class Statement:
    """One statement a step would run, as the runner runs it."""

    step: str
    direction: str
    operation: str  # "operations[2].raw_sql"
    kind: str
    description: str
    sql: str  # the statement alone
    transactional: bool
    takes_lock: bool = True  # False: the runner sets lock_timeout = 0 (a concurrent build)

    def as_run(self, lock_timeout_ms: int) -> str:
        lock_timeout_ms = lock_timeout_ms if self.takes_lock else 0
        body = self.sql.rstrip().rstrip(";") + ";"
        if self.transactional:
            return (f"BEGIN;\nSET LOCAL lock_timeout = {lock_timeout_ms};\n"
                    f"SET LOCAL statement_timeout = 0;\n{body}\nCOMMIT;\n")
        return f"SET lock_timeout = {lock_timeout_ms};\n{body}\n"


@dataclass(frozen=True)
class Finding:
    migration: str
    step: str
    direction: str
    operation: str
    rule: str
    level: str
    message: str
    help: str | None
    statement: str
    suppressed: str | None = None  # why a known-safe pattern of ours is not flagged

    def as_dict(self) -> dict:
        return asdict(self)


# rule -> (applies to this statement of one of our operations?, why it is safe)
def _is_swap(s: Statement) -> bool:
    return s.kind == "alter_column" and s.description.startswith(("swap:", "swap back:"))


KNOWN_SAFE: dict[str, tuple[Callable[[Statement], bool], str]] = {
    "require-statement-timeout": (
        lambda s: not s.transactional,
        "a concurrent index build or drop holds only SHARE UPDATE EXCLUSIVE, so writes go on; it "
        "runs with no statement_timeout on purpose (lock_timeout bounds what clients wait)"),
    "adding-not-nullable-field": (
        lambda s: "SET NOT NULL" in s.sql.upper(),
        "SET NOT NULL runs after a CHECK (col IS NOT NULL) added NOT VALID and VALIDATEd, so "
        "PostgreSQL uses the check and does not scan the table"),
    "require-concurrent-index-creation": (
        lambda s: "partitioned" in s.description,
        "only ON ONLY a partitioned table: an empty index, built on each partition concurrently "
        "and attached (operations/common/partitions.py)"),
    "require-concurrent-index-deletion": (
        lambda s: "partitioned" in s.description,
        "only on a partitioned table, where PostgreSQL cannot drop an index concurrently (its "
        "partitions' indexes go with it)"),
    "ban-drop-constraint": (
        lambda s: s.direction == "down" or '"mdg__' in s.sql,
        "drops a constraint this migration added: its own helper CHECK, or in a down what the "
        "up added"),
    "ban-drop-column": (
        lambda s: s.direction == "down" or _is_swap(s),
        "a down drops only the columns its up added (the backup proves the table is as before); "
        "alter_column's swap drops the old column in the transaction that gives the new one its "
        "name, so clients go on reading and writing the same name"),
    "renaming-column": (
        _is_swap,
        "alter_column's swap renames the new column to the old one's name in the transaction that "
        "drops the old one: clients go on reading and writing the same name"),
    "ban-drop-function": (
        lambda s: '"migration_dags".' in s.sql,
        "drops a function in the tool's own schema that this migration created (a trigger "
        "function, a helper), never one of yours"),
    "ban-drop-not-null": (
        lambda s: s.direction == "down",
        "a down removes only the NOT NULL its up set"),
    "ban-drop-table": (
        lambda s: s.direction == "down",
        "a down drops only the tables its up created"),
    "prefer-robust-stmts": (
        lambda s: True,
        "every action of ours is idempotent: IF [NOT] EXISTS, or an only-if guard the runner "
        "checks first"),
    "constraint-missing-not-valid": (
        lambda s: "VALIDATE CONSTRAINT" in s.sql.upper() or "NOT VALID" in s.sql.upper(),
        "added NOT VALID and validated in a statement of its own"),
    "prefer-bigint-over-int": (
        lambda s: "CREATE TABLE IF NOT EXISTS migration_dags." in s.sql,
        "a small column of the tool's own state table (a view's depth), never one of yours"),
}


def statements(migration: Migration) -> list[Statement]:
    """Every statement of every step, up and down, from the migration file alone."""
    ctx = offline_op_context(migration)
    out: list[Statement] = []
    ops = list(enumerate(migration.operations))
    for step, verbs in STEP_VERBS.items():
        if step in ("backup", "validation"):  # our copies and read-only checks: nothing to lint
            continue
        for direction, verb, ordered in (("up", verbs.up, ops), ("down", verbs.down, ops[::-1])):
            if verb is None:
                continue
            for i, op in ordered:
                where = f"operations[{i}].{op.kind}"
                if verb == "backfill":
                    task = op.backfill(ctx)
                    if task is not None:
                        out.append(Statement(step, direction, where, op.kind, task.description,
                                             _fill(task.for_range("TRUE")), True))
                    continue
                for action in getattr(op, verb)(ctx):
                    out.append(Statement(step, direction, where, op.kind, action.description,
                                         _fill(action.sql), action.transactional,
                                         action.takes_lock))
    return out


def _fill(sql: str) -> str:
    """Offline placeholders as names squawk can parse (the statement's shape is what it judges)."""
    return sql.replace(OFFLINE_KEY, '"id"').replace(OFFLINE_COLUMN, '"col"')


def squawk_path() -> str:
    """The squawk next to this Python (the venv's bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.exists():
        return str(beside)
    found = shutil.which("squawk")
    if not found:
        raise RuntimeError("squawk not found: pip install squawk-cli (migration-dags[test] has it)")
    return found


def lint_migration(migration: Migration, pg_version: str | None = None) -> list[Finding]:
    """squawk's findings on every statement of `migration`; ours that are known safe come back
    with `suppressed` set to the reason."""
    found = statements(migration)
    if not found:
        return []
    lock_ms = migration.settings.lock_timeout_ms
    with tempfile.TemporaryDirectory(prefix="mdg-lint-") as folder:
        files = []
        for n, stmt in enumerate(found):
            path = os.path.join(folder, f"{n:04d}.sql")
            Path(path).write_text(stmt.as_run(lock_ms))
            files.append(path)
        argv = [squawk_path(), "--reporter", "json", *files]
        if pg_version:
            argv[1:1] = ["--pg-version", pg_version]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=folder)
    try:
        raw = json.loads(done.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"squawk printed no JSON (exit {done.returncode}): "
                           f"{' '.join((done.stderr or done.stdout).split())[:300]}") from exc
    findings = []
    for item in raw:
        stmt = found[int(Path(item["file"]).stem)]
        rule = item.get("rule_name") or "?"
        reason = None
        if stmt.kind != RAW_SQL and rule in KNOWN_SAFE:
            applies, why = KNOWN_SAFE[rule]
            reason = why if applies(stmt) else None
        findings.append(Finding(
            migration.name, stmt.step, stmt.direction, stmt.operation, rule,
            str(item.get("level", "")).lower(), " ".join(str(item.get("message", "")).split()),
            item.get("help"), " ".join(stmt.sql.split())[:200], reason))
    return findings


def flagged(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.suppressed is None]
