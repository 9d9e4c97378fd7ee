"""Running suites: the engine's extra_checks hook, and one suite on one scope.

Mode `auto` (the default) runs what the SQL path supports as one query of ours and the rest with
GX; GX is imported only when something is left for it.  Mode `gx` runs everything with GX
(MIGRATION_DAGS_SUITES_MODE=gx, or `make_suite_checks(mode="gx")`): the reference the SQL path is
tested against, and the way out should the SQL path ever be in doubt.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import psycopg

from ..reports import CheckOutcome
from ..errors import MigrationError
from ..fingerprint import table_exists
from ..tenants import retarget_suite
from . import sql_path
from .files import Expectation, Suite, load_suite
from .outcomes import outcome
from .scope import Scope, in_partition, partition_range, whole_table

if TYPE_CHECKING:
    from ..engine import ExtraChecks, MigrationEngine
    from .gx_path import GxRunner

MODE_ENV = "MIGRATION_DAGS_SUITES_MODE"
MODES = ("auto", "gx")
Log = Callable[[str], None]


class LazyGx:
    """Creates the GX runner (and imports GX) on first use only."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._runner: "GxRunner | None" = None

    def __call__(self) -> "GxRunner":
        if self._runner is None:
            from .gx_path import GxRunner

            self._runner = GxRunner(self.database_url)
        return self._runner

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def __enter__(self) -> "LazyGx":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_suite_checks(folder: str | Path | None = None, mode: str | None = None) -> "ExtraChecks":
    """An extra_checks hook reading suites from `folder` (default: expectations_dir())."""

    def hook(engine: "MigrationEngine", conn: psycopg.Connection, partition: str | None = None):
        names = engine.migration.validation.suites
        if not names:
            return []
        suites = [load_suite(name, folder) for name in names]  # every file checked before any run
        # a tenant's copy of the migration validates the tenant's tables (tenants.py)
        suites = [retarget_suite(s, engine.migration) for s in suites]
        chosen = _mode(mode)
        rng = partition_range(engine, conn, partition) if partition is not None else None
        outcomes: list[CheckOutcome] = []
        with LazyGx(engine.database_url) as gx:
            for suite in suites:
                scope = whole_table(conn, suite) if rng is None else in_partition(conn, suite, rng)
                if scope is not None:
                    outcomes += run_suite(conn, suite, scope, gx, chosen, engine.log)
        return outcomes

    return hook


def suite_checks(engine: "MigrationEngine", conn: psycopg.Connection,
                 partition: str | None = None) -> list[CheckOutcome]:
    """The engine's extra_checks hook: engine.migration.validation.suites, whole table or partition."""
    return make_suite_checks()(engine, conn, partition)


def run_suite(
    conn: psycopg.Connection, suite: Suite, scope: Scope, gx: Callable[[], "GxRunner"],
    mode: str = "auto", log: Log = lambda _msg: None,
) -> list[CheckOutcome]:
    """One CheckOutcome per expectation of `suite` on `scope`, in file order.

    On a partition only row-level expectations run (column values, unexpected rows): a table-level
    one such as a row count means nothing for a slice, and runs on the whole table instead.
    """
    expectations = list(suite.expectations)
    if scope.partition is not None:
        expectations = [e for e in expectations if is_row_level(e)]
    if not table_exists(conn, scope.table):
        return [outcome(e, scope.partition, False, f"error: table {scope.table} does not exist", [])
                for e in expectations]
    done: list[CheckOutcome] = []
    rest = expectations
    if mode == "auto":
        plans, rest = sql_path.compile_plans(conn, expectations, scope)
        try:
            done = sql_path.run_plans(conn, plans, scope)
        except psycopg.Error as exc:
            log(f"suite {suite.name}: our SQL failed ({' '.join(str(exc).split())}); running it with GX")
            done, rest = [], expectations
    if rest:
        done += gx().run(suite, rest, scope)
    order = {e.name: e.index for e in expectations}
    return sorted(done, key=lambda o: order[o.name])


def is_row_level(exp: Expectation) -> bool:
    if exp.type in sql_path.ROW_LEVEL_TYPES:
        return True
    if exp.type in sql_path.TABLE_LEVEL_TYPES:
        return False
    from .gx_path import gx_is_row_level

    return gx_is_row_level(exp.type)


def _mode(mode: str | None) -> str:
    chosen = mode or os.environ.get(MODE_ENV) or "auto"
    if chosen not in MODES:
        raise MigrationError(f"{MODE_ENV} must be one of {', '.join(MODES)}, got {chosen!r}")
    return chosen
