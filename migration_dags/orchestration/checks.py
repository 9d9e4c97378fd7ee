"""Validation outcomes as blocking asset checks on the validation asset, one check per family.

    backfill_complete   every backfill partition is done
    row_counts          each backed-up table's row count against its backup (validation.row_count)
    parity              the operations' own checks (column equals its up expression, no NULLs...)
    suite_<name>        one per Great Expectations suite the migration declares

Every check is blocking at ERROR severity: one failure stops cutover in the same run.

Every step asset also has `applied` (not blocking): the step is applied in the target database.
Each materialization records it; the rollback job records it failed at WARN severity once the
step is rolled back, so the graph shows a rolled-back migration as such (run history is kept).

On the backfill asset, a migration that declares suites also gets `suites_partition`: after the
backfill processes its partitions, the suites' row-level expectations run on each partition's key
range. In Dagster 1.13 a check on a partitioned asset evaluated in a run over a partition range
records one evaluation (no partition), so the check is unpartitioned and its one result sums up
every partition of the run: observed = failed partitions, samples as "partition: keys".

The suites seam: `suite_hook(migration)` returns the engine's `extra_checks` hook,
`migration_dags.suites.suite_checks(engine, conn, partition) -> list[CheckOutcome]` (outcomes with
`suite` set to the suite's name, reported under `suite_<name>`), imported only when validation runs.
"""

from __future__ import annotations

import re
from typing import Any

import dagster as dg

from ..engine import ExtraChecks, MigrationEngine
from ..reports import CheckFamily, CheckOutcome, MigrationStatus
from ..spec import Migration

BACKFILL_COMPLETE = CheckFamily.BACKFILL_COMPLETE.value
ROW_COUNTS = CheckFamily.ROW_COUNTS.value
PARITY = CheckFamily.PARITY.value
SUITES_PARTITION = "suites_partition"
APPLIED = "applied"
SAMPLES_SHOWN = 20

_DESCRIPTIONS = {
    BACKFILL_COMPLETE: "every backfill partition is done",
    ROW_COUNTS: "row count of each backed-up table against its backup",
    PARITY: "the operations' parity checks (new data agrees with the old)",
}


def suite_check_name(suite: str) -> str:
    return "suite_" + re.sub(r"\W", "_", suite)


def family_names(migration: Migration) -> list[str]:
    return [BACKFILL_COMPLETE, ROW_COUNTS, PARITY] + [
        suite_check_name(s) for s in migration.validation.suites
    ]


def family_of(outcome: CheckOutcome, migration: Migration) -> str:
    """The blocking check an outcome is reported under: its family; a suite's, by suite name."""
    if outcome.family is CheckFamily.SUITE and outcome.suite in migration.validation.suites:
        return suite_check_name(outcome.suite)
    if outcome.family is CheckFamily.SUITE:
        return PARITY  # a suite the migration no longer names: still reported, never dropped
    return outcome.family.value


def check_specs(migration: Migration, validation_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            name, asset=validation_key, blocking=True,
            description=_DESCRIPTIONS.get(name) or f"Great Expectations suite {name[len('suite_'):]}",
        )
        for name in family_names(migration)
    ]


def check_results(migration: Migration, outcomes: list[CheckOutcome]) -> list[dg.AssetCheckResult]:
    by_family: dict[str, list[CheckOutcome]] = {name: [] for name in family_names(migration)}
    for outcome in outcomes:
        by_family[family_of(outcome, migration)].append(outcome)
    return [
        dg.AssetCheckResult(
            check_name=name,
            passed=all(o.passed for o in found),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=_family_metadata(found),
        )
        for name, found in by_family.items()
    ]


def not_reevaluated(migration: Migration, applied_note: str) -> list[dg.AssetCheckResult]:
    """Results for a validation that was already applied: the checks are not run again."""
    return [
        dg.AssetCheckResult(check_name=name, passed=True, metadata={"not_re_evaluated": applied_note})
        for name in family_names(migration)
    ]


