"""The step-to-verb table: every step has a row, and every verb it names is an operation verb."""

from __future__ import annotations

import pytest

from migration_dags.operations.base import Operation
from migration_dags.steps import STEP_TYPES, STEPS
from migration_dags.steps.verbs import STEP_VERBS

pytestmark = pytest.mark.offline


def test_every_step_has_a_row_and_a_module():
    assert set(STEP_VERBS) == set(STEPS) == set(STEP_TYPES)
    assert STEPS == ("backup", "schema_change", "backfill", "validation", "cutover")


@pytest.mark.parametrize("step", STEPS)
def test_verbs_named_are_operation_verbs(step):
    for verb in (STEP_VERBS[step].up, STEP_VERBS[step].down):
        assert verb is None or callable(getattr(Operation, verb, None))
