"""Property: every malformed migration file (a mutation of a valid one, malformed_specs.py) is a
one-line SpecError naming the file when loaded. Offline: no database, hundreds of cases a run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings

from malformed_specs import VALID, dump, malformed
from migration_dags.errors import SpecError
from migration_dags.spec import load_migration

pytestmark = pytest.mark.offline

FOLDER = Path(tempfile.mkdtemp(prefix="malformed_specs_"))


def test_the_valid_file_the_mutations_start_from_loads():
    path = FOLDER / "m.yaml"
    path.write_text(dump(VALID))
    assert len(load_migration(path).operations) == 6


@settings(max_examples=250, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(malformed(at_load_only=True))
def test_every_malformed_file_is_one_spec_error_line(case):
    text, at_load = case
    assume(at_load)  # a sequence default: only the live catalog refuses it (the plan test's case)
    path = FOLDER / "m.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_migration(path)
    line = str(caught.value)
    assert line.startswith(f"{path}: ") and "\n" not in line and len(line) < 500, line[:500]
