"""Every registered operation type has a lifecycle case: its own test module, which runs at least
one migration using that type through the lifecycle harness (up, down, exact snapshot, twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_dags.operations import OPERATION_TYPES

pytestmark = pytest.mark.offline
HERE = Path(__file__).parent


@pytest.mark.parametrize("kind", sorted(OPERATION_TYPES))
def test_operation_type_has_a_lifecycle_case(kind):
    module = HERE / f"test_{kind}.py"
    assert module.exists(), f"operation type {kind} has no test module {module.name}"
    source = module.read_text()
    assert "run_lifecycle(" in source, f"{module.name} never runs the lifecycle harness"
    assert f"- {kind}:" in source or f"{{{kind}:" in source, (
        f"{module.name} runs the harness, but no migration in it uses {kind}")
