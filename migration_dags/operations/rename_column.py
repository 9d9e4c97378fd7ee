"""rename_column: a new name for a column, switched at cutover.

    - rename_column: {table: users, from: name, to: full_name}

Nothing happens before cutover: the old name stays valid while the backfill and validation run.
complete renames it (a catalog change under a brief AccessExclusiveLock, no rewrite); uncomplete
renames it back. Views, indexes, constraints and foreign keys refer to columns by number, so they
follow the rename; SQL inside functions (user triggers written in plpgsql, for instance) refers to
it by name and does not, nor do trigger arguments: a user trigger naming the column either way is
refused by name until the migration lists it in `triggers_reviewed` (schema_model.py finds them).
"""

from __future__ import annotations

from ..actions import Action
from pydantic import Field, model_validator

from ..errors import ColumnAlreadyExistsError
from ..identifiers import TableName, quote
from ..schema_model import SchemaModel
from ..spec.problems import problem
from ..spec.types import Identifier, SpecModel, TableRef
from .base import OpContext, Operation, column_exists_sql
from .common.catalog_sql import all_of, negate
from .common.column_rules import refuse_triggers_naming
from ..state.capture import rename_written_sql


class RenameColumnSpec(SpecModel):
    """A new name for a column, switched at cutover."""

    table: TableRef
    from_: Identifier = Field(alias="from")
    """The column's name now."""
    to: Identifier
    """Its name after cutover."""
    triggers_reviewed: list[Identifier] = []
    """User triggers on the table that name the column (in their arguments, or NEW.col in their
    function) and that you made work after the rename: without this, such a trigger is refused."""

    @model_validator(mode="after")
    def _a_new_name(self) -> "RenameColumnSpec":
        if self.from_ == self.to:
            raise problem(f"is the same name as from ({self.from_!r})", at="to")
        return self


class RenameColumn(Operation, kind="rename_column", spec=RenameColumnSpec):
    def read(self, spec: RenameColumnSpec) -> None:
        self.table: TableName = spec.table
        self.old: str = spec.from_
        self.new: str = spec.to
        self.triggers_reviewed: list[str] = spec.triggers_reviewed

    def tables(self) -> set[TableName]:
        return {self.table}

    def validate(self, model: SchemaModel) -> None:
        table, _old = self.existing_column(model, self.table, self.old)
        if self.new in table.columns:
            raise ColumnAlreadyExistsError(self.where, str(self.table), self.new)
        refuse_triggers_naming(self.where, self.table, table, self.old, self.triggers_reviewed,
                               f"once it is renamed to {self.new!r},")

    def apply(self, model: SchemaModel) -> None:
        table = model.tables[self.table]
        column = table.columns[self.old]
        column.name = self.new
        table.columns = {(self.new if n == self.old else n): c for n, c in table.columns.items()}
        table.primary_key = [self.new if k == self.old else k for k in table.primary_key]
        if self.old in table.dependent_views:
            table.dependent_views[self.new] = table.dependent_views.pop(self.old)

    def expanded_view(self, table: TableName, columns: dict[str, str]) -> None:
        if table == self.table and self.old in columns:
            renamed = {(self.new if n == self.old else n): c for n, c in columns.items()}
            columns.clear()
            columns.update(renamed)

    def old_shape_tables(self) -> set[TableName]:
        return {self.table}

    def _rename(self, ctx: OpContext, old: str, new: str, why: str) -> Action:
        # The application's writes captured under the old name (state/capture.py) follow the
        # column, in the same transaction.
        backup = ctx.backups.get(self.table)
        follow = f";\n{rename_written_sql(backup, old, new)}" if backup is not None else ""
        return Action(
            f"rename {self.table}.{old} to {new} ({why})",
            f"ALTER TABLE {self.table.sql} RENAME COLUMN {quote(old)} TO {quote(new)}{follow}",
            only_if=all_of(column_exists_sql(self.table, old),
                           negate(column_exists_sql(self.table, new))),
        )

    def complete(self, ctx: OpContext) -> list[Action]:
        return [self._rename(ctx, self.old, self.new, "cutover")]

    def uncomplete(self, ctx: OpContext) -> list[Action]:
        return [self._rename(ctx, self.new, self.old, "undo cutover")]

    def summary(self) -> str:
        return f"rename_column {self.table}.{self.old} -> {self.new}"
