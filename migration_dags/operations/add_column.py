"""add_column: a new column, filled for existing rows by its `up` expression and kept in step for
live writes by a trigger until cutover.

    - add_column:
        table: users
        column: {name: email_verified, type: boolean, default: 'false', nullable: false}
        up: "created_at < now() - interval '30 days'"   # optional: SQL over the row's columns

start adds the column nullable (instant: a constant default needs no rewrite; a volatile one such
as now() rewrites the table under an exclusive lock), and, with `up`, a BEFORE INSERT OR UPDATE
trigger that sets it from the row. backfill applies `up` to existing rows in key-range batches.
complete makes it NOT NULL without a long lock (CHECK NOT VALID, VALIDATE, SET NOT NULL, drop the
CHECK), then drops the trigger: in that order, so rows inserted while the check validates are still
filled by the trigger. uncomplete puts the trigger back and the column nullable again. rollback
drops trigger, function and column.

The up expression sees the row as the trigger fires (triggers.row_expression), and the trigger's
name starts with the operation's position, so when two add_columns of one migration fill columns
of the same table, the second one's up may read the column the first one fills.
"""

from __future__ import annotations

from pydantic import model_validator

from ..actions import Action
from ..errors import ColumnAlreadyExistsError, NoPrimaryKeyError
from ..identifiers import TableName, quote, short_name
from ..schema_model import ColumnModel, SchemaModel
from ..spec.problems import problem
from ..spec.types import (
    ColumnDefault,
    Flag,
    Identifier,
    OptionalSqlExpression,
    SpecModel,
    SqlType,
    TableRef,
)
from .common.user_triggers import UserTriggers
from .base import (
    BackfillTask,
    Expression,
    OpContext,
    Operation,
    ParityCheck,
    constraint_exists_sql,
    first_keys_sql,
)
from ..db import skip_writes_of
from .common.fill import fill_column
from .common.triggers import drop_row_trigger, row_expression, row_trigger


class NewColumn(SpecModel):
    """The column to add."""

    name: Identifier
    type: SqlType
    default: ColumnDefault | None = None
    """Its default, as SQL: 'false', 0, now()."""
    nullable: Flag = True
    """false: NOT NULL from cutover on (existing rows need a default or an up)."""


class AddColumnSpec(SpecModel):
    """A new column, filled for existing rows by `up` and kept in step with live writes."""

    table: TableRef
    column: NewColumn
    up: OptionalSqlExpression | None = None
    """Its value for existing rows and live writes, as SQL over the row's columns."""
    user_triggers: UserTriggers = "skip"
    """Whether the table's user triggers fire on the batches filling it from `up`: skip (the
    default: batches run with session_replication_role = replica) or fire."""

    @model_validator(mode="after")
    def _not_null_is_filled(self) -> "AddColumnSpec":
        if not self.column.nullable and self.column.default is None and self.up is None:
            raise problem(
                "a NOT NULL column needs a default or an up expression to fill existing rows",
                at="column.nullable",
            )
        return self


