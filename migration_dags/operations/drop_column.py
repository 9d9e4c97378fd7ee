"""drop_column: remove a column at cutover, and be able to put it back exactly.

    - drop_column: {table: users, column: legacy_flags}

validate refuses a column that views read (they would break: drop or change the views first, with
raw_sql), a key column (rows are restored by key), a serial column (its sequence goes with it)
and a table without a key. start records the column's full definition (saved_columns.py); nothing
else changes before cutover, so the application keeps reading it during backfill and validation.
complete drops it. uncomplete re-adds it with the same type, collation, default, NOT NULL and
comment, puts its values back from the pre-migration backup by key, and re-creates the indexes
and constraints that were dropped with it. It lands at the end of the table: PostgreSQL cannot put
a column back in its place, so plan says so before up (column_order_note) and the proof reports
the order as the one accepted difference. Rows inserted after the backup get the column's default
(or NULL).
"""

from __future__ import annotations

from dataclasses import replace

from ..actions import Action
from ..identifiers import TableName, literal, quote, short_name
from ..schema_model import SchemaModel
from ..db import skip_writes_of
from ..spec.types import Identifier, OptionalSqlExpression, SpecModel, TableRef
from .add_column import not_null_actions
from .base import Expression, OpContext, Operation, column_exists_sql, constraint_exists_sql
from .common.catalog_sql import all_of, index_exists_sql, negate
from .common.column_rules import Remedies, refuse_triggers_naming, refuse_unsafe_column
from .common.restore import restore_columns
from .common.triggers import drop_row_trigger, row_expression, row_trigger
from ..state.saved_columns import (
    SavedColumn,
    forget_action,
    is_dropped_sql,
    mark_dropped_sql,
    require_saved_sql,
    save_actions,
)


REMEDIES = Remedies(
    views="drop them first, in this migration, with a raw_sql that says so (drops: [the views]); "
          "re-create them without the column at step: complete",
    key_column="; its rows could not be matched to the backup to undo the drop",
    sequence=", which PostgreSQL drops with the column; drop it with raw_sql",
)


class DropColumnSpec(SpecModel):
    """Remove a column at cutover; its definition and values are kept to put it back."""

    table: TableRef
    column: Identifier
    down: OptionalSqlExpression | None = None
    """Its value, as SQL over the row, for rows inserted without it until cutover (by a release
    using the new shape, which no longer has the column): needed when it is NOT NULL with no
    default."""
    triggers_reviewed: list[Identifier] = []
    """User triggers on the table that name the column (in their arguments, or NEW.col in their
    function) and that you made work without it: without this, such a trigger is refused."""