def applied_spec(asset_key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        APPLIED, asset=asset_key, blocking=False,
        description="this step is applied in the target database; fails (WARN) once rolled back",
    )


def applied_result(status: MigrationStatus, step: str) -> dg.AssetCheckResult:
    """`applied` as the engine's state says after a materialization of `step`."""
    state = status.steps[step]
    metadata = ({"applied_by_run": state.run_id or "", "applied_at": state.applied_at or ""}
                if state.applied else {"state": "not applied"})
    return dg.AssetCheckResult(check_name=APPLIED, passed=state.applied,
                               severity=dg.AssetCheckSeverity.WARN, metadata=metadata)


def applied_evaluation(
    asset_key: dg.AssetKey, passed: bool, metadata: dict[str, Any]
) -> dg.AssetCheckEvaluation:
    """`applied` recorded from outside the asset: the rollback job, a run of key ranges."""
    return dg.AssetCheckEvaluation(
        asset_key=asset_key, check_name=APPLIED, passed=passed,
        severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
    )


def backfill_check_specs(migration: Migration, backfill_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """`suites_partition` on the backfill asset; none for a migration without suites."""
    if not migration.validation.suites:
        return []
    return [dg.AssetCheckSpec(
        SUITES_PARTITION, asset=backfill_key, blocking=True,
        description="the suites' row-level expectations on each backfilled partition's key range",
    )]


def partition_outcomes(
    engine: MigrationEngine, keys: list[str | None]
) -> dict[str, list[CheckOutcome]]:
    """The suites on each engine partition in `keys` (None, nothing to backfill, is skipped)."""
    from ..suites import suite_checks  # here, not at import: only a backfill with suites needs them

    with engine.connection("suites") as conn:
        return {k: suite_checks(engine, conn, k) for k in keys if k is not None}


def partition_result(by_partition: dict[str, list[CheckOutcome]]) -> dg.AssetCheckResult:
    """One result for every partition of the run: fails when any expectation failed on any."""
    outcomes = [o for found in by_partition.values() for o in found]
    failed = {k: [o for o in found if not o.passed] for k, found in by_partition.items()}
    failed = {k: found for k, found in failed.items() if found}
    metadata = _family_metadata(outcomes, SAMPLES_SHOWN)
    metadata["partitions_checked"] = len(by_partition)
    metadata["observed"] = len(failed)
    metadata["failed_partitions"] = dg.MetadataValue.json(list(failed))
    if not by_partition:
        metadata["note"] = "nothing to backfill: the suites run on the whole table at validation"
    samples, budget = [], SAMPLES_SHOWN
    for key, found in failed.items():
        keys = list(dict.fromkeys(s for o in found for s in o.samples))[:max(budget, 0)]
        budget -= len(keys)
        samples.append(f"{key}: {', '.join(keys) or '-'}")
    if samples:
        metadata["samples"] = dg.MetadataValue.md("\n".join(f"- {line}" for line in samples))
    return dg.AssetCheckResult(
        check_name=SUITES_PARTITION, passed=not failed, severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
    )


def _family_metadata(outcomes: list[CheckOutcome], samples_shown: int = 10) -> dict[str, Any]:
    failed = [o for o in outcomes if not o.passed]
    metadata: dict[str, Any] = {
        "checked": len(outcomes),
        "failed": len(failed),
        "outcomes": dg.MetadataValue.json([o.as_dict() for o in outcomes]),
    }
    if failed:
        rows = "\n".join(
            f"| {o.name} | {o.description} | {o.observed} | "
            f"{', '.join(o.samples[:samples_shown]) or '-'} |"
            for o in failed
        )
        metadata["failed_checks"] = dg.MetadataValue.md(
            "| check | what | observed | sample keys |\n|---|---|---|---|\n" + rows
        )
    return metadata


def suite_hook(migration: Migration) -> ExtraChecks | None:
    """The engine's extra_checks hook for the migration's suites, or None when it declares none."""
    if not migration.validation.suites:
        return None
    from ..suites import suite_checks  # here, not at import: only validation needs the suites

    return suite_checks
