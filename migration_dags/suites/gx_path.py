"""Running expectations with Great Expectations 1.x, everything pushed down to SQL.

GX is imported here only, and only when a run needs it (the import takes ~5 s).  Each run uses
an ephemeral context and one PostgreSQL datasource.

The rows GX validates are a view we create for the run, `migration_dags.suite_rows_<random>`
(`SELECT * FROM table [WHERE key range]`, dropped afterwards), read through a GX *table* asset.
Not a query asset: for a query asset GX 1.24 learns the column names by running the query
itself, unbounded, so the driver fetches every row of the table or partition to the client.
The view also spares GX our quoting of odd table names.

Two passes keep a passing suite cheap.  Pass one asks for SUMMARY with no samples
(`partial_unexpected_count: 0`): GX computes the counts and observed values in SQL and its sample
queries become `LIMIT 0`.  Only the expectations that failed get pass two, with up to 20 samples
and the key columns (`unexpected_index_column_names`), so the samples are keys of offending rows.
GX as it comes (SUMMARY with samples for every expectation) scans the table once more per
expectation even when nothing is wrong.
"""

from __future__ import annotations

import logging
import uuid
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from ..reports import CheckOutcome
from ..errors import SpecError
from ..db import libpq_url
from ..db.connect import NO_PARALLEL_OPTIONS
from ..settings import parallel_workers_wanted
from ..state import STATE_SCHEMA
from .files import Expectation, Suite
from .outcomes import SAMPLE_LIMIT, outcome, row_sample
from .scope import Scope

if TYPE_CHECKING:
    import great_expectations as gx

INDEX_META = "migration_dags_index"  # tags each expectation so results map back to the file


def import_gx():
    import great_expectations as gx

    return gx


def sqlalchemy_url(url: str) -> str:
    """A libpq URL (or key=value DSN) as the SQLAlchemy URL GX wants, driver psycopg 3.

    GX's postgres datasource refuses a URL without a host, which the embedded server's socket URL
    (postgresql://postgres:@/postgres?host=/dir) is: the host becomes `localhost` and the socket
    folder stays in ?host=, which libpq prefers.
    """
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import URL

    params: dict[str, Any] = {k: str(v) for k, v in conninfo_to_dict(libpq_url(url)).items()}
    if not parallel_workers_wanted():  # as every session of ours (db/connect.py)
        params["options"] = " ".join(filter(None, (params.get("options"), NO_PARALLEL_OPTIONS)))
    user, password = params.pop("user", None), params.pop("password", None) or None
    database = params.pop("dbname", None)
    host, port = params.get("host"), params.get("port")
    if host and not host.startswith("/") and "," not in host and (port is None or port.isdigit()):
        params.pop("host")
        params.pop("port", None)
        url_host, url_port = host, int(port) if port else None
    else:
        url_host, url_port = "localhost", None
    return URL.create(
        "postgresql+psycopg", username=user, password=password, host=url_host, port=url_port,
        database=database, query=params,
    ).render_as_string(hide_password=False)


def build_gx_suite(suite: Suite, expectations: list[Expectation] | None = None) -> "gx.ExpectationSuite":
    """The GX suite for these expectations of `suite`; GX's complaint about one names its field."""
    gx = import_gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    configs = []
    for exp in suite.expectations if expectations is None else expectations:
        raw = dict(exp.raw)
        raw["meta"] = {**(raw.get("meta") or {}), INDEX_META: exp.index}
        try:
            config = ExpectationConfiguration(**raw)
            config.to_domain_obj()  # GX's own check of type and kwargs
        except Exception as exc:  # GX raises several kinds; each is a malformed expectation
            raise SpecError(str(suite.file), exp.field, f"GX rejects it: {_one_line(exc)}") from exc
        configs.append(config)
    built = gx.ExpectationSuite(name=suite.name, expectations=configs, meta=dict(suite.data["meta"]))
    if len(built.expectations) != len(configs):  # GX logs and drops what it cannot build
        raise SpecError(str(suite.file), "expectations", "GX dropped an expectation it cannot build")
    return built


def gx_is_row_level(expectation_type: str) -> bool:
    """True for GX's per-row kinds (column map, column pair map, multicolumn map, unexpected rows)."""
    import_gx()
    from great_expectations.expectations import expectation as base
    from great_expectations.expectations.core.unexpected_rows_expectation import (
        UnexpectedRowsExpectation,
    )
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        impl = get_expectation_impl(expectation_type)
    except Exception:  # an unknown type: keep it, so GX reports it when the suite is built
        return True
    return issubclass(impl, (base.ColumnMapExpectation, base.ColumnPairMapExpectation,
                             base.MulticolumnMapExpectation, UnexpectedRowsExpectation))


