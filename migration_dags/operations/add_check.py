"""add_check: a CHECK constraint, added without a long lock.

    - add_check:
        table: products
        name: products_price_non_negative
        check: "price >= 0"

start adds it NOT VALID (brief lock, no scan; new writes are checked from then on), then
VALIDATEs it (scans existing rows without blocking writes); see constraints.py. If existing rows
break it, VALIDATE fails, the step fails and its undo drops the constraint. rollback drops it.
The validation step checks it is validated.
"""

from __future__ import annotations

from ..actions import Action
from ..errors import SchemaValidationError
from ..identifiers import TableName
from ..schema_model import SchemaModel
from ..spec.types import Identifier, SpecModel, SqlExpression, TableRef
from .base import Expression, OpContext, Operation, ParityCheck
from .common.constraints import add_then_validate, drop_constraint, validated_check


class AddCheckSpec(SpecModel):
    """A CHECK constraint, added NOT VALID then validated (no long lock)."""

    table: TableRef
    name: Identifier
    """The constraint's name."""
    check: SqlExpression
    """The condition every row must meet, as SQL over the row: price >= 0."""


class AddCheck(Operation, kind="add_check", spec=AddCheckSpec):
    def read(self, spec: AddCheckSpec) -> None:
        self.table: TableName = spec.table
        self.name: str = spec.name
        self.check: str = spec.check

    def tables(self) -> set[TableName]:
        return {self.table}

    def expressions(self) -> list[Expression]:
        return [Expression("check", self.check, self.table, "boolean")]

    def validate(self, model: SchemaModel) -> None:
        table = self.existing_table(model, self.table)
        if self.name in table.constraints:
            raise SchemaValidationError(
                self.where, f"table {self.table} already has a constraint named {self.name!r}"
            )

    def apply(self, model: SchemaModel) -> None:
        model.tables[self.table].constraints.add(self.name)

    def start(self, ctx: OpContext) -> list[Action]:
        return add_then_validate(self.table, self.name, f"CHECK ({self.check})")

    def rollback(self, ctx: OpContext) -> list[Action]:
        return drop_constraint(self.table, self.name)

    def checks(self, ctx: OpContext) -> list[ParityCheck]:
        return [validated_check(self.table, self.name)]

    def summary(self) -> str:
        return f"add_check {self.name} on {self.table}"
