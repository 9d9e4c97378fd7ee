"""Great Expectations suites for the validation step, run in PostgreSQL.

Where suites live and which table they validate
    A migration names its suites in `validation.suites`; each is expectations/<suite>.json
    (settings.expectations_dir(): MIGRATION_DAGS_EXPECTATIONS_DIR, else ./expectations), written
    in GX 1.x's own suite JSON (what `ExpectationSuite.to_json_dict()` gives), with its target in
    the suite's meta:

        {"name": "users_email_verification",
         "meta": {"migration_dags": {"table": "public.users"}},      # "key": ["id"] optional
         "expectations": [{"type": "expect_column_values_to_not_be_null",
                           "kwargs": {"column": "email_verified"}}, ...]}

    `table` is `name` or `schema.name`; `key` names the columns that identify a row in samples
    and defaults to the table's primary key.  The suite's `name` must match its file name.  A
    missing or malformed file is a one-line SpecError naming the file and field.

What runs
    `suite_checks(engine, conn, partition)` is the engine's extra_checks hook.  Without a
    partition every suite runs on its whole table; with one, the suites that validate the
    partition's table run on its key range only (its row-level expectations; a row count means
    nothing for a slice).  Everything is pushed down to SQL: no table is read into pandas.  The
    common expectation types are compiled into one query of ours (sql_path); the rest run with
    GX 1.x (gx_path, imported only then), which reads the rows through a view it creates and
    drops, migration_dags.suite_rows_<random>.  Each expectation gives one CheckOutcome (outcomes).
"""

from .files import Expectation, Suite, load_suite, suite_path
from .runner import MODE_ENV, LazyGx, is_row_level, make_suite_checks, run_suite, suite_checks
from .scope import Scope, in_partition, partition_range, whole_table

__all__ = [
    "Expectation", "Suite", "load_suite", "suite_path", "MODE_ENV", "LazyGx", "is_row_level",
    "make_suite_checks", "run_suite", "suite_checks", "Scope", "in_partition", "partition_range",
    "whole_table",
]
