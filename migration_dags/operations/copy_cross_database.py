"""copy_cross_database: copy a table of another database into a PostgreSQL table, in key ranges.

    - create_table:
        table: customers
        columns:
          - {name: id, type: bigint, primary_key: true}
          - {name: email, type: text}
          - {name: signed_up_at, type: timestamptz}
          - {name: prefs, type: jsonb}
    - copy_cross_database:
        source: {url_env: LEGACY_DATABASE_URL}   # a SQLAlchemy URL, never in the file itself
        from: legacy_customers                   # the source's table (schema.table allowed)
        into: customers                          # keyed by `key`
        key: id
        columns:                                 # target column: source column, or
          id: id                                 #   {from: column, transform: lower|utc|utc_zero_null|json}
          email: {from: email, transform: lower}
          signed_up_at: {from: signup_date, transform: utc}
          prefs: {from: prefs, transform: json}

The source is MariaDB/MySQL (mysql+pymysql://), SQLite (sqlite:////path) or PostgreSQL, read
through SQLAlchemy on read-only connections (cross_database/source.py): the copy never writes it.
The key is the target's primary key, one integer column, filled from an integer source column.

    backfill     key-range partitions of the source's keys (settings.partition_rows each, a
                 Dagster partition each); each batch reads its rows from the source, transforms
                 them (lower-case, datetimes read as UTC, text parsed as JSON: values.py) and
                 upserts them on the key, so a re-run changes nothing and an `up` after the source
                 changed brings the target up to date
    unbackfill   deletes what was copied: every row of `into` when this migration created it (the
                 create_table's rollback then drops it), else the rows its backup does not have,
                 and the copied columns of the others restored from the backup
    checks       per partition, row count and checksum of the source's rows against the target's
                 (cross_database/compare.py); a partition that differs fails, naming its key range

A value the target cannot take (invalid JSON, a date MariaDB holds as 0000-00-00) fails its batch
with exit 8, naming the partition and the key.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from ..actions import Action
from ..cross_database.source import SourceDatabase, SourceTable
from ..cross_database.values import ColumnMap, family
from ..errors import ColumnDoesNotExistError, SchemaValidationError
from ..identifiers import TableName, identifier_problem
from ..schema_model import SchemaModel
from ..spec.problems import UNSAFE_IDENTIFIER, describe, problem
from ..spec.types import Identifier, SpecModel, TableRef, Text
from .base import RANGE_PLACEHOLDER, BackfillTask, OpContext, Operation, ParityCheck
from .common.restore import delete_rows_not_in_backup, restore_columns

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
TRANSFORM_TARGETS = {"utc": ("timestamptz",), "utc_zero_null": ("timestamptz",), "json": ("json",),
                     "lower": ("text",)}


class SourceSpec(SpecModel):
    """The other database, by the environment variable holding its SQLAlchemy URL."""

    url_env: Text
    """e.g. LEGACY_DATABASE_URL=mysql+pymysql://user@host:3306/legacy or sqlite:////path/file.db"""

    @field_validator("url_env")
    @classmethod
    def _environment_variable(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise problem("must be an environment variable name such as LEGACY_DATABASE_URL")
        return value


def _source_table(value: Any) -> str:
    if not isinstance(value, str):
        raise problem(f"must be a table name, got {describe(value)}")
    parts = value.split(".")
    if len(parts) > 2:
        raise problem("must be table or schema.table")
    for part in parts:
        why = identifier_problem(part)
        if why:
            raise problem(f"identifier {why}", kind=UNSAFE_IDENTIFIER)
    return value


class ColumnSource(SpecModel):
    """Where a target column's values come from."""

    from_: Identifier = Field(alias="from")
    """The source column."""
    transform: Literal["lower", "utc", "utc_zero_null", "json"] | None = None
    """lower: lower-case text; utc: a datetime read as UTC (into timestamptz); utc_zero_null: utc,
    and a MariaDB/MySQL zero date ('0000-00-00 00:00:00') as NULL; json: text parsed as JSON (into
    json/jsonb)."""


def _column_source(value: Any) -> Any:
    return {"from": value} if isinstance(value, str) else value


def _some_columns(value: Any) -> Any:
    if not isinstance(value, dict) or not value:
        raise problem("must be a mapping of target column: source column (at least one)")
    return value


class CopyCrossDatabaseSpec(SpecModel):
    """Copy a table of another database (SQLAlchemy URL in an environment variable) into a
    PostgreSQL table, in key-range partitions, upserting on the key."""

    source: SourceSpec
    from_: Annotated[str, BeforeValidator(_source_table)] = Field(alias="from")
    """The source table: name, or schema.name."""
    into: TableRef
    """The PostgreSQL table rows go into (e.g. made by a create_table before this operation)."""
    key: Identifier
    """The target's primary key column (one integer column); upserts match rows on it."""
    columns: Annotated[
        dict[Identifier, Annotated[ColumnSource, BeforeValidator(
            _column_source, json_schema_input_type=Identifier | ColumnSource)]],
        BeforeValidator(_some_columns),
    ]
    """target column: source column, or {from: source column, transform: lower|utc|json}."""

    @classmethod
    def check_keys(cls, data: dict[str, Any]) -> None:
        columns, key = data.get("columns"), data.get("key")
        if isinstance(columns, dict) and isinstance(key, str) and key not in columns:
            raise problem(f"the key {key!r} must be one of the columns copied", at="key")


class CopyCrossDatabase(Operation, kind="copy_cross_database", spec=CopyCrossDatabaseSpec):
    def read(self, spec: CopyCrossDatabaseSpec) -> None:
        self.source = SourceDatabase(spec.source.url_env, self.where)
        self.source_table = SourceTable.parse(spec.from_)
        self.into: TableName = spec.into
        self.key: str = spec.key
        self.columns = tuple(ColumnMap(t, c.from_, c.transform) for t, c in spec.columns.items())

    def tables(self) -> set[TableName]:
        return {self.into}

    # -- validate ------------------------------------------------------------------------------
    def validate(self, model: SchemaModel) -> None:
        target = self.existing_table(model, self.into)
        for col in self.columns:
            if col.target not in target.columns:
                raise ColumnDoesNotExistError(self.where, str(self.into), col.target)
        if target.primary_key != [self.key]:
            raise SchemaValidationError(
                f"{self.where}.key", f"{self.key!r} must be the primary key of {self.into} (it "
                f"is {', '.join(target.primary_key) or 'none'}): the copy upserts on it")
        if family(target.columns[self.key].type_sql) != "integer":
            raise SchemaValidationError(
                f"{self.where}.key", f"{self.into}.{self.key} must be an integer column: key "
                "ranges must order the same way in both databases")
        for col in self.columns:
            kind = family(target.columns[col.target].type_sql)
            if col.transform and kind not in TRANSFORM_TARGETS[col.transform]:
                raise SchemaValidationError(
                    f"{self.where}.columns.{col.target}.transform",
                    f"{col.transform} fills a {' or '.join(TRANSFORM_TARGETS[col.transform])} "
                    f"column; {self.into}.{col.target} is {target.columns[col.target].type_sql}")
        self._validate_source()

    def _validate_source(self) -> None:
        """The source table and columns exist, and its key is an integer column."""
        import sqlalchemy as sa

        found = self.source.columns(self.source_table)
        self.source.dispose()
        for col in self.columns:
            if col.source not in found:
                raise SchemaValidationError(
                    f"{self.where}.columns.{col.target}", f"column {col.source!r} does not exist "
                    f"in the source table {self.source_table} (it has {', '.join(found)})")
        key_source = next(c.source for c in self.columns if c.target == self.key)
        if not isinstance(found[key_source], sa.Integer):
            raise SchemaValidationError(
                f"{self.where}.key", f"the source's {self.source_table}.{key_source} is "
                f"{found[key_source]}, not an integer: key ranges must order the same way in "
                "both databases")

    def apply(self, model: SchemaModel) -> None:
        pass  # data only

    # -- backfill ------------------------------------------------------------------------------
    def _copy(self):
        from ..cross_database.copier import RowCopy

        return RowCopy(self.source, self.source_table, self.into, self.key, self.columns,
                       self.index, self._description)

    @property
    def _description(self) -> str:
        return f"copy {self.source_table} from ${self.source.env} into {self.into}"

    def backfill(self, ctx: OpContext) -> BackfillTask:
        copy = self._copy()
        return BackfillTask(self._description, self.into, copy.shown_sql(RANGE_PLACEHOLDER),
                            writes=self.into, user_triggers="fire", copy=copy)

    def unbackfill(self, ctx: OpContext) -> list[Action]:
        backup = ctx.backups.get(self.into)
        if backup is None:  # created by this migration: every row in it was copied
            return [Action(
                f"delete the rows copied into {self.into}, a table this migration created "
                "(undo of the copy)", f"DELETE FROM {self.into.sql}",
                only_if=f"SELECT to_regclass({self.into.regclass_literal}) IS NOT NULL")]
        keys = ctx.key_of(self.into)
        actions = [delete_rows_not_in_backup(self.into, backup, keys, "undo of the copy")]
        existed = [c.target for c in self.columns
                   if c.target in ctx.backup_columns.get(self.into, []) and c.target not in keys]
        if existed:
            actions.append(restore_columns(self.into, backup, keys, existed, "undo of the copy"))
        return actions

    # -- validation ------------------------------------------------------------------------------
    def checks(self, ctx: OpContext) -> list[ParityCheck]:
        from ..cross_database.compare import target_rows_sql

        copy = self._copy()
        migration = ctx.migration

        def evaluate(conn: Any, tasks: list[BackfillTask]) -> tuple[int, list[str]]:
            from ..cross_database.compare import compare_partitions

            index = next(i for i, t in enumerate(tasks)
                         if t.copy is not None and t.copy.op_index == self.index)
            diffs = compare_partitions(conn, migration, tasks[index].copy, index)
            return len(diffs), [d.text() for d in diffs[:20]]

        return [ParityCheck(
            f"{self.into.name}.copy_{self.index}.partitions",
            f"every key-range partition of {self.into} holds exactly the rows of "
            f"{self.source_table} in ${self.source.env}, transformed (row count and checksum "
            "computed on both sides)",
            target_rows_sql(copy, "<key range>").replace("<key range>", "TRUE"),
            evaluate=evaluate)]

    def summary(self) -> str:
        return f"copy_cross_database {self.source_table} (${self.source.env}) -> {self.into}"
