"""declared_schema: what a raw_sql declares it creates or alters, read from its own statements."""

from __future__ import annotations

import pytest

from migration_dags.errors import SchemaValidationError
from migration_dags.identifiers import TableName
from migration_dags.operations.common.declared_schema import apply_declared
from migration_dags.schema_model import ColumnModel, SchemaModel, TableModel

pytestmark = pytest.mark.offline

PRICES = TableName("public", "prices")
AUDIT = TableName("public", "audit")


def _model() -> SchemaModel:
    table = TableModel(PRICES, {"id": ColumnModel("id", "integer", False, None),
                                "amount": ColumnModel("amount", "numeric(4,2)", True, None),
                                "label": ColumnModel("label", "text", True, None)}, ["id"])
    return SchemaModel({PRICES: table})


def test_created_tables_and_altered_columns_enter_the_model():
    model = _model()
    apply_declared(model, "f: operations[0].raw_sql", """
        CREATE TABLE audit (id bigint, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id));
        ALTER TABLE prices ADD COLUMN cents int NOT NULL DEFAULT 0, DROP COLUMN label,
            ALTER COLUMN amount TYPE numeric(6,2);
        ALTER TABLE prices RENAME COLUMN cents TO pennies;
        CREATE INDEX audit_at_idx ON audit (at);
    """, [AUDIT, TableName("public", "audit_at_idx")], [PRICES])
    audit = model.tables[AUDIT]
    assert audit.primary_key == ["id"] and not audit.columns["id"].nullable
    assert (audit.columns["at"].type_sql, audit.columns["at"].default_sql) == ("timestamptz", "now()")
    prices = model.tables[PRICES]
    assert list(prices.columns) == ["id", "amount", "pennies"]
    assert prices.columns["amount"].type_sql == "numeric(6, 2)"
    assert ("public", "audit_at_idx") in model.relations


def test_a_declaration_up_does_not_make_names_the_field():
    with pytest.raises(SchemaValidationError, match=r"raw_sql.creates: up has no statement creating public.audit"):
        apply_declared(_model(), "f: operations[0].raw_sql", "SELECT 1", [AUDIT], [])
