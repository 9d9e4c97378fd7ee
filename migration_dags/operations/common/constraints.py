"""Adding a constraint in two short steps, shared by add_check and add_foreign_key.

ADD CONSTRAINT ... NOT VALID takes its lock for milliseconds (no scan) and from then on checks new
writes; VALIDATE CONSTRAINT then scans the existing rows under ShareUpdateExclusiveLock, which lets
reads and writes go on (FACTS.md: 10 ms + 0.22 s instead of 0.2-0.36 s of blocked writes on 1M rows).
Each step is guarded so a re-run, or a run after a half-done one, does only what is left.
"""

from __future__ import annotations

from ...actions import Action
from ...identifiers import TableName, quote
from ..base import ParityCheck, constraint_exists_sql
from .catalog_sql import check_count, constraint_validated_sql, negate


def add_then_validate(table: TableName, name: str, definition: str) -> list[Action]:
    """`definition` is what follows ADD CONSTRAINT name, e.g. "CHECK (price >= 0)". (A foreign
    key on a partitioned table, where PostgreSQL 15 refuses NOT VALID, goes per partition:
    common/partitions.py.)"""
    absent = negate(constraint_exists_sql(table, name))
    add = f"ALTER TABLE {table.sql} ADD CONSTRAINT {quote(name)} {definition}"
    actions = [Action(f"add constraint {name} on {table} (NOT VALID: no scan)",
                      f"{add} NOT VALID", only_if=absent)]
    actions.append(
        Action(
            f"validate constraint {name} on {table} (scans without blocking writes)",
            f"ALTER TABLE {table.sql} VALIDATE CONSTRAINT {quote(name)}",
            only_if=constraint_validated_sql(table, name, validated=False),
        )
    )
    return actions


def drop_constraint(table: TableName, name: str) -> list[Action]:
    return [
        Action(
            f"drop constraint {name} on {table}",
            f"ALTER TABLE {table.sql} DROP CONSTRAINT IF EXISTS {quote(name)}",
            # the table may be gone already when an earlier create_table is undone too
            only_if=f"SELECT to_regclass({table.regclass_literal}) IS NOT NULL",
        )
    ]


def validated_check(table: TableName, name: str) -> ParityCheck:
    return ParityCheck(
        f"{table.name}.{name}.validated",
        f"constraint {name} on {table} exists and is validated",
        check_count(constraint_validated_sql(table, name)),
    )
