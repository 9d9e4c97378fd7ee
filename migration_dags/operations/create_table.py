"""create_table: a new table. It has no rows to keep, so it is never backed up.

    - create_table:
        table: order_items
        columns:
          - {name: id, type: bigint, primary_key: true}
          - {name: order_id, type: bigint, nullable: false, references: "orders(id)"}
          - {name: sku, type: text, nullable: false, unique: true}
          - {name: created_at, type: timestamptz, nullable: false, default: "now()"}
        primary_key: [order_id, sku]      # optional, instead of a column's primary_key: true

`references` is "table(column)" (schema-qualified as "sales.orders(id)"), or a mapping
{table, column, on_delete} for names with parentheses or a delete rule.

start runs CREATE TABLE IF NOT EXISTS (new and empty: no lock on anything but the referenced
tables, briefly). rollback runs DROP TABLE IF EXISTS, without CASCADE: anything a later operation
built on the table is undone first, since rollbacks run in reverse order.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from ..actions import Action
from ..errors import ColumnDoesNotExistError, TableAlreadyExistsError
from ..identifiers import TableName, quote
from ..schema_model import ColumnModel, SchemaModel, TableModel
from ..spec.problems import problem
from ..spec.types import ColumnDefault, Flag, Identifier, Names, SpecModel, SqlType, TableRef, a_list
from .base import Expression, OpContext, Operation

ON_DELETE = {"no action": "NO ACTION", "restrict": "RESTRICT", "cascade": "CASCADE",
             "set null": "SET NULL", "set default": "SET DEFAULT"}
_REFERENCE = re.compile(r"^\s*(?P<table>[^()]+?)\s*\(\s*(?P<column>[^()]+?)\s*\)\s*$")


def _on_delete_sql(value: Any) -> str:
    """`set null`, `SET NULL`, `set  null` -> SET NULL."""
    rule = ON_DELETE.get(" ".join(value.lower().split())) if isinstance(value, str) else None
    if rule is None:
        raise problem(f"must be one of {', '.join(ON_DELETE.values())}, got {value!r}")
    return rule


# What a foreign key does when the referenced row is deleted; validated into its SQL words
OnDelete = Annotated[
    str, BeforeValidator(_on_delete_sql, json_schema_input_type=Literal[tuple(ON_DELETE)])
]


class Reference(SpecModel):
    """A foreign key to one column, as a mapping: for names with parentheses or a delete rule."""

    table: TableRef
    column: Identifier
    on_delete: OnDelete | None = None

    @property
    def sql(self) -> str:
        rule = f" ON DELETE {self.on_delete}" if self.on_delete else ""
        return f"REFERENCES {self.table.sql} ({quote(self.column)}){rule}"


def _reference_from_text(value: Any) -> Any:
    """`orders(id)` or `sales.orders(id)` -> {table, column}; a mapping goes on to Reference."""
    if isinstance(value, dict):
        return value
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    if match is None:
        raise problem('must be "table(column)" or a mapping {table, column, on_delete}')
    return match.groupdict()


class ColumnSpec(SpecModel):
    """One column of the new table."""

    name: Identifier
    type_sql: SqlType = Field(alias="type")
    nullable: Flag = True
    default: ColumnDefault | None = None
    """Its default, as SQL: 0, now()."""
    primary_key: Flag = False
    """The table's key is this one column (for a key of several, use the table's primary_key)."""
    unique: Flag = False
    references: Annotated[
        Reference, BeforeValidator(_reference_from_text, json_schema_input_type=str | Reference)
    ] | None = None
    """A foreign key: "orders(id)", or {table, column, on_delete}."""

    @property
    def sql(self) -> str:
        parts = [quote(self.name), self.type_sql]
        if not self.nullable:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.primary_key:
            parts.append("PRIMARY KEY")
        if self.unique:
            parts.append("UNIQUE")
        if self.references is not None:
            parts.append(self.references.sql)
        return " ".join(parts)


class CreateTableSpec(SpecModel):
    """A new table (new and empty, so never backed up)."""

    table: TableRef
    columns: Annotated[
        list[ColumnSpec],
        BeforeValidator(a_list("must be a non-empty list of columns", non_empty=True)),
        Field(min_length=1),
    ]
    primary_key: Names | None = None
    """The table's key when it has several columns."""

    @model_validator(mode="after")
    def _columns_and_key_agree(self) -> "CreateTableSpec":
        names = [c.name for c in self.columns]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise problem(f"column {name!r} is listed twice", at=f"columns[{i}].name")
        for i, name in enumerate(self.primary_key or []):
            if name not in names:
                raise problem(f"{name!r} is not one of the columns", at=f"primary_key[{i}]")
        if self.primary_key and any(c.primary_key for c in self.columns):
            raise problem("give the primary key either here or as a column's primary_key, not both",
                          at="primary_key")
        return self


class CreateTable(Operation, kind="create_table", spec=CreateTableSpec):
    def read(self, spec: CreateTableSpec) -> None:
        self.table: TableName = spec.table
        self.columns: list[ColumnSpec] = list(spec.columns)
        self.primary_key: list[str] = spec.primary_key or []

    # -- tables --------------------------------------------------------------------------------
    def tables(self) -> set[TableName]:
        return {self.table}

    def created_tables(self) -> set[TableName]:
        return {self.table}

    def read_tables(self) -> set[TableName]:
        return {c.references.table for c in self.columns if c.references is not None}

    @property
    def _key(self) -> list[str]:
        return self.primary_key or [c.name for c in self.columns if c.primary_key]

    # -- verbs ---------------------------------------------------------------------------------
    def validate(self, model: SchemaModel) -> None:
        if model.table(self.table) is not None:
            raise TableAlreadyExistsError(self.where, str(self.table))
        for col in self.columns:
            ref = col.references
            if ref is None:
                continue
            if ref.table == self.table:  # a self-reference, e.g. parent_id -> id
                if ref.column not in {c.name for c in self.columns}:
                    raise ColumnDoesNotExistError(self.where, str(self.table), ref.column)
                continue
            target = self.existing_table(model, ref.table)
            if ref.column not in target.columns:
                raise ColumnDoesNotExistError(self.where, str(ref.table), ref.column)

    def expressions(self) -> list[Expression]:
        return [
            Expression(f"columns[{i}].default", c.default, None, c.type_sql)
            for i, c in enumerate(self.columns)
            if c.default is not None
        ]

    def apply(self, model: SchemaModel) -> None:
        table = TableModel(self.table)
        for c in self.columns:
            table.columns[c.name] = ColumnModel(c.name, c.type_sql, c.nullable and not c.primary_key
                                                and c.name not in self.primary_key, c.default)
        table.primary_key = list(self._key)
        model.tables[self.table] = table

    def start(self, ctx: OpContext) -> list[Action]:
        lines = [c.sql for c in self.columns]
        if self.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(quote(k) for k in self.primary_key)})")
        body = ",\n  ".join(lines)
        return [
            Action(
                f"create table {self.table}",
                f"CREATE TABLE IF NOT EXISTS {self.table.sql} (\n  {body}\n)",
            )
        ]

    def rollback(self, ctx: OpContext) -> list[Action]:
        return [Action(f"drop table {self.table}", f"DROP TABLE IF EXISTS {self.table.sql}")]

    def summary(self) -> str:
        return f"create_table {self.table}"

