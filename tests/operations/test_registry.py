"""Operation types register themselves: one module per type, named after its kind."""

from __future__ import annotations

import pkgutil

import pytest

import migration_dags.operations as operations
from migration_dags.operations import OPERATION_TYPES, Operation
from migration_dags.spec.types import SpecModel

pytestmark = pytest.mark.offline


def test_every_operation_module_registers_the_kind_it_is_named_after():
    modules = {m.name for m in pkgutil.iter_modules(operations.__path__) if not m.ispkg} - {"base"}
    assert modules == set(OPERATION_TYPES)
    for kind, op_type in OPERATION_TYPES.items():
        assert op_type.__module__ == f"migration_dags.operations.{kind}"
        assert op_type.kind == kind and issubclass(op_type.spec, SpecModel)


def test_a_kind_can_be_registered_once():
    with pytest.raises(TypeError, match="taken by AddColumn"):
        class Again(Operation, kind="add_column", spec=SpecModel):
            pass
    assert OPERATION_TYPES["add_column"].__name__ == "AddColumn"


def test_an_operation_type_needs_the_model_of_its_body():
    with pytest.raises(TypeError, match="needs spec="):
        class NoBody(Operation, kind="no_body"):
            pass
    assert "no_body" not in OPERATION_TYPES
