"""validation: every check, blocking. Changes nothing; its down only forgets that it passed.

    backfill_complete   every backfill partition is done
    row_counts          each backed-up table's row count against its backup's, plus the rows the
                        application inserted less those it deleted since (validation.row_count,
                        validation.row_count_tolerance)
    parity              the operations' own checks (SQL counting offending rows; 0 passes)
    suites              Great Expectations suites, through the engine's extra_checks hook

A failed check raises ValidationFailedError carrying every outcome, passed or not, so the Dagster
layer reports each family as a blocking asset check and the CLI rolls back (exit 3).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import psycopg

from .. import state
from ..actions import Action, ActionResult
from ..capture import expected_row_count
from ..errors import ValidationFailedError
from ..reports import CheckFamily, CheckOutcome, StepReport
from .base import Planning, Step, StepRun
from .verbs import parity_checks

if TYPE_CHECKING:
    from ..engine import MigrationEngine

ROW_COUNT_RULES = {
    "exact": lambda now, before: now == before,
    "grows": lambda now, before: now >= before,
    "any": lambda now, before: True,
}


class ValidationStep(Step):
    name = "validation"
    description = "Parity checks (and suites) on the expanded schema; blocking: a failure stops cutover."

    def up(self, run: StepRun, partition: str | None = None) -> StepReport:
        report = run.report(self.name, "up")
        outcomes = run_checks(run.engine, run.conn, queries=report.results)
        report.extra["checks"] = [o.as_dict() for o in outcomes]
        report.extra["migration_state"] = (
            "expanded: both shapes work (the new one in the version schema); materialize "
            f"cutover, or run `migration-dags complete {run.name}`, once the new release runs")
        failed = [o for o in outcomes if not o.passed]
        if failed:
            raise ValidationFailedError(
                f"{run.name}: validation failed: " + "; ".join(_failure(o) for o in failed),
                outcomes,
            )
        report.recorded = {"checks": len(outcomes)}
        return report

    def down(self, run: StepRun) -> StepReport:
        return run.report(self.name, "down")

    def plan(self, planning: Planning) -> list[str]:
        return [f"-- {c.description}\n{c.count_sql};"
                for c in parity_checks(planning.migration.operations, planning.op_context)]


def run_checks(
    engine: "MigrationEngine", conn: psycopg.Connection, partition: str | None = None,
    queries: list[ActionResult] | None = None,
) -> list[CheckOutcome]:
    """Every check: backfill complete, row counts, parity, then the suites hook. Changes nothing.
    With `queries`, each query that ran is appended to it (a step's metadata shows its SQL)."""
    def ran(description: str, sql: str, started: float) -> None:
        if queries is not None:
            queries.append(ActionResult(Action(description, sql, takes_lock=False), True, 0,
                                        time.monotonic() - started, 1, 0.0))

    name = engine.migration.name
    remaining = [k for k, d, _n in state.ranges_status(conn, name) if not d]
    outcomes = [CheckOutcome(
        "backfill.complete", "every backfill partition is done", not remaining,
        len(remaining), remaining[:20], CheckFamily.BACKFILL_COMPLETE)]
    rule = engine.migration.validation.row_count
    tolerance = engine.migration.validation.row_count_tolerance
    for rec in state.backups(conn, name):
        # Under live writes the count moves: expected = backup + application inserts - deletes
        # (capture.py), in the same snapshot as the count.
        started = time.monotonic()
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            count, expected, inserted, deleted = expected_row_count(conn, rec)
        ran(f"row count of {rec.source} (and the application's net inserts and deletes)",
            f"SELECT count(*) FROM {rec.source.sql}", started)
        within = ROW_COUNT_RULES[rule](count, expected) or (
            rule == "exact" and abs(count - expected) <= tolerance)
        allowance = f" ± {tolerance}" if tolerance and rule == "exact" else ""
        outcomes.append(CheckOutcome(
            f"{rec.source.name}.row_count",
            f"row count of {rec.source} {rule}{allowance} vs backup ({rec.row_count}) "
            f"+ {inserted} inserted - {deleted} deleted by the application = {expected}",
            within, count, [], CheckFamily.ROW_COUNTS))
    ctx = engine.context(conn)
    for check in parity_checks(engine.migration.operations, ctx):
        if check.evaluate is not None:  # reads another database too (cross_database/)
            bad, samples = check.evaluate(conn, engine.backfill_tasks(ctx))
            outcomes.append(CheckOutcome(
                check.name, check.description, bad == 0, bad, samples, CheckFamily.PARITY))
            continue
        started = time.monotonic()
        bad = conn.execute(check.count_sql).fetchone()[0]
        ran(check.description, check.count_sql, started)
        samples, note = [], None
        if bad and check.sample_sql:
            started = time.monotonic()
            samples = [str(r[0]) for r in conn.execute(check.sample_sql).fetchall()]
            ran(f"sample keys: {check.description}", check.sample_sql, started)
        if bad and check.explain_sql:
            try:
                with conn.transaction():  # a savepoint, should a caller's transaction be open
                    note = conn.execute(check.explain_sql).fetchone()[0]
            except psycopg.errors.UndefinedTable:  # no record of application writes (no key)
                note = None
        outcomes.append(CheckOutcome(
            check.name, check.description, bad == 0, bad, samples, CheckFamily.PARITY, note=note))
    if engine.extra_checks is not None:
        outcomes.extend(engine.extra_checks(engine, conn, partition))
    return outcomes


def _failure(o: CheckOutcome) -> str:
    keys = f", e.g. keys {', '.join(o.samples[:5])}" if o.samples else ""
    note = f"; {o.note}" if o.note else ""
    return f"{o.name} (observed {o.observed}{keys}{note})"
