"""raw_sql: the escape hatch. SQL the other operations do not cover, with an explicit down.

    - raw_sql:
        table: users                 # optional: tables it changes, so they are backed up
        up: "CREATE VIEW active_users AS SELECT * FROM users WHERE active"
        down: "DROP VIEW IF EXISTS active_users"
        transactional: true          # false for statements PostgreSQL refuses in a transaction
        step: start                  # start (expand, default) or complete (cutover)

A raw_sql without a down is refused at load time: nothing would undo it.  Both `up` and `down`
should be idempotent (IF [NOT] EXISTS): a failed step is undone by running the downs of all its
operations, including those whose up never ran. `up` may hold several statements; with
transactional: false they still run as one implicit transaction, so a statement that refuses
transactions (CREATE INDEX CONCURRENTLY) must be alone in its raw_sql.
"""

from __future__ import annotations

from ..actions import Action
from ..fields import FieldReader
from ..identifiers import TableName
from ..schema_model import SchemaModel
from .base import OpContext, Operation


class RawSql(Operation):
    kind = "raw_sql"

    def read(self, reader: FieldReader) -> None:
        table = reader.raw("table")
        holder = reader
        self.touches: list[TableName] = []
        if table is not None:
            self.touches = [reader.table("table")]
        tables = reader.raw("tables")
        if tables is not None:
            if not isinstance(tables, list):
                raise reader.error("tables", "must be a list of table names")
            sub = FieldReader(holder.file, holder.field_path("tables"),
                              {str(i): t for i, t in enumerate(tables)})
            self.touches += [sub.table(str(i)) for i in range(len(tables))]
        self.up: str = reader.sql("up")
        if reader.raw("down") is None:
            raise reader.error("down", "is required: a raw_sql step must say how to undo itself")
        self.down: str = reader.sql("down")
        self.transactional: bool = reader.boolean("transactional", True)
        self.step: str = reader.string("step", required=False, default="start")
        if self.step not in ("start", "complete"):
            raise reader.error("step", f"must be start or complete, got {self.step!r}")

    def tables(self) -> set[TableName]:
        return set(self.touches)

    def validate(self, model: SchemaModel) -> None:
        for table in self.touches:
            self.existing_table(model, table)

    def apply(self, model: SchemaModel) -> None:
        pass

    def _up(self) -> list[Action]:
        return [Action("raw SQL (up)", self.up, transactional=self.transactional)]

    def _down(self) -> list[Action]:
        return [Action("raw SQL (down)", self.down, transactional=self.transactional)]

    def start(self, ctx: OpContext) -> list[Action]:
        return self._up() if self.step == "start" else []

    def rollback(self, ctx: OpContext) -> list[Action]:
        return self._down() if self.step == "start" else []

    def complete(self, ctx: OpContext) -> list[Action]:
        return self._up() if self.step == "complete" else []

    def uncomplete(self, ctx: OpContext) -> list[Action]:
        return self._down() if self.step == "complete" else []