class AddColumn(Operation, kind="add_column", spec=AddColumnSpec):
    def read(self, spec: AddColumnSpec) -> None:
        self.table: TableName = spec.table
        self.column: str = spec.column.name
        self.type_sql: str = spec.column.type
        self.default: str | None = spec.column.default
        self.nullable: bool = spec.column.nullable
        self.up: str | None = spec.up
        self.user_triggers: str = spec.user_triggers

    def tables(self) -> set[TableName]:
        return {self.table}

    @property
    def _col(self) -> str:
        return quote(self.column)

    @property
    def _trigger(self) -> str:
        # PostgreSQL fires a table's triggers in name order: the operation's position in the name
        # makes an up expression see the columns earlier operations' triggers have filled.
        return short_name(f"mdg{self.index:03d}", self.table.schema, self.table.name, self.column, "up")

    @property
    def _not_null_check(self) -> str:
        return short_name("mdg", self.table.name, self.column, "not_null")

    def expressions(self) -> list[Expression]:
        found = []
        if self.default is not None:
            found.append(Expression("column.default", self.default, None, self.type_sql))
        if self.up is not None:
            found.append(Expression("up", self.up, self.table, self.type_sql))
        return found

    def validate(self, model: SchemaModel) -> None:
        table = self.existing_table(model, self.table)
        if self.column in table.columns:
            raise ColumnAlreadyExistsError(self.where, str(self.table), self.column)
        if self.up is not None and not table.primary_key:
            raise NoPrimaryKeyError(self.where, str(self.table))

    def apply(self, model: SchemaModel) -> None:
        model.tables[self.table].columns[self.column] = ColumnModel(
            self.column, self.type_sql, self.nullable, self.default
        )

    def expanded_view(self, table: TableName, columns: dict[str, str]) -> None:
        if table == self.table:
            columns.setdefault(self.column, self.column)

    def old_shape_tables(self) -> set[TableName]:
        # the old code leaves the column NULL (refused once NOT NULL) or stale (its trigger goes)
        filled_by_default = self.default is not None and self.up is None
        return set() if filled_by_default or (self.nullable and self.up is None) else {self.table}

    def start(self, ctx: OpContext) -> list[Action]:
        default = f" DEFAULT {self.default}" if self.default is not None else ""
        actions = [
            Action(
                f"add column {self.column} to {self.table} (nullable until cutover)",
                f"ALTER TABLE {self.table.sql} ADD COLUMN IF NOT EXISTS {self._col} {self.type_sql}{default}",
            )
        ]
        return actions + self._trigger_actions()

    def _trigger_actions(self) -> list[Action]:
        if self.up is None:
            return []
        # The up expression sees the row as it is when the trigger fires (row_expression), so it
        # may use columns added by earlier operations of the same migration.
        return row_trigger(
            self.table,
            self._trigger,
            f"NEW.{self._col} := {row_expression(self.up)};",
            [],
            f"keep {self.column} in step with live writes",
            when=skip_writes_of(self._trigger),
        )

    def rollback(self, ctx: OpContext) -> list[Action]:
        actions = drop_row_trigger(self.table, self._trigger) if self.up is not None else []
        return actions + [
            Action(
                f"drop column {self.column} from {self.table}",
                # IF EXISTS: the table may be gone already (a raw_sql that created it, undone)
                f"ALTER TABLE IF EXISTS {self.table.sql} DROP COLUMN IF EXISTS {self._col}",
            )
        ]

    def backfill(self, ctx: OpContext) -> BackfillTask | None:
        if self.up is None:
            return None
        # no default: every row is NULL until a batch or the trigger sets it to `up`; with user
        # triggers firing, a row whose `up` is NULL must not be written again (it would fire them)
        return fill_column(f"fill {self.table}.{self.column} from its up expression", self.table,
                           self.column, self.up, self._trigger, self.user_triggers,
                           only_null=self.default is None and self.user_triggers != "fire")

    def complete(self, ctx: OpContext) -> list[Action]:
        actions: list[Action] = []
        if not self.nullable:
            actions += not_null_actions(self.table, self.column, self._not_null_check)
        if self.up is not None:
            actions += drop_row_trigger(self.table, self._trigger)
        return actions

    def uncomplete(self, ctx: OpContext) -> list[Action]:
        actions = self._trigger_actions()
        if not self.nullable:
            actions += [
                Action(
                    f"make {self.column} nullable again",
                    f"ALTER TABLE {self.table.sql} ALTER COLUMN {self._col} DROP NOT NULL",
                ),
                # left behind when complete failed between adding and dropping it
                Action(
                    f"drop the helper check on {self.column}",
                    f"ALTER TABLE {self.table.sql} DROP CONSTRAINT IF EXISTS "
                    f"{quote(self._not_null_check)}",
                ),
            ]
        return actions

    def checks(self, ctx: OpContext) -> list[ParityCheck]:
        checks = []
        key = ctx.key_of(self.table)
        sample_cols = ", ".join(quote(k) for k in key) if key else "ctid"
        if self.up is not None:
            bad = f"{self._col} IS DISTINCT FROM ({self.up})"
            checks.append(
                ParityCheck(
                    f"{self.table.name}.{self.column}.equals_up",
                    f"every {self.column} equals its up expression",
                    f"SELECT count(*) FROM {self.table.sql} WHERE {bad}",
                    first_keys_sql(sample_cols, f"FROM {self.table.sql}", bad, sample_cols),
                )
            )
        if not self.nullable:
            checks.append(
                ParityCheck(
                    f"{self.table.name}.{self.column}.not_null",
                    f"no NULL in {self.column}",
                    f"SELECT count(*) FROM {self.table.sql} WHERE {self._col} IS NULL",
                    first_keys_sql(sample_cols, f"FROM {self.table.sql}", f"{self._col} IS NULL",
                                   sample_cols),
                )
            )
        return checks


def not_null_actions(table: TableName, column: str, check_name: str) -> list[Action]:
    """SET NOT NULL without scanning under an exclusive lock: PostgreSQL 12+ skips the scan when a
    validated CHECK (col IS NOT NULL) exists."""
    col, chk = quote(column), quote(check_name)
    return [
        Action(
            f"add NOT NULL check on {column} (NOT VALID: no scan, brief lock)",
            f"ALTER TABLE {table.sql} ADD CONSTRAINT {chk} CHECK ({col} IS NOT NULL) NOT VALID",
            only_if=f"SELECT NOT ({constraint_exists_sql(table, check_name)})",
        ),
        Action(
            f"validate NOT NULL check on {column} (scans without blocking writes)",
            f"ALTER TABLE {table.sql} VALIDATE CONSTRAINT {chk}",
            only_if=constraint_exists_sql(table, check_name),
        ),
        Action(
            f"set {column} NOT NULL (uses the validated check, no scan)",
            f"ALTER TABLE {table.sql} ALTER COLUMN {col} SET NOT NULL",
        ),
        Action(
            f"drop the helper check on {column}",
            f"ALTER TABLE {table.sql} DROP CONSTRAINT IF EXISTS {chk}",
        ),
    ]
