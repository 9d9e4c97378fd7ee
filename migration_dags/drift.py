"""Drift: has the migration file changed since it was applied?

When a step is applied, the file's checksum (sha256 of its bytes) and text are stored with the
state (state/files.py). `up` or `down` of a file whose checksum differs stops before any change
with MigrationFileChangedError (exit 2) and a summary of the changed lines, unless allowed
(`--allow-changed`): then the change is returned, for the run's metadata (the audit shows it), and
the file is recorded anew once a step has run, so the next command compares with what ran last.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

import psycopg

from . import state
from .errors import MigrationFileChangedError

SHOWN_LINES = 8


def checksum(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def diff_summary(before: str, now: str) -> str:
    lines = [ln for ln in difflib.unified_diff(before.splitlines(), now.splitlines(), n=0, lineterm="")
             if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    removed = sum(1 for ln in lines if ln.startswith("-"))
    shown = " | ".join(" ".join(ln.split()) for ln in lines[:SHOWN_LINES])
    more = f" | ... {len(lines) - SHOWN_LINES} more" if len(lines) > SHOWN_LINES else ""
    return f"{removed} lines removed, {len(lines) - removed} added: {shown}{more}"


def changed_since_applied(conn: psycopg.Connection, migration: str, file: Path) -> str | None:
    """A summary of how `file` differs from the file `migration` was applied from; None if it
    does not, or nothing is recorded."""
    recorded = state.recorded_file(conn, migration)
    if recorded is None or recorded[0] == checksum(file):
        return None
    return diff_summary(recorded[1], Path(file).read_text())


def check(conn: psycopg.Connection, migration: str, file: Path, command: str, allowed: bool) -> str | None:
    """Stop (exit 2) when the file changed since it was applied, unless `allowed`; returns the
    summary of the change when there is one (and it is allowed)."""
    change = changed_since_applied(conn, migration, file)
    if change is not None and not allowed:
        raise MigrationFileChangedError(
            f"{file}: changed since {migration} was applied ({change}); nothing was run. Put the "
            f"file back as it was, or run `migration-dags {command} {migration} --allow-changed` "
            "to go on with the file as it is now (the run records the change)")
    return change


def record(conn: psycopg.Connection, migration: str, file: Path) -> None:
    state.record_file(conn, migration, checksum(file), Path(file).read_text())
