"""insert_rows: constant rows declared in the migration file (seed data), with an exact undo.

    - insert_rows:
        table: roles
        key: [name]                  # the columns that identify a row (a unique key of the table)
        rows:
          - {name: admin, description: Everything}
          - {name: user}
          - {name: guest, description: Read only}
        on_conflict: error           # error (default) or keep

Values are data, not SQL: each row is JSON, converted to the table's column types by
`jsonb_populate_recordset` (a string for a timestamptz, a list for an array, a mapping for jsonb).
A column a row does not name gets the column's default (rows are inserted in groups of the same
columns), so `id serial` and `created_at default now()` fill themselves.

start, in one transaction:
- refuses (on_conflict: error) when a declared key is already there with other values in the
  declared columns: the step fails naming the keys and nothing is inserted;
- inserts every declared row whose key is not there (ON CONFLICT DO NOTHING as well, for a
  unique key an application row took in between), and records the keys it inserted in
  migration_dags.inserted_rows in the same statement (state/inserted_rows.py).
A row already there with the same values is left alone and not recorded; with on_conflict: keep,
so is a row there with other values (the existing row wins). Its inserts and deletes are the
tool's writes, not the application's (change capture does not record them): into a table that
existed before, the row count grows, so set validation.row_count: grows.

rollback deletes exactly the recorded rows (by key), then forgets them: rows that existed before
the migration, or that the application inserted first, are never deleted. On a table that existed
before (backed up, its writes captured: state/capture.py), a recorded row the application wrote
since is kept too, with what it wrote, as every application write is; on a table this migration
created, the rollback drops the table anyway. A row another table references makes the delete
fail loudly, or cascade, as that foreign key says.

The validation step checks that every declared row is there with its declared values (with keep:
that its key is there), and names the keys that are not.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, model_validator

from ..actions import Action
from ..db import MARK_TOOL_WRITE
from ..errors import ColumnDoesNotExistError
from ..identifiers import TableName, literal, quote
from ..schema_model import SchemaModel
from ..spec.problems import describe, problem
from ..spec.types import Names, SpecModel, TableRef
from ..state import inserted_rows as record
from ..state.capture import capture_table
from .base import OpContext, Operation, ParityCheck

JsonValue = Any


def _rows(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise problem("must be a non-empty list of rows, each a mapping {column: value}")
    for i, row in enumerate(value):
        if not isinstance(row, dict) or not row:
            raise problem(f"must be a mapping {{column: value}}, got {describe(row)}", at=f"[{i}]")
    return value


class InsertRowsSpec(SpecModel):
    """Constant rows to insert, identified by `key`; the undo deletes exactly those inserted."""

    table: TableRef
    key: Names
    """The columns that identify a row (a primary or unique key of the table); every row gives them."""
    rows: Annotated[list[dict[str, JsonValue]], BeforeValidator(_rows)]
    """The rows, each {column: value}; values are data (JSON), converted to the column's type."""
    on_conflict: Literal["error", "keep"] = "error"
    """A declared key already there with other values: error (refuse, nothing inserted) or keep
    (leave the existing row as it is)."""

    @model_validator(mode="after")
    def _keys_given_once(self) -> "InsertRowsSpec":
        from ..identifiers import identifier_problem

        seen: dict[str, int] = {}
        for i, row in enumerate(self.rows):
            for column in row:
                why = identifier_problem(column)
                if why:
                    raise problem(f"column name {why}", at=f"rows[{i}].{column}")
            missing = [k for k in self.key if row.get(k) is None]
            if missing:
                raise problem(f"must give the key column {missing[0]!r} (not null)", at=f"rows[{i}]")
            ident = json.dumps([row[k] for k in self.key], sort_keys=True, default=str)
            if ident in seen:
                raise problem(f"has the same key as rows[{seen[ident]}]: {ident}", at=f"rows[{i}]")
            seen[ident] = i
        return self


