"""The step-to-verb table: every step has a row, and every verb it names is an operation verb."""

from __future__ import annotations

import pytest

from migration_dags.operations.base import Operation
from migration_dags.steps import STEP_TYPES, STEPS
from migration_dags.spec import load_migration
from migration_dags.steps.context import offline_op_context
from migration_dags.steps.verbs import (
    STEP_VERBS, after_backfill_actions, deferred_indexes, down_actions, up_actions,
)

pytestmark = pytest.mark.offline


def test_every_step_has_a_row_and_a_module():
    assert set(STEP_VERBS) == set(STEPS) == set(STEP_TYPES)
    assert STEPS == ("backup", "schema_change", "backfill", "validation", "cutover")


@pytest.mark.parametrize("step", STEPS)
def test_verbs_named_are_operation_verbs(step):
    for verb in (STEP_VERBS[step].up, STEP_VERBS[step].down):
        assert verb is None or callable(getattr(Operation, verb, None))


def test_a_plain_index_on_a_table_the_backfill_updates_waits_for_the_batches(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "name: m\noperations:\n"
        "  - add_column: {table: items, column: {name: n, type: int}, up: 'id * 2'}\n"
        "  - create_index: {name: items_n_idx, table: items, columns: [n]}\n"
        "  - create_index: {name: items_n_key, table: items, columns: [n], unique: true}\n"
        "  - create_index: {name: orders_n_idx, table: orders, columns: [id]}\n")
    migration = load_migration(tmp_path / "m.yaml")
    ctx = offline_op_context(migration)
    ops = migration.operations

    assert [op.name for op in deferred_indexes(ops, ctx)] == ["items_n_idx"]
    built_first = "\n".join(a.sql for a in up_actions("schema_change", ops, ctx))
    assert "items_n_key" in built_first and "orders_n_idx" in built_first
    assert "items_n_idx" not in built_first
    assert "items_n_idx" in "\n".join(a.sql for a in after_backfill_actions(ops, ctx))
    # its down is still schema_change's, which drops it if it was built
    assert "items_n_idx" in "\n".join(a.sql for a in down_actions("schema_change", ops, ctx))