class DropColumn(Operation, kind="drop_column", spec=DropColumnSpec):
    def read(self, spec: DropColumnSpec) -> None:
        self.table: TableName = spec.table
        self.column: str = spec.column
        self.down: str | None = spec.down
        self.triggers_reviewed: list[str] = spec.triggers_reviewed

    def tables(self) -> set[TableName]:
        return {self.table}

    def validate(self, model: SchemaModel) -> None:
        table, column = self.existing_column(model, self.table, self.column)
        refuse_unsafe_column(self.where, self.table, table, column, REMEDIES)
        refuse_triggers_naming(self.where, self.table, table, self.column, self.triggers_reviewed,
                               "once it is dropped,")
        self._refuses_new_inserts = (not column.nullable and column.default_sql is None
                                     and self.down is None)

    def apply(self, model: SchemaModel) -> None:
        model.tables[self.table].columns.pop(self.column, None)

    def expressions(self) -> list[Expression]:
        return [Expression("down", self.down, self.table, None)] if self.down is not None else []

    def expansion_note(self) -> str | None:
        """A NOT NULL column with no default and no `down` refuses the new shape's inserts until
        cutover (known once validate has seen the column)."""
        if not getattr(self, "_refuses_new_inserts", False):
            return None
        return (f"{self.table}.{self.column} is NOT NULL with no default: until cutover, inserts "
                f"through the new shape (which has no {self.column}) fail; give drop_column a "
                f"`down:` (its value for those rows, as SQL over the row) to let them in")

    @property
    def _fill_trigger(self) -> str:
        return short_name(f"mdg{self.index:03d}", self.table.schema, self.table.name, self.column,
                          "fill")

    def _fill_trigger_actions(self) -> list[Action]:
        """Rows inserted without the column (through the new shape) get `down`."""
        if self.down is None:
            return []
        return row_trigger(
            self.table, self._fill_trigger,
            f"NEW.{quote(self.column)} := {row_expression(self.down)};", [],
            f"fill {self.column} for rows inserted without it",
            events="INSERT", when=f"NEW.{quote(self.column)} IS NULL AND "
                                  f"{skip_writes_of(self._fill_trigger)}")

    def _drop_fill_trigger(self) -> list[Action]:
        return drop_row_trigger(self.table, self._fill_trigger) if self.down is not None else []

    def expanded_view(self, table: TableName, columns: dict[str, str]) -> None:
        if table == self.table:
            columns.pop(self.column, None)

    def old_shape_tables(self) -> set[TableName]:
        return {self.table}

    # -- verbs ---------------------------------------------------------------------------------
    def start(self, ctx: OpContext) -> list[Action]:
        return [*save_actions(ctx.migration, self.table, self.column),
                *self._fill_trigger_actions()]

    def rollback(self, ctx: OpContext) -> list[Action]:
        return [*self._drop_fill_trigger(), forget_action(ctx.migration, self.table, self.column)]

    def complete(self, ctx: OpContext) -> list[Action]:
        # One transaction: the column is gone if and only if the record says so.
        return [
            Action(
                f"drop column {self.column} from {self.table}",
                f"{require_saved_sql(ctx.migration, self.table, self.column)};\n"
                # the fill trigger's WHEN reads the column: it goes first
                + (f"DROP TRIGGER IF EXISTS {quote(self._fill_trigger)} ON {self.table.sql};\n"
                   if self.down is not None else "")
                + f"ALTER TABLE {self.table.sql} DROP COLUMN IF EXISTS {quote(self.column)};\n"
                + mark_dropped_sql(ctx.migration, self.table, self.column, True),
                only_if=column_exists_sql(self.table, self.column),
            ),
            *self._drop_fill_trigger()[1:],  # its function
        ]

    def uncomplete(self, ctx: OpContext) -> list[Action]:
        saved = ctx.saved_columns.get((self.table, self.column))
        if saved is None:  # never saved, so never dropped by this migration
            return []
        dropped = is_dropped_sql(ctx.migration, self.table, self.column)
        actions = [self._add_back(saved), *self._restore_values(ctx, saved)]
        if saved.not_null:
            helper = short_name("mdg", self.table.name, self.column, "not_null")
            actions += not_null_actions(self.table, self.column, helper)
        if saved.comment is not None:
            actions.append(Action(
                f"put back the comment on {self.table}.{self.column}",
                f"COMMENT ON COLUMN {self.table.sql}.{quote(self.column)} IS {literal(saved.comment)}",
            ))
        actions += [self._recreate(d) for d in saved.dependents]
        # Every step above runs only while the record says the column is ours to put back.
        actions = [replace(a, only_if=all_of(dropped, a.only_if) if a.only_if else dropped)
                   for a in actions]
        return actions + [
            Action(
                f"mark {self.table}.{self.column} as restored",
                mark_dropped_sql(ctx.migration, self.table, self.column, False),
                takes_lock=False,
                only_if=dropped,
            ),
            *self._fill_trigger_actions(),  # expanded again: the new shape's inserts need it
        ]

    def _add_back(self, saved: SavedColumn) -> Action:
        parts = [quote(self.column), saved.type_sql]
        if saved.collation_sql:
            parts.append(f"COLLATE {saved.collation_sql}")
        if saved.generated:
            parts.append(f"GENERATED ALWAYS AS ({saved.default_sql}) STORED")
        elif saved.default_sql is not None:
            # A constant default is instant and fills rows the backup does not have.
            parts.append(f"DEFAULT {saved.default_sql}")
        return Action(
            f"add column {self.column} back to {self.table}",
            f"ALTER TABLE {self.table.sql} ADD COLUMN IF NOT EXISTS {' '.join(parts)}",
        )

    def _restore_values(self, ctx: OpContext, saved: SavedColumn) -> list[Action]:
        backup = ctx.backups.get(self.table)
        if saved.generated or backup is None:  # generated: PostgreSQL recomputes it
            return []
        if self.column not in ctx.backup_columns.get(self.table, []):
            return []  # made by this migration: no values from before it to put back
        return [restore_columns(self.table, backup, ctx.key_of(self.table), [self.column],
                                "undo of drop_column")]

    def _recreate(self, dependent) -> Action:
        if dependent.kind == "index":
            exists = index_exists_sql(self.table.schema, dependent.name)
        else:
            exists = constraint_exists_sql(self.table, dependent.name)
        return Action(f"re-create {dependent.kind} {dependent.name} dropped with the column",
                      dependent.ddl, only_if=negate(exists))

    def summary(self) -> str:
        return f"drop_column {self.table}.{self.column}"

    def column_order_note(self) -> str | None:
        return (f"{self.table}.{self.column}: a down after cutover re-adds the column as the last "
                f"column of {self.table} (unless it already is): the table's column order then "
                "differs from before, and the proof reports that difference")
