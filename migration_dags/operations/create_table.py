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
from dataclasses import dataclass

from ..actions import Action
from ..errors import ColumnDoesNotExistError, TableAlreadyExistsError
from ..fields import FieldReader
from ..identifiers import TableName, quote
from ..schema_model import ColumnModel, SchemaModel, TableModel
from .base import OpContext, Operation
from .common.reading import optional_sql

ON_DELETE = {"no action": "NO ACTION", "restrict": "RESTRICT", "cascade": "CASCADE",
             "set null": "SET NULL", "set default": "SET DEFAULT"}
_REFERENCE = re.compile(r"^\s*(?P<table>[^()]+?)\s*\(\s*(?P<column>[^()]+?)\s*\)\s*$")


@dataclass(frozen=True)
class Reference:
    table: TableName
    column: str
    on_delete: str | None = None

    @property
    def sql(self) -> str:
        rule = f" ON DELETE {self.on_delete}" if self.on_delete else ""
        return f"REFERENCES {self.table.sql} ({quote(self.column)}){rule}"


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type_sql: str
    nullable: bool
    default: str | None
    primary_key: bool
    unique: bool
    references: Reference | None

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


def read_reference(reader: FieldReader, key: str) -> Reference | None:
    value = reader.raw(key)
    if value is None:
        return None
    if isinstance(value, dict):
        sub = reader.mapping(key)
        table, column = sub.table("table"), sub.identifier("column")
        on_delete = read_on_delete(sub, "on_delete")
        sub.finish()
        return Reference(table, column, on_delete)
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    if match is None:
        raise reader.error(key, 'must be "table(column)" or a mapping {table, column, on_delete}')
    holder = FieldReader(reader.file, reader.field_path(key), dict(match.groupdict()))
    return Reference(holder.table("table"), holder.identifier("column"))


def read_on_delete(reader: FieldReader, key: str) -> str | None:
    value = reader.string(key, required=False)
    if value is None:
        return None
    rule = ON_DELETE.get(" ".join(value.lower().split()))
    if rule is None:
        raise reader.error(key, f"must be one of {', '.join(ON_DELETE.values())}, got {value!r}")
    return rule


class CreateTable(Operation):
    kind = "create_table"

    def read(self, reader: FieldReader) -> None:
        self.table: TableName = reader.table()
        raw = reader.raw("columns", required=True)
        if not isinstance(raw, list) or not raw:
            raise reader.error("columns", "must be a non-empty list of columns")
        self.columns = [self._read_column(reader, i, c) for i, c in enumerate(raw)]
        names = [c.name for c in self.columns]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise reader.error(f"columns[{i}].name", f"column {name!r} is listed twice")
        self.primary_key: list[str] = reader.identifiers("primary_key", required=False)
        for i, name in enumerate(self.primary_key):
            if name not in names:
                raise reader.error(f"primary_key[{i}]", f"{name!r} is not one of the columns")
        if self.primary_key and any(c.primary_key for c in self.columns):
            raise reader.error(
                "primary_key", "give the primary key either here or as a column's primary_key, not both"
            )

    @staticmethod
    def _read_column(reader: FieldReader, index: int, value: object) -> ColumnSpec:
        col = FieldReader(reader.file, reader.field_path(f"columns[{index}]"), value)
        spec = ColumnSpec(
            name=col.identifier("name"),
            type_sql=col.type_sql(),
            nullable=col.boolean("nullable", True),
            default=optional_sql(col, "default"),
            primary_key=col.boolean("primary_key", False),
            unique=col.boolean("unique", False),
            references=read_reference(col, "references"),
        )
        col.finish()
        return spec

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