class GxRunner:
    """One ephemeral GX context and datasource for a database; reused across suites and scopes."""

    def __init__(self, database_url: str):
        gx = import_gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.datasource = self.context.data_sources.add_postgres(
            "migration_dags", connection_string=sqlalchemy_url(database_url)
        )

    def close(self) -> None:
        """Close GX's pooled connections (GX never does; the database could not be dropped)."""
        execution_engine = self.datasource._execution_engine
        for engine in (getattr(execution_engine, "engine", None), self.datasource._engine):
            if engine is not None:
                engine.dispose()

    @contextmanager
    def batch(self, scope: Scope) -> Iterator[Any]:
        """A GX batch of the scope's rows, through a view that lives as long as the batch."""
        view = f"suite_rows_{uuid.uuid4().hex[:12]}"
        engine = self.datasource.get_execution_engine().engine
        with engine.begin() as c:
            if c.exec_driver_sql(f"SELECT to_regnamespace('{STATE_SCHEMA}')").scalar() is None:
                c.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
            c.exec_driver_sql(f"CREATE VIEW {STATE_SCHEMA}.{view} AS {scope.select_sql}")
        try:
            with warnings.catch_warnings():  # schema_name is deprecated for GX 2.0; we pin 1.24
                warnings.filterwarnings("ignore", "`schema_name` is deprecated", DeprecationWarning)
                asset = self.datasource.add_table_asset(view, table_name=view, schema_name=STATE_SCHEMA)
            yield asset.add_batch_definition_whole_table("all").get_batch()
        finally:
            with engine.begin() as c:
                c.exec_driver_sql(f"DROP VIEW IF EXISTS {STATE_SCHEMA}.{view}")
            self.datasource.delete_asset(view)

    def run(self, suite: Suite, expectations: list[Expectation], scope: Scope) -> list[CheckOutcome]:
        if not expectations:
            return []
        by_index = {e.index: e for e in expectations}
        with self.batch(scope) as batch:
            first = batch.validate(
                build_gx_suite(suite, expectations),
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0},
            )
            results = {_index(r): r for r in first.results}
            failed = [by_index[i] for i, r in results.items() if not r.success and not _exception(r)]
            samples: dict[int, list[str]] = {}
            # GX gives an unexpected-rows expectation's rows in COMPLETE only; COMPLETE would make
            # the map expectations fetch every offending value, so they stay on SUMMARY
            rows_kind = [e for e in failed if e.type == "unexpected_rows_expectation"]
            map_kind = [e for e in failed if e.type != "unexpected_rows_expectation"]
            for group, level in ((map_kind, "SUMMARY"), (rows_kind, "COMPLETE")):
                if not group:
                    continue
                result_format: dict[str, Any] = {
                    "result_format": level, "partial_unexpected_count": SAMPLE_LIMIT,
                }
                if scope.key:
                    result_format["unexpected_index_column_names"] = list(scope.key)
                second = batch.validate(build_gx_suite(suite, group), result_format=result_format)
                samples.update({_index(r): _samples(r.result or {}, scope.key) for r in second.results})
        return [
            outcome(by_index[i], scope.partition, r.success, _observed(r), samples.get(i, []))
            for i, r in sorted(results.items())
        ]


def _index(result) -> int:
    return int(result.expectation_config.meta[INDEX_META])


def _exception(result) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return _one_line(info.get("exception_message") or "raised an exception")
    for value in info.values():  # GX 1.x may key exception info by metric
        if isinstance(value, dict) and value.get("raised_exception"):
            return _one_line(value.get("exception_message") or "raised an exception")
    return None


def _observed(result) -> int | str:
    error = _exception(result)
    if error:
        return f"error: {error}"
    res = result.result or {}
    if "unexpected_count" in res:
        return int(res["unexpected_count"])
    value = res.get("observed_value")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return "" if value is None else str(value)


def _samples(res: dict, key: tuple[str, ...]) -> list[str]:
    rows = res.get("partial_unexpected_index_list") or (res.get("details") or {}).get("unexpected_rows")
    if rows:
        return [row_sample(row, key) for row in rows[:SAMPLE_LIMIT]]
    return [str(v) for v in (res.get("partial_unexpected_list") or [])[:SAMPLE_LIMIT]]


def _one_line(exc: Any) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