class InsertRows(Operation, kind="insert_rows", spec=InsertRowsSpec):
    def read(self, spec: InsertRowsSpec) -> None:
        self.table: TableName = spec.table
        self.key: list[str] = list(spec.key)
        self.rows: list[dict[str, Any]] = [dict(r) for r in spec.rows]
        self.on_conflict: str = spec.on_conflict

    def tables(self) -> set[TableName]:
        return {self.table}

    # -- validate ------------------------------------------------------------------------------
    def validate(self, model: SchemaModel) -> None:
        table = self.existing_table(model, self.table)
        for i, row in enumerate(self.rows):
            for column in [*self.key, *row]:
                if column not in table.columns:
                    raise ColumnDoesNotExistError(f"{self.where}.rows[{i}]", str(self.table), column)

    def apply(self, model: SchemaModel) -> None:
        pass  # data only

    # -- SQL pieces ----------------------------------------------------------------------------
    def _groups(self) -> list[tuple[list[str], list[dict[str, Any]]]]:
        """Rows grouped by the columns they name, in first-seen order (a column a row leaves out
        must get its default, not NULL)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in self.rows:
            groups.setdefault(tuple(row), []).append(row)
        return [(list(cols), rows) for cols, rows in groups.items()]

    def _declared(self, rows: list[dict[str, Any]], columns: list[str]) -> str:
        """The rows as the table's types: SELECT cols FROM jsonb_populate_recordset(...)."""
        cols = ", ".join(quote(c) for c in columns)
        data = literal(json.dumps(rows, ensure_ascii=False, default=str))
        return f"SELECT {cols} FROM jsonb_populate_recordset(NULL::{self.table.sql}, {data}::jsonb)"

    def _key_match(self, a: str, b: str) -> str:
        return " AND ".join(f"{a}.{quote(k)} = {b}.{quote(k)}" for k in self.key)

    def _same_values(self, a: str, b: str, columns: list[str]) -> str:
        left = ", ".join(f"{a}.{quote(c)}" for c in columns)
        right = ", ".join(f"{b}.{quote(c)}" for c in columns)
        return f"ROW({left}) IS NOT DISTINCT FROM ROW({right})"

    def _key_text(self, alias: str) -> str:
        parts = " || ', ' || ".join(f"{literal(k + '=')} || coalesce({alias}.{quote(k)}::text, 'NULL')"
                                    for k in self.key)
        return f"({parts})"

    def _conflicts(self, columns: list[str], rows: list[dict[str, Any]]) -> str:
        """Keys of declared rows already there with other values in the declared columns."""
        return (f"SELECT {self._key_text('d')} AS key FROM ({self._declared(rows, columns)}) AS d "
                f"JOIN {self.table.sql} AS t ON {self._key_match('t', 'd')} "
                f"WHERE NOT ({self._same_values('t', 'd', columns)})")

    # -- verbs ---------------------------------------------------------------------------------
    def start(self, ctx: OpContext) -> list[Action]:
        statements = []
        if self.on_conflict == "error":
            statements.append(self._refuse_conflicts_sql())
        key_json = "jsonb_build_object(" + ", ".join(
            f"{literal(k)}, i.{quote(k)}" for k in self.key) + ")"
        for columns, rows in self._groups():
            cols = ", ".join(quote(c) for c in columns)
            returning = ", ".join(quote(k) for k in self.key)
            statements.append(
                f"WITH inserted AS (\n"
                f"  INSERT INTO {self.table.sql} ({cols})\n"
                f"  SELECT {', '.join(f'd.{quote(c)}' for c in columns)} "
                f"FROM ({self._declared(rows, columns)}) AS d\n"
                f"  WHERE NOT EXISTS (SELECT 1 FROM {self.table.sql} AS t WHERE "
                f"{self._key_match('t', 'd')})\n"
                f"  ON CONFLICT DO NOTHING\n  RETURNING {returning})\n"
                + record.record_sql(ctx.migration, self.index, self.table, key_json,
                                    "inserted AS i"))
        return [
            record.create_action(),
            Action(f"insert {len(self.rows)} declared rows into {self.table} (those not there "
                   "yet; their keys recorded for the undo)",
                   ";\n".join([MARK_TOOL_WRITE, *statements])),
        ]

    def _refuse_conflicts_sql(self) -> str:
        union = "\nUNION ALL\n".join(self._conflicts(c, r) for c, r in self._groups())
        head = (f"{self.where}: declared rows of {self.table} are already there with other "
                "values (keys: ")
        tail = "); change the rows in the file, or set on_conflict: keep"
        body = (f"DECLARE found text;\nBEGIN\n"
                f"  SELECT string_agg(key, '; ') INTO found FROM (\n{union}\n  LIMIT 20) AS c;\n"
                f"  IF found IS NOT NULL THEN\n"
                f"    RAISE EXCEPTION USING MESSAGE = {literal(head)} || found || {literal(tail)};\n"
                f"  END IF;\nEND")
        tag = "$mdg_insert_rows$"
        while tag in body:  # a declared value holding the tag cannot end the block early
            tag = tag[:-1] + "_$"
        return f"DO {tag}\n{body}\n{tag}"

    def rollback(self, ctx: OpContext) -> list[Action]:
        where = record.where_sql(ctx.migration, self.index, "r")
        lock, kept = "", ""
        backup, keys = ctx.backups.get(self.table), ctx.key_of(self.table)
        if backup is not None and keys:  # change capture runs: keep what the application wrote
            written = " AND ".join(f"w.{quote(k)} = t.{quote(k)}" for k in keys)
            lock = f"LOCK TABLE {self.table.sql} IN SHARE ROW EXCLUSIVE MODE;\n"
            kept = f"\n  AND NOT EXISTS (SELECT 1 FROM {capture_table(backup).sql} AS w WHERE {written})"
        return [
            Action(
                f"delete the declared rows insert_rows inserted into {self.table} (and only those)",
                f"{MARK_TOOL_WRITE};\n{lock}"
                f"DELETE FROM {self.table.sql} AS t USING {record.INSERTED_ROWS} AS r,\n"
                f"  LATERAL jsonb_populate_record(NULL::{self.table.sql}, r.key) AS k\n"
                f"WHERE {where} AND {self._key_match('t', 'k')}{kept}",
                only_if=f"SELECT to_regclass({self.table.regclass_literal}) IS NOT NULL "
                        f"AND to_regclass({literal(record.INSERTED_ROWS)}) IS NOT NULL",
            ),
            record.forget_action(ctx.migration, self.index,
                                 f"forget the keys insert_rows inserted into {self.table}"),
        ]

    def checks(self, ctx: OpContext) -> list[ParityCheck]:
        missing = []
        for columns, rows in self._groups():
            compared = self.key if self.on_conflict == "keep" else columns
            missing.append(
                f"SELECT {self._key_text('d')} AS key FROM ({self._declared(rows, columns)}) AS d "
                f"WHERE NOT EXISTS (SELECT 1 FROM {self.table.sql} AS t WHERE "
                f"{self._key_match('t', 'd')} AND {self._same_values('t', 'd', compared)})")
        union = "\nUNION ALL\n".join(missing)
        values = "" if self.on_conflict == "keep" else " with its declared values"
        return [ParityCheck(
            f"{self.table.name}.insert_rows_{self.index}.present",
            f"every declared row of {self.table} is there{values}",
            f"SELECT count(*) FROM ({union}) AS missing",
            f"SELECT key FROM ({union}) AS missing LIMIT 20",
        )]

    def summary(self) -> str:
        return f"insert_rows {self.table}: {len(self.rows)} rows by {', '.join(self.key)}"
