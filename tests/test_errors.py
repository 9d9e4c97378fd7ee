"""The typed contract of errors: what the rollback policy and the CLI read off an error's class."""

from __future__ import annotations

import pytest

from migration_dags import errors
from migration_dags.orchestration.rollback_policy import changed_nothing

pytestmark = pytest.mark.offline


def test_refusals_and_bad_input_ran_nothing():
    for cls in (errors.RefusedError, errors.SpecError, errors.SchemaValidationError,
                errors.TableDoesNotExistError, errors.UnknownMigrationError):
        assert cls.ran is False, cls
    assert errors.StepFailedError.ran is True
    assert errors.RefusedError.exit_code == 1


def test_run_again_errors_are_retryable_and_nothing_else():
    retryable = {n for n, c in vars(errors).items() if isinstance(c, type)
                 and issubclass(c, errors.MigrationError) and c.retryable}
    # a lost connection is retryable too: every step resumes its own partial work
    assert retryable == {"DatabaseUnavailableError", "ConnectionLostError", "MigrationLockedError",
                         "LockTimeoutExhaustedError"}
    assert errors.ConnectionLostError.ran and not errors.DatabaseUnavailableError.ran


def test_a_serialised_error_name_maps_back_to_its_class():
    assert errors.error_class("MigrationLockedError") is errors.MigrationLockedError
    assert errors.error_class("MigrationError") is errors.MigrationError
    assert errors.error_class("DivisionByZero") is None


def test_rollback_policy_reads_the_classes_not_a_list_of_names():
    assert changed_nothing(["DagsterExecutionStepExecutionError", "RefusedError"])
    assert changed_nothing(["LockTimeoutExhaustedError"])
    assert not changed_nothing(["DagsterExecutionStepExecutionError", "StepFailedError"])
    assert not changed_nothing(["DivisionByZero"])


def test_validation_failure_carries_its_outcomes():
    from migration_dags.reports import CheckFamily, CheckOutcome

    outcome = CheckOutcome("t.row_count", "rows", False, 3, [], CheckFamily.ROW_COUNTS)
    error = errors.ValidationFailedError("m: validation failed", [outcome])
    assert error.outcomes == [outcome] and error.exit_code == 3
