"""raw_sql: the escape hatch. SQL the other operations do not cover, with an explicit down.

    - raw_sql:
        table: users                 # optional: tables it changes, so they are backed up
        up: "CREATE VIEW active_users AS SELECT * FROM users WHERE active"
        down: "DROP VIEW IF EXISTS active_users"
        transactional: true          # false for statements PostgreSQL refuses in a transaction
        step: start                  # start (expand, default) or complete (cutover)
        drops: [old_view]            # optional: views (or other relations) its up drops
        creates: [audit]             # optional: tables (views, indexes) its up creates
        alters: [users]              # optional: tables whose columns its up changes

`drops`, `creates` and `alters` tell the tool's model of the schema what the SQL does, so later
operations of the same migration are validated against the schema as it will be: a drop_column
of a column a dropped view read is then allowed (re-create the view with a raw_sql at `step:
complete` after it, its down dropping it again); an add_column on a created table, or an
alter_column of a column up adds, is checked against the columns up's own statements give them
(common/declared_schema.py reads them with PostgreSQL's parser; nothing is run). An altered table
is backed up like any table the migration changes; a created one is not (it did not exist).

A raw_sql without a down is refused at load time: nothing would undo it.  Both `up` and `down`
should be idempotent (IF [NOT] EXISTS): a failed step is undone by running the downs of all its
operations, including those whose up never ran. `up` may hold several statements; with
transactional: false they still run as one implicit transaction, so a statement that refuses
transactions (CREATE INDEX CONCURRENTLY) must be alone in its raw_sql.

raw_sql is the one place a migration file holds statements (every other SQL field is one
expression, spec/sql_text.py): `up` and `down` must parse with PostgreSQL's parser at load time,
and `plan` lists their statements one by one (`-- statement 2 of 3`), so a reviewer sees each.
"""

from __future__ import annotations

from typing import Any, Literal

from ..actions import Action
from ..identifiers import TableName
from ..schema_model import SchemaModel
from ..spec.problems import problem
from ..spec.sql_text import statements
from ..spec.types import Flag, SpecModel, SqlStatements, TableList, TableRef
from .base import OpContext, Operation
from .common.declared_schema import apply_declared


class RawSqlSpec(SpecModel):
    """SQL the other operations do not cover, with the SQL that undoes it."""

    table: TableRef | None = None
    """A table it changes, so it is backed up."""
    tables: TableList = []
    """Tables it changes, so they are backed up."""
    up: SqlStatements
    """The SQL to run; idempotent (IF NOT EXISTS) where it can be."""
    down: SqlStatements
    """The SQL that undoes up; idempotent (IF EXISTS): it may run when up never did."""
    transactional: Flag = True
    """false for a statement PostgreSQL refuses in a transaction (CREATE INDEX CONCURRENTLY)."""
    step: Literal["start", "complete"] = "start"
    """start: with the schema change (expand); complete: at cutover (contract)."""
    drops: TableList = []
    """Views (or other relations) up drops, so later operations are validated without them."""
    creates: TableList = []
    """Tables (or views, indexes) up creates, so later operations are validated with them."""
    alters: TableList = []
    """Tables whose columns up adds, drops, retypes or renames (backed up; validated after)."""

    @classmethod
    def check_keys(cls, data: dict[str, Any]) -> None:
        if "down" not in data:
            raise problem("is required: a raw_sql step must say how to undo itself", at="down")


class RawSql(Operation, kind="raw_sql", spec=RawSqlSpec):
    def read(self, spec: RawSqlSpec) -> None:
        self.touches: list[TableName] = ([spec.table] if spec.table else []) + list(spec.tables)
        self.up: str = spec.up
        self.down: str = spec.down
        self.transactional: bool = spec.transactional
        self.step: str = spec.step
        self.drops: list[TableName] = list(spec.drops)
        self.creates: list[TableName] = list(spec.creates)
        self.alters: list[TableName] = list(spec.alters)

    def tables(self) -> set[TableName]:
        return set(self.touches) | set(self.alters) | set(self.creates)

    def created_tables(self) -> set[TableName]:
        return set(self.creates)

    def validate(self, model: SchemaModel) -> None:
        for table in [*self.touches, *self.alters]:
            if table not in self.creates:
                self.existing_table(model, table)

    def apply(self, model: SchemaModel) -> None:
        dropped = {str(name) for name in self.drops}
        model.dropped |= dropped
        for table in model.tables.values():
            for column, views in list(table.dependent_views.items()):
                kept = [v for v in views if v not in dropped]
                if kept:
                    table.dependent_views[column] = kept
                else:
                    del table.dependent_views[column]
        for name in self.drops:
            model.tables.pop(name, None)
        if self.creates or self.alters:
            apply_declared(model, self.where, self.up, self.creates, self.alters)

    def _up(self) -> list[Action]:
        return [self._action("up", self.up)]

    def _down(self) -> list[Action]:
        return [self._action("down", self.down)]

    def _action(self, which: str, sql: str) -> Action:
        """One action, as before (its statements share one transaction), with each statement
        numbered where plan shows it."""
        found = statements(sql)
        if len(found) == 1:
            return Action(f"raw SQL ({which})", sql, transactional=self.transactional)
        # `;` on its own line: a statement may end in a -- comment
        listed = "\n;\n".join(
            f"-- statement {n} of {len(found)}\n{text}" for n, text in enumerate(found, 1)
        )
        return Action(f"raw SQL ({which}): {len(found)} statements", listed,
                      transactional=self.transactional)

    def start(self, ctx: OpContext) -> list[Action]:
        return self._up() if self.step == "start" else []

    def rollback(self, ctx: OpContext) -> list[Action]:
        return self._down() if self.step == "start" else []

    def complete(self, ctx: OpContext) -> list[Action]:
        return self._up() if self.step == "complete" else []

    def uncomplete(self, ctx: OpContext) -> list[Action]:
        return self._down() if self.step == "complete" else []
