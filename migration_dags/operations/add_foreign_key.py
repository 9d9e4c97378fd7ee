"""add_foreign_key: a foreign key, added without a long lock.

    - add_foreign_key:
        table: order_items
        columns: [order_id]
        references: {table: orders, columns: [id]}
        name: order_items_order_id_fkey    # optional: "<table>_<columns>_fkey"
        on_delete: cascade                 # optional: no action, restrict, cascade, set null, set default

start adds it NOT VALID (a brief ShareRowExclusiveLock on both tables, no scan; new writes are
checked from then on), then VALIDATEs it (scans without blocking writes); see constraints.py. On
a partitioned table PostgreSQL 15 refuses NOT VALID, so there one validating ADD runs. Orphan rows
make VALIDATE fail, the step fail and its undo drop the constraint. rollback drops it.

The validation step checks it is validated and counts orphans (rows whose key columns are all
non-NULL and match no referenced row: MATCH SIMPLE), with up to 20 sample keys.
"""

from __future__ import annotations

from pydantic import model_validator

from ..actions import Action
from ..errors import ColumnDoesNotExistError, SchemaValidationError
from ..identifiers import TableName, quote, short_name
from ..schema_model import SchemaModel
from ..spec.problems import problem
from ..spec.types import Identifier, Names, SpecModel, TableRef
from .base import OpContext, Operation, ParityCheck, first_keys_sql
from .common.constraints import add_then_validate, drop_constraint, validated_check
from .common.partitions import partitioned_foreign_key_actions, partitioned_foreign_key_drops
from .create_table import OnDelete


class ReferencedColumns(SpecModel):
    """The referenced table and its columns, in the order of `columns`."""

    table: TableRef
    columns: Names


class AddForeignKeySpec(SpecModel):
    """A foreign key, added NOT VALID then validated (no long lock)."""

    table: TableRef
    columns: Names
    references: ReferencedColumns
    name: Identifier | None = None
    """The constraint's name; default <table>_<columns>_fkey."""
    on_delete: OnDelete | None = None

    @model_validator(mode="after")
    def _as_many_columns_as_referenced(self) -> "AddForeignKeySpec":
        if len(self.references.columns) != len(self.columns):
            raise problem(
                f"names {len(self.references.columns)} columns but columns names {len(self.columns)}",
                at="references.columns",
            )
        return self


class AddForeignKey(Operation, kind="add_foreign_key", spec=AddForeignKeySpec):
    def read(self, spec: AddForeignKeySpec) -> None:
        self.table: TableName = spec.table
        self.columns: list[str] = spec.columns
        self.ref_table: TableName = spec.references.table
        self.ref_columns: list[str] = spec.references.columns
        default = short_name(f"{self.table.name}_{'_'.join(self.columns)}_fkey")
        self.name: str = spec.name or default
        self.on_delete: str | None = spec.on_delete

    def tables(self) -> set[TableName]:
        return {self.table}

    def read_tables(self) -> set[TableName]:
        return {self.ref_table}

    def validate(self, model: SchemaModel) -> None:
        for name, columns in ((self.table, self.columns), (self.ref_table, self.ref_columns)):
            table = self.existing_table(model, name)
            for column in columns:
                if column not in table.columns:
                    raise ColumnDoesNotExistError(self.where, str(name), column)
        if self.name in model.tables[self.table].constraints:
            raise SchemaValidationError(
                self.where, f"table {self.table} already has a constraint named {self.name!r}"
            )

    def apply(self, model: SchemaModel) -> None:
        model.tables[self.table].constraints.add(self.name)

    @property
    def _definition(self) -> str:
        rule = f" ON DELETE {self.on_delete}" if self.on_delete else ""
        return (
            f"FOREIGN KEY ({', '.join(quote(c) for c in self.columns)}) REFERENCES "
            f"{self.ref_table.sql} ({', '.join(quote(c) for c in self.ref_columns)}){rule}"
        )

    def start(self, ctx: OpContext) -> list[Action]:
        if self.table in ctx.partitions:  # per partition, then attached (common/partitions.py)
            return partitioned_foreign_key_actions(
                self.name, self.table, ctx.partitions[self.table], self._definition, self.columns,
                self.ref_table, self.ref_columns, self.on_delete)
        # offline, or a plain table; a partitioned table a raw_sql of this migration makes is
        # not in the context: its NOT VALID fails the step, which undoes itself
        return add_then_validate(self.table, self.name, self._definition)

    def rollback(self, ctx: OpContext) -> list[Action]:
        if self.table in ctx.partitions:
            return partitioned_foreign_key_drops(self.name, self.table, ctx.partitions[self.table],
                                                 self.ref_table)
        return drop_constraint(self.table, self.name)

    def checks(self, ctx: OpContext) -> list[ParityCheck]:
        return [validated_check(self.table, self.name), self._orphans(ctx)]

    def _orphans(self, ctx: OpContext) -> ParityCheck:
        complete = " AND ".join(f"t.{quote(c)} IS NOT NULL" for c in self.columns)
        match = " AND ".join(
            f"r.{quote(rc)} = t.{quote(c)}" for c, rc in zip(self.columns, self.ref_columns)
        )
        source = f"FROM {self.table.sql} AS t"
        orphan = f"{complete} AND NOT EXISTS (SELECT 1 FROM {self.ref_table.sql} AS r WHERE {match})"
        shown = ", ".join(f"t.{quote(c)}" for c in ctx.key_of(self.table) or self.columns)
        return ParityCheck(
            f"{self.table.name}.{self.name}.orphans",
            f"every {self.table} row's {', '.join(self.columns)} exists in {self.ref_table}",
            f"SELECT count(*) {source} WHERE {orphan}",
            first_keys_sql(f"ROW({shown})", source, orphan, shown),
        )

    def summary(self) -> str:
        return f"add_foreign_key {self.name} on {self.table}"
