"""create_index: an index built without blocking writes.

    - create_index:
        name: users_verification_token_idx
        table: users
        columns: [verification_token]
        unique: false            # default
        method: btree            # btree, hash, gist, gin, brin or spgist
        where: "verification_token IS NOT NULL"   # optional: a partial index

start builds it with CREATE INDEX CONCURRENTLY (outside a transaction; only a
ShareUpdateExclusiveLock, so reads and writes go on). A CONCURRENTLY build that fails (a duplicate
for a unique index, a cancel) leaves an INVALID index behind, which IF NOT EXISTS would take for
done: start first drops an invalid index of that name. rollback drops it, CONCURRENTLY too. The
validation step checks that the index exists and is valid.

These actions wait for older transactions rather than time out (takes_lock=False): the lock they
queue for does not conflict with reads or writes, and a CONCURRENTLY build stopped by lock_timeout
would itself leave an invalid index.

PostgreSQL 15 cannot build or drop an index CONCURRENTLY on a partitioned table; there the index
is made `ON ONLY` the parent, built concurrently on each partition and attached
(common/partitions.py), so writes go on there too and no index a partition already had is taken
over. `plan --offline` knows no partitions and shows the plain table's actions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from ..actions import Action
from ..errors import ColumnDoesNotExistError, SchemaValidationError
from ..identifiers import TableName, quote
from ..schema_model import SchemaModel
from ..spec.problems import problem
from ..spec.types import Flag, Identifier, Names, OptionalSqlExpression, SpecModel, TableRef
from .base import Expression, OpContext, Operation, ParityCheck
from .common.catalog_sql import all_of, check_count, index_valid_sql, is_partitioned_sql, negate
from .common.partitions import partitioned_index_actions, partitioned_index_drops

METHODS = ("btree", "hash", "gist", "gin", "brin", "spgist")


def _method(value: Any) -> str:
    method = value.lower() if isinstance(value, str) else value
    if method not in METHODS:
        raise problem(f"must be one of {', '.join(METHODS)}, got {method!r}")
    return method


class CreateIndexSpec(SpecModel):
    """An index built CONCURRENTLY, without blocking writes."""

    name: Identifier
    """The index's name."""
    table: TableRef
    columns: Names
    unique: Flag = False
    method: Annotated[
        str, BeforeValidator(_method, json_schema_input_type=Literal[METHODS])
    ] = "btree"
    where: OptionalSqlExpression | None = None
    """A partial index: only rows matching this SQL condition."""


class CreateIndex(Operation, kind="create_index", spec=CreateIndexSpec):
    def read(self, spec: CreateIndexSpec) -> None:
        self.name: str = spec.name
        self.table: TableName = spec.table
        self.columns: list[str] = spec.columns
        self.unique: bool = spec.unique
        self.method: str = spec.method
        self.predicate: str | None = spec.where

    def tables(self) -> set[TableName]:
        return {self.table}

    @property
    def _qualified(self) -> str:
        return f"{quote(self.table.schema)}.{quote(self.name)}"

    def expressions(self) -> list[Expression]:
        if self.predicate is None:
            return []
        return [Expression("where", self.predicate, self.table, "boolean")]

    def validate(self, model: SchemaModel) -> None:
        table = self.existing_table(model, self.table)
        for column in self.columns:
            if column not in table.columns:
                raise ColumnDoesNotExistError(self.where, str(self.table), column)
        if (self.table.schema, self.name) in model.relations:
            raise SchemaValidationError(
                self.where,
                f"schema {self.table.schema} already has a relation or constraint named "
                f"{self.name!r}; choose another index name",
            )

    def apply(self, model: SchemaModel) -> None:
        model.tables[self.table].indexes.add(self.name)
        model.relations.add((self.table.schema, self.name))

    @property
    def _create(self) -> str:
        return f"CREATE {'UNIQUE ' if self.unique else ''}INDEX"

    @property
    def _definition(self) -> str:
        """What follows `ON <table>`."""
        cols = ", ".join(quote(c) for c in self.columns)
        where = f" WHERE ({self.predicate})" if self.predicate else ""
        return f"USING {self.method} ({cols}){where}"

    def _create_sql(self, concurrently: bool) -> str:
        how = "CONCURRENTLY " if concurrently else ""
        return (f"{self._create} {how}IF NOT EXISTS {quote(self.name)} ON {self.table.sql} "
                f"{self._definition}")

    def start(self, ctx: OpContext) -> list[Action]:
        if self.table in ctx.partitions:
            return partitioned_index_actions(self._create, self.name, self.table,
                                             ctx.partitions[self.table], self._definition)
        # offline, or a plain table: the concurrent build (skipped should the table be
        # partitioned after all, which validation's check of the index then reports)
        plain = is_partitioned_sql(self.table)
        invalid = index_valid_sql(self.table.schema, self.name, valid=False)
        return [
            Action(
                f"drop invalid index {self.name} left by a failed concurrent build",
                f"DROP INDEX CONCURRENTLY IF EXISTS {self._qualified}",
                transactional=False, takes_lock=False, only_if=all_of(invalid, negate(plain)),
            ),
            Action(
                f"create index {self.name} on {self.table} concurrently (writes go on)",
                self._create_sql(concurrently=True),
                transactional=False, takes_lock=False, only_if=negate(plain),
            ),
        ]

    def rollback(self, ctx: OpContext) -> list[Action]:
        if self.table in ctx.partitions:
            return partitioned_index_drops(self.name, self.table, ctx.partitions[self.table])
        plain = is_partitioned_sql(self.table)
        return [
            Action(
                f"drop index {self.name} concurrently",
                f"DROP INDEX CONCURRENTLY IF EXISTS {self._qualified}",
                transactional=False, takes_lock=False, only_if=negate(plain),
            ),
            Action(
                f"drop index {self.name} of partitioned table {self.table}",
                f"DROP INDEX IF EXISTS {self._qualified}",
                only_if=plain,
            ),
        ]

    def checks(self, ctx: OpContext) -> list[ParityCheck]:
        return [
            ParityCheck(
                f"{self.table.name}.{self.name}.valid",
                f"index {self.name} exists and is valid",
                check_count(index_valid_sql(self.table.schema, self.name)),
            )
        ]

    def summary(self) -> str:
        return f"create_index {self.name} on {self.table}"
